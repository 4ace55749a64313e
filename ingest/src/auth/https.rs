//! The outbound HTTP(S) client of the auth adapters (User Service, JWKS): hyper's pooled
//! client on rustls with ring and the system's roots, the same stack the AWS SDK client is
//! built on, so it adds almost nothing to the binary.

use std::time::Duration;

use anyhow::Context as _;

pub(super) type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

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
