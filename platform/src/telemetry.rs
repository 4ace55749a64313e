//! Tracing set-up: JSON lines under Lambda (CloudWatch parses them), readable text elsewhere.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Set by Lambda for every function process: where its Runtime API is.
pub const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

/// True when the process was started by the Lambda runtime.
pub fn running_in_lambda() -> bool {
    std::env::var_os(LAMBDA_RUNTIME_API).is_some()
}

/// The log format: Lambda's advanced logging controls first (`AWS_LAMBDA_LOG_FORMAT`, `JSON`
/// or `Text`), then `LOG_FORMAT` (`json`, `text`), else JSON under Lambda (CloudWatch parses
/// it) and text elsewhere.
pub fn json_logs() -> bool {
    let chosen = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
    };
    match chosen("AWS_LAMBDA_LOG_FORMAT")
        .or_else(|| chosen("LOG_FORMAT"))
        .as_deref()
    {
        Some("json") => true,
        Some("text") => false,
        _ => running_in_lambda(),
    }
}

/// Installs the global subscriber, as lambda_runtime's own set-up does: `AWS_LAMBDA_LOG_LEVEL`
/// (Lambda's advanced logging controls) when set, else `RUST_LOG` (default `info`); the
/// format from [`json_logs`].
///
/// JSON lines carry `level`, `message`, the event's fields and the fields of every span it is
/// in as top-level members: under Lambda the runtime's invocation span adds `requestId` and
/// `xrayTraceId`, ingest's request span `correlationId`, so a Logs Insights query filters on
/// them directly.
pub fn init() {
    let (filter, bad_filter) = match std::env::var("AWS_LAMBDA_LOG_LEVEL") {
        Ok(level) if !level.trim().is_empty() => lambda_log_level(&level),
        _ => log_filter(std::env::var("RUST_LOG").ok().as_deref()),
    };
    let layer = if json_logs() {
        let mut layer = json_subscriber::JsonLayer::stdout();
        layer
            .with_level("level")
            .with_flattened_event()
            .with_top_level_flattened_span_list()
            .with_target("target");
        // Lambda stamps every line with its own time; a container's line needs its own.
        if !running_in_lambda() {
            layer.with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime);
        }
        layer.boxed()
    } else {
        // Logs go to stdout; colour codes only help a terminal and garble log files.
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_target(false)
            .compact()
            .boxed()
    };
    // A subscriber already set (tests) is fine.
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .is_ok();
    if let (true, Some(error)) = (installed, bad_filter) {
        tracing::warn!(%error, "the log level is not valid; logging at info");
    }
}

/// `AWS_LAMBDA_LOG_LEVEL`: one of Lambda's levels (`TRACE` to `FATAL`) for every target.
/// `FATAL` has no tracing level of its own and logs errors.
pub fn lambda_log_level(value: &str) -> (Targets, Option<String>) {
    let level = match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => {
            let error = format!(
                "AWS_LAMBDA_LOG_LEVEL={value:?} is not TRACE, DEBUG, INFO, WARN, ERROR or FATAL"
            );
            return (Targets::new().with_default(LevelFilter::INFO), Some(error));
        }
    };
    (Targets::new().with_default(level), None)
}

/// An error and every cause under it, `outer: inner: root`, as `{:#}` prints an
/// `anyhow::Error`: for typed errors, whose `Display` shows only their own level (the DNS
/// failure under "DynamoDB call failed" is in the source chain, and an operator needs it).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut last = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Errors that print their source themselves (`#[error("...: {0}")]`) would
            // otherwise repeat it.
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
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
    fn lambda_log_levels_map_to_tracing_levels() {
        let (filter, error) = lambda_log_level("debug");
        assert!(error.is_none());
        assert!(filter.would_enable("aws_sdk_sqs", &Level::DEBUG));
        let (filter, _) = lambda_log_level("FATAL");
        assert!(filter.would_enable("worker", &Level::ERROR));
        assert!(!filter.would_enable("worker", &Level::WARN));
        let (filter, error) = lambda_log_level("LOUD");
        assert!(error.is_some_and(|e| e.contains("AWS_LAMBDA_LOG_LEVEL")));
        assert!(filter.would_enable("worker", &Level::INFO));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("DynamoDB call failed")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Middle(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("not written yet: {0}")]
    struct SaysItsSource(#[source] std::io::Error);

    #[test]
    fn an_error_chain_prints_every_cause() {
        let e = Outer(Middle(std::io::Error::other(
            "dns error: failed to lookup address",
        )));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "DynamoDB call failed: dispatch failure: dns error: failed to lookup address"
        );
    }

    #[test]
    fn an_error_chain_does_not_repeat_a_cause_the_error_already_prints() {
        let e = SaysItsSource(std::io::Error::other("timed out"));
        assert_eq!(ErrorChain(&e).to_string(), "not written yet: timed out");
    }

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
