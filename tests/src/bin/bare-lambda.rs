//! The floor for Lambda benchmarks: a bare `lambda_runtime` function that echoes its event.
//! `make bench` measures init time and memory of `ingest` and `worker` against it.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
