//! What `ingest` and `worker` run on, around the contract (the `contract` crate): the AWS SDK
//! clients ([`aws`]), the DynamoDB item mapping ([`item`]), batched SQS sends ([`sqs_batch`]),
//! provisioning ([`provision`]), settings ([`settings`]), logs ([`telemetry`]), CloudWatch EMF
//! metrics ([`metrics`]), the tokio runtime ([`runtime`]) and what belongs to the one Lambda
//! invocation a task runs ([`invocation`]: its metrics and trace, apart from the others running
//! beside it).

pub mod aws;
pub mod invocation;
pub mod item;
pub mod metrics;
pub mod provision;
pub mod runtime;
pub mod settings;
pub mod sqs_batch;
pub mod telemetry;
