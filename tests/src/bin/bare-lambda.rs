//! The floor for Lambda benchmarks: a bare `lambda_runtime` function that echoes its event.
//! `make bench` measures init time and memory of `ingest` and `worker` against it.

use clap::Parser;
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// A bare Lambda function that echoes its event: the floor `make bench` compares ingest and
/// worker against. Run it under a Lambda Runtime API (AWS_LAMBDA_RUNTIME_API).
#[derive(Debug, Parser)]
#[command(name = "bare-lambda")]
struct Cli {}

#[tokio::main]
async fn main() -> Result<(), Error> {
    Cli::parse();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
