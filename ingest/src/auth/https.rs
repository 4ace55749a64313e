//! The outbound HTTP(S) client of the auth adapters (User Service, JWKS): hyper's pooled
//! client on rustls with ring and the system's roots, the same stack the AWS SDK client is
//! built on, so it adds almost nothing to the binary.

use std::time::Duration;

use anyhow::Context as _;

pub(super) type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// `GET uri`, with `authorization` when given (marked sensitive, so no debug output of the
/// request shows it), reading at most `max_body_bytes` of the answer: the body is always
/// read, so the connection goes back to the pool. Errors name the URL, never the header.
pub(super) async fn get(
    client: &HttpsClient,
    uri: &http::Uri,
    authorization: Option<http::HeaderValue>,
    max_body_bytes: usize,
) -> anyhow::Result<(http::StatusCode, bytes::Bytes)> {
    use http_body_util::BodyExt as _;
    let mut request = http::Request::new(http_body_util::Empty::new());
    *request.uri_mut() = uri.clone();
    if let Some(mut value) = authorization {
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    let response = client
        .request(request)
        .await
        .with_context(|| format!("GET {uri}"))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), max_body_bytes)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("reading the answer of GET {uri}"))?
        .to_bytes();
    Ok((status, body))
}

/// A client whose connections time out after `connect_timeout`; callers bound the whole
/// exchange themselves.
pub(super) fn https_client(connect_timeout: Duration, what: &str) -> anyhow::Result<HttpsClient> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .with_context(|| format!("loading the system's TLS root certificates for {what}"))?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}
