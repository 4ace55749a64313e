//! What every handler shares: the ports (auth, queue, reads, stored writes), the cursor
//! codec and the clock, and their production wiring from the settings.

use std::sync::Arc;

use anyhow::Context;
use time::OffsetDateTime;

use crate::auth::{
    Authenticator, JwksVerifier, TokenCheck, TokenValidator, UserServiceValidator, ValidationCache,
};
use crate::cursor::{CursorCodec, CursorKey};
use crate::idempotency::{DynamoStoredWrites, StoredWrites};
use crate::queue::{ScoreQueue, SqsScoreQueue};
use crate::reads::{DynamoScoreReader, ScoreReader};
use crate::settings::{AuthMode, IngestSettings};

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub queue: Arc<dyn ScoreQueue>,
    pub reader: Arc<dyn ScoreReader>,
    /// Asked before enqueueing a write that carries an Idempotency-Key.
    pub stored_writes: Arc<dyn StoredWrites>,
    /// Signs and checks list cursors.
    pub cursors: Arc<CursorCodec>,
    /// The clock, so tests can pin "now" for the future-timestamp rule.
    pub now: fn() -> OffsetDateTime,
}

impl AppState {
    /// `validator` is used in `user-service` mode (the [`TokenCheck`] of
    /// [`Self::token_check`]); pass [`Self::with_token_check`] for another.
    pub fn new(
        settings: &IngestSettings,
        validator: Arc<dyn TokenValidator>,
        queue: Arc<dyn ScoreQueue>,
        reader: Arc<dyn ScoreReader>,
        stored_writes: Arc<dyn StoredWrites>,
        cursor_key: &CursorKey,
    ) -> Self {
        let check = TokenCheck::UserService {
            validator,
            cache: ValidationCache::new(settings.auth_cache_ttl),
        };
        Self::with_token_check(settings, check, queue, reader, stored_writes, cursor_key)
    }

    pub fn with_token_check(
        settings: &IngestSettings,
        check: TokenCheck,
        queue: Arc<dyn ScoreQueue>,
        reader: Arc<dyn ScoreReader>,
        stored_writes: Arc<dyn StoredWrites>,
        cursor_key: &CursorKey,
    ) -> Self {
        Self {
            auth: Arc::new(Authenticator {
                check,
                user_claim: settings.user_claim.clone(),
                service_scope: settings.service_scope.clone(),
                service_group: settings.service_group.clone(),
            }),
            queue,
            reader,
            stored_writes,
            cursors: Arc::new(CursorCodec::new(cursor_key)),
            now: OffsetDateTime::now_utc,
        }
    }

    /// How tokens are checked in `settings.auth_mode`: the User Service over HTTP, or the
    /// issuer's JWKS.
    pub fn token_check(settings: &IngestSettings) -> anyhow::Result<TokenCheck> {
        Ok(match &settings.auth_mode {
            AuthMode::UserService => TokenCheck::UserService {
                validator: Arc::new(
                    UserServiceValidator::new(
                        &settings.user_service_endpoint(),
                        settings.user_service_timeout,
                    )
                    .context("building the User Service client")?,
                ),
                cache: ValidationCache::new(settings.auth_cache_ttl),
            },
            AuthMode::Jwks(config) => TokenCheck::Local(Arc::new(
                JwksVerifier::new((**config).clone()).context("building the JWKS client")?,
            )),
            AuthMode::GatewayJwt => TokenCheck::Gateway,
        })
    }

    /// The production wiring: [`Self::token_check`], SQS and DynamoDB from one `SdkConfig`.
    pub fn from_settings(
        settings: &IngestSettings,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let check = Self::token_check(settings)?;
        let queue = SqsScoreQueue::new(
            platform::aws::sqs_client_bounded(sdk, settings.sqs_send_timeout),
            settings.queue_url.as_str(),
        );
        let table_client =
            platform::aws::dynamodb_client_bounded(sdk, settings.dynamodb_read_timeout);
        let reader = DynamoScoreReader {
            client: table_client.clone(),
            table_name: settings.table_name.clone(),
        };
        let stored_writes = DynamoStoredWrites::new(table_client, settings.table_name.as_str());
        let cursor_key = match &settings.cursor_signing_key {
            Some(key) => key.clone(),
            // Lambda runs many short-lived instances at once: with a key per instance, page 2
            // would fail whenever it reached another one. Refuse to start instead.
            None if platform::telemetry::running_in_lambda() => anyhow::bail!(
                "environment variable CURSOR_SIGNING_KEY is required under Lambda: every \
                 instance must sign list cursors with the same key (at least 32 bytes, e.g. \
                 `openssl rand -base64 48`)"
            ),
            None => {
                tracing::warn!(
                    "CURSOR_SIGNING_KEY is not set: list cursors are signed with a random \
                     per-process key, so they fail (400) on any other instance or after a restart"
                );
                CursorKey::random().context("generating a cursor signing key")?
            }
        };
        Ok(Self::with_token_check(
            settings,
            check,
            Arc::new(queue),
            Arc::new(reader),
            Arc::new(stored_writes),
            &cursor_key,
        ))
    }
}
