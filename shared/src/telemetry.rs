//! Tracing set-up: JSON lines under Lambda (CloudWatch parses them), readable text elsewhere.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// True when the process was started by the Lambda runtime.
pub fn running_in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`); `LOG_FORMAT=json`
/// forces JSON outside Lambda (containers), `LOG_FORMAT=text` forces text inside it.
pub fn init() {
    let (filter, bad_filter) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => running_in_lambda(),
    };
    // Logs go to stdout; colour codes only help a terminal and garble log files.
    let layer =
        tracing_subscriber::fmt::layer().with_ansi(!json && std::io::stdout().is_terminal());
    let layer = if json {
        layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            // Lambda stamps every line with its own time.
            .without_time()
            .boxed()
    } else {
        layer.with_target(false).compact().boxed()
    };
    // A subscriber already set (tests) is fine.
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .is_ok();
    if let (true, Some(error)) = (installed, bad_filter) {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; logging at info");
    }
}

/// `RUST_LOG` as a list of `level` and `target=level` directives (`info,worker=debug`), the
/// part of env_logger's syntax services use; [`Targets`] needs no regex engine, which keeps
/// both binaries smaller. A value that does not parse logs at `info` and says why.
pub fn log_filter(value: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match value.map(str::trim) {
        None | Some("") => (default(), None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (default(), Some(format!("{directives:?}: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn log_filter_defaults_to_info() {
        let (filter, error) = log_filter(None);
        assert!(error.is_none());
        assert!(filter.would_enable("worker", &Level::INFO));
        assert!(!filter.would_enable("worker", &Level::DEBUG));
    }

    #[test]
    fn log_filter_takes_a_level_per_target() {
        let (filter, error) = log_filter(Some("warn,worker=debug"));
        assert!(error.is_none());
        assert!(filter.would_enable("worker::processor", &Level::DEBUG));
        assert!(!filter.would_enable("ingest", &Level::INFO));
        assert!(filter.would_enable("ingest", &Level::WARN));
    }

    #[test]
    fn log_filter_off_silences_everything() {
        let (filter, _) = log_filter(Some("off"));
        assert!(!filter.would_enable("worker", &Level::ERROR));
    }

    #[test]
    fn a_bad_log_filter_falls_back_to_info_and_says_why() {
        let (filter, error) = log_filter(Some("worker=loud"));
        assert!(error.is_some_and(|e| e.contains("worker=loud")));
        assert!(filter.would_enable("worker", &Level::INFO));
        assert!(!filter.would_enable("worker", &Level::DEBUG));
    }
}
