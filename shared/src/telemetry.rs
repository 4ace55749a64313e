//! Tracing set-up: JSON lines under Lambda (CloudWatch parses them), readable text elsewhere.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// True when the process was started by the Lambda runtime.
pub fn running_in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`); `LOG_FORMAT=json`
/// forces JSON outside Lambda (containers), `LOG_FORMAT=text` forces text inside it.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => running_in_lambda(),
    };
    // Logs go to stdout; colour codes only help a terminal and garble log files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!json && std::io::stdout().is_terminal());
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            // Lambda stamps every line with its own time.
            .without_time()
            .try_init()
    } else {
        builder.with_target(false).compact().try_init()
    };
    // A subscriber already set (tests) is fine.
    drop(result);
}
