//! The HTTP API: validate, authorize and enqueue credit score writes; serve reads and docs.
//!
//! [`app`] builds the router so tests call it without a socket; [`run`] serves it under
//! Lambda (API Gateway REST v1 and HTTP API v2 events) or as a plain HTTP server.

pub mod api;
pub mod auth;
pub mod cursor;
pub mod idempotency;
pub mod lambda;
pub mod queue;
pub mod reads;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use http::Method;
use time::OffsetDateTime;

use crate::auth::{Authenticator, TokenValidator, UserServiceValidator, ValidationCache};
use crate::cursor::{CursorCodec, CursorKey};
use crate::idempotency::{DynamoStoredWrites, StoredWrites};
use crate::queue::{ScoreQueue, SqsScoreQueue};
use crate::reads::{DynamoScoreReader, ScoreReader};
use crate::settings::IngestSettings;

pub use api::MAX_BODY_BYTES;

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
    pub fn new(
        settings: &IngestSettings,
        validator: Arc<dyn TokenValidator>,
        queue: Arc<dyn ScoreQueue>,
        reader: Arc<dyn ScoreReader>,
        stored_writes: Arc<dyn StoredWrites>,
        cursor_key: &CursorKey,
    ) -> Self {
        Self {
            auth: Arc::new(Authenticator {
                validator,
                cache: ValidationCache::new(settings.auth_cache_ttl),
                user_claim: settings.user_claim.clone(),
                service_scope: settings.service_scope.clone(),
            }),
            queue,
            reader,
            stored_writes,
            cursors: Arc::new(CursorCodec::new(cursor_key)),
            now: OffsetDateTime::now_utc,
        }
    }

    /// The production wiring: User Service over HTTP, SQS and DynamoDB from one `SdkConfig`.
    pub fn from_settings(
        settings: &IngestSettings,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let validator = UserServiceValidator::new(
            &settings.user_service_endpoint(),
            settings.user_service_timeout,
        )
        .context("building the User Service client")?;
        let queue = SqsScoreQueue {
            client: shared::aws::sqs_client_bounded(sdk, settings.sqs_send_timeout),
            queue_url: settings.queue_url.clone(),
        };
        let table_client =
            shared::aws::dynamodb_client_bounded(sdk, settings.dynamodb_read_timeout);
        let reader = DynamoScoreReader {
            client: table_client.clone(),
            table_name: settings.table_name.clone(),
        };
        let stored_writes = DynamoStoredWrites {
            client: table_client,
            table_name: settings.table_name.clone(),
        };
        let cursor_key = match &settings.cursor_signing_key {
            Some(key) => key.clone(),
            // Lambda runs many short-lived instances at once: with a key per instance, page 2
            // would fail whenever it reached another one. Refuse to start instead.
            None if shared::telemetry::running_in_lambda() => anyhow::bail!(
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
        Ok(Self::new(
            settings,
            Arc::new(validator),
            Arc::new(queue),
            Arc::new(reader),
            Arc::new(stored_writes),
            &cursor_key,
        ))
    }
}

/// [`app`] as served in server mode: with the CORS layer when `CORS_ALLOWED_ORIGINS` lists
/// origins (under API Gateway the HTTP API answers CORS itself).
pub fn server_app(state: AppState, settings: &IngestSettings) -> Router {
    let router = app(state);
    match cors_layer(&settings.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Preflights from the listed origins get the methods and headers the API uses; other
/// origins get no CORS headers, so browsers refuse them. None when no origin is listed.
pub fn cors_layer(origins: &[http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                AUTHORIZATION,
                CONTENT_TYPE,
                http::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([LOCATION, RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The whole HTTP API on `state`, without a socket (tests call it directly).
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves [`app`] under Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else on `PORT`.
pub async fn run(settings: IngestSettings) -> anyhow::Result<()> {
    let sdk = shared::aws::sdk_config().await;
    let state = AppState::from_settings(&settings, &sdk)?;
    if shared::telemetry::running_in_lambda() {
        lambda::run(app(state)).await
    } else {
        let router = server_app(state, &settings);
        let addr = SocketAddr::new(settings.bind_address, settings.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (BIND_ADDRESS, PORT)"))?;
        tracing::info!(%addr, "ingest listening");
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
