//! The [`TokenValidator`] adapter: the User Service over HTTP(S).

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use axum::http::{header, StatusCode};

use shared::metrics::{self, names};

use super::token::{AuthError, BearerToken, TokenValidator};

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// [`TokenValidator`] calling the User Service over HTTP with the caller's own header.
///
/// The client is hyper's pooled client on rustls with ring and the system's roots: the same
/// HTTPS stack the AWS SDK client is built on, so the User Service call adds almost nothing
/// to the binary.
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
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .context("loading the system's TLS root certificates for the User Service")?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self {
            client,
            endpoint,
            timeout,
        })
    }

    async fn status_of(&self, token: &BearerToken) -> anyhow::Result<StatusCode> {
        use http_body_util::BodyExt as _;
        let mut authorization = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .context("the bearer token is not a header value")?;
        // Kept out of any debug output of the request.
        authorization.set_sensitive(true);
        let mut request = http::Request::new(http_body_util::Empty::new());
        *request.uri_mut() = self.endpoint.clone();
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, authorization);
        let response = self
            .client
            .request(request)
            .await
            // The error names the URL at most, never the header.
            .with_context(|| format!("GET {}", self.endpoint))?;
        let status = response.status();
        // Read the (small) body so the connection goes back to the pool.
        response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of GET {}", self.endpoint))?;
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
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            Err(AuthError::Rejected(status))
        }
        other => Err(AuthError::Unavailable(anyhow::anyhow!(
            "the User Service answered {other}"
        ))),
    }
}
