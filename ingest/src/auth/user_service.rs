//! The [`TokenValidator`] adapter: the User Service over HTTP(S).

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use http::StatusCode;

use platform::metrics::{self, names};

use super::https::{get, https_client, HttpsClient};
use super::token::{AuthError, BearerToken, TokenValidator};

/// [`TokenValidator`] calling the User Service over HTTP with the caller's own header.
///
/// The client is [`https_client`]: the HTTPS stack the AWS SDK client already brings.
pub struct UserServiceValidator {
    client: HttpsClient,
    endpoint: http::Uri,
    timeout: Duration,
}

impl UserServiceValidator {
    /// `timeout` bounds the whole call: connect, TLS, the answer and its body.
    pub fn new(endpoint: &str, timeout: Duration) -> anyhow::Result<Self> {
        let endpoint: http::Uri = endpoint
            .parse()
            .with_context(|| format!("the User Service URL {endpoint:?} is not a URL"))?;
        let client = https_client(timeout, "the User Service")?;
        Ok(Self {
            client,
            endpoint,
            timeout,
        })
    }

    async fn status_of(&self, token: &BearerToken) -> anyhow::Result<StatusCode> {
        let authorization = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .context("the bearer token is not a header value")?;
        let (status, _) = get(
            &self.client,
            &self.endpoint,
            Some(authorization),
            usize::MAX,
        )
        .await?;
        Ok(status)
    }
}

#[async_trait]
impl TokenValidator for UserServiceValidator {
    async fn validate(&self, token: &BearerToken) -> Result<(), AuthError> {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, self.status_of(token)).await;
        metrics::observe(
            names::USER_SERVICE_LATENCY,
            [metrics::millis(started.elapsed())],
        );
        let verdict = judge(answer, self.timeout);
        if matches!(verdict, Err(AuthError::Unavailable(_))) {
            metrics::count(names::USER_SERVICE_UNAVAILABLE, 1);
        }
        verdict
    }
}

/// The User Service's answer (or its absence within `timeout`) as a verdict on the token.
fn judge(
    answer: Result<anyhow::Result<StatusCode>, tokio::time::error::Elapsed>,
    timeout: std::time::Duration,
) -> Result<(), AuthError> {
    let status = answer
        .map_err(|_| {
            AuthError::Unavailable(anyhow::anyhow!(
                "the User Service did not answer within {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(AuthError::Unavailable)?;
    match status {
        StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
        StatusCode::UNAUTHORIZED => Err(AuthError::NotAccepted),
        StatusCode::FORBIDDEN => Err(AuthError::Refused),
        other => Err(AuthError::Unavailable(anyhow::anyhow!(
            "the User Service answered {other}"
        ))),
    }
}
