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
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
