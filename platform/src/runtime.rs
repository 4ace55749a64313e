//! The tokio runtime each binary runs on.

use tokio::runtime::{Builder, Runtime};

/// Set by Lambda Managed Instances: how many invocations one execution environment is sent at
/// once (`PerExecutionEnvironmentMaxConcurrency`). Unset under standard Lambda.
pub const LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

/// The invocations this process serves at once under Lambda: [`LAMBDA_MAX_CONCURRENCY`], 1
/// when it is unset or not a positive number (lambda_runtime reads it the same way).
pub fn lambda_max_concurrency() -> u32 {
    std::env::var(LAMBDA_MAX_CONCURRENCY)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Under standard Lambda a process handles one event at a time, so a single-threaded runtime
/// does the same work without waking a thread on the other core for every socket event (in a
/// profile of the worker's Lambda-path drain, that scheduling was about a fifth of its CPU
/// time) and starts no threads at init. With concurrent invocations (Lambda Managed
/// Instances) and everywhere else (containers, the dev loop) the multi-threaded runtime runs
/// them on every core the environment has.
pub fn build() -> std::io::Result<Runtime> {
    let mut builder = if crate::telemetry::running_in_lambda() && lambda_max_concurrency() <= 1 {
        Builder::new_current_thread()
    } else {
        Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
