//! Building AWS clients once, from one `SdkConfig`.
//!
//! The SDK honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_SQS` / `_DYNAMODB`) by itself,
//! so the same code talks to AWS, LocalStack or moto: there is no "if local" anywhere.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and endpoints from the standard AWS sources.
pub async fn sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// The standard loader with this project's HTTPS client; tests add endpoint and credentials.
///
/// The client is the SDK's own hyper client, on rustls with ring rather than its default
/// aws-lc-rs: the same TLS (1.2 and 1.3, the SDK's cipher suites, the system's root
/// certificates) in a much smaller binary.
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// Makes ring the process's rustls provider, for clients that take the process default
/// (reqwest). Safe to call any number of times.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed: nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// A DynamoDB client whose every call is one attempt bounded in time: the worker's own retry
/// loop owns backoff, so it can stop within the time its invocation has left.
pub fn dynamodb_client_single_attempt(
    config: &SdkConfig,
    attempt_timeout: Duration,
) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An SQS client whose calls (retries included) end within `operation_timeout`, so a slow
/// queue turns into a quick 503 rather than a hung request.
pub fn sqs_client_bounded(config: &SdkConfig, operation_timeout: Duration) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(config)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(operation_timeout)
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A DynamoDB client for the request path: its calls (SDK retries included) end within
/// `operation_timeout`, so a slow table turns into a quick 503 rather than a hung request.
pub fn dynamodb_client_bounded(
    config: &SdkConfig,
    operation_timeout: Duration,
) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(operation_timeout)
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// When `error` is a refused connection to an endpoint on loopback, the local emulator is
/// simply not running: says so and how to start it, instead of a bare "Connection refused".
pub fn emulator_hint(error: &anyhow::Error) -> Option<String> {
    let refused = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    }) || format!("{error:?}").contains("Connection refused");
    if !refused {
        return None;
    }
    let endpoint = [
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL",
    ]
    .into_iter()
    .filter_map(|name| std::env::var(name).ok())
    .find(|url| is_loopback_url(url))?;
    Some(loopback_refused_hint(&endpoint))
}

fn loopback_refused_hint(endpoint: &str) -> String {
    format!(
        "no AWS emulator is running on {endpoint} (connection refused). Start it with \
         `make emulator-up` (then `make provision`), or run the whole stack with `make dev`."
    )
}

/// True for http(s)://127.x.x.x, localhost and [::1], with or without a port.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap_or_default();
    let host_port = host_port.rsplit('@').next().unwrap_or_default();
    if host_port.starts_with("[::1]") {
        return true;
    }
    let host = host_port.split(':').next().unwrap_or_default();
    host == "localhost" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_loopback_urls() {
        for url in [
            "http://127.0.0.1:4566",
            "http://localhost:4566/",
            "http://[::1]:4566",
            "https://127.1.2.3",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://sqs.eu-west-1.amazonaws.com",
            "http://10.0.0.1:4566",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn a_refusal_elsewhere_gets_no_hint() {
        let error = anyhow::anyhow!("something else went wrong");
        assert_eq!(emulator_hint(&error), None);
    }
}
