//! Metrics in CloudWatch Embedded Metric Format: top-level JSON lines on stdout, which
//! CloudWatch Logs turns into metrics with no API call on the request path.
//!
//! Code records through the `metrics` facade (`metrics::counter!(names::WRITTEN)`);
//! `metrics_cloudwatch_embedded` is the recorder and writes one EMF document per label set
//! when [`flush`] is called: after each Lambda invocation, or every `METRICS_FLUSH_SECONDS`
//! in server and poller mode ([`spawn_periodic_flush`]).
//!
//! Distributions (latencies, lag) go through [`observe`], not straight to a histogram: an EMF
//! document holds at most 100 values a metric, and a batch of 10,000 records or a minute of
//! requests has more. [`flush`] writes the observed values themselves when there are at most
//! 100, else 100 evenly spaced quantiles of them, so CloudWatch's percentiles stay close to the
//! true ones (a summary's `SampleCount` is then 100, not the number of observations; the
//! counters carry those).
//!
//! Settings: `METRICS` (`emf` or `off`; default `emf` under Lambda or with JSON logs, `off`
//! with text logs, where the lines would only clutter a terminal), `METRICS_NAMESPACE`
//! (default [`DEFAULT_NAMESPACE`]), `METRICS_SERVICE` (the `Service` dimension, default the
//! binary's name), `METRICS_FLUSH_SECONDS` (60).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Key, Label, Unit};
use metrics_cloudwatch_embedded::Collector;

use crate::settings::{parsed, SettingsError, Source};

/// Every metric the pipeline emits, one definition each: the code records these, the
/// template's dashboard and alarms name them, and a test holds the two together.
pub mod names {
    // ingest, per request. `Requests` carries the `Route` and `Status` dimensions; the rest
    // only `Service`, so an alarm can name them without knowing the routes.
    pub const REQUESTS: &str = "Requests";
    pub const REQUESTS_ALL: &str = "RequestsAll";
    pub const ERRORS_4XX: &str = "Errors4xx";
    pub const ERRORS_5XX: &str = "Errors5xx";
    pub const REQUEST_LATENCY: &str = "RequestLatency";
    pub const ACCEPTED_WRITES: &str = "AcceptedWrites";
    /// Dimension `Reason`: `validation:<field>`, `auth:<kind>`, `payload-too-large`, ...
    pub const REJECTIONS: &str = "Rejections";
    pub const USER_SERVICE_LATENCY: &str = "UserServiceLatency";
    pub const USER_SERVICE_UNAVAILABLE: &str = "UserServiceUnavailable";
    pub const SQS_SEND_LATENCY: &str = "SqsSendLatency";
    pub const SQS_SEND_FAILURES: &str = "SqsSendFailures";

    // worker, per batch.
    pub const BATCH_RECORDS: &str = "BatchRecords";
    pub const WRITTEN: &str = "Written";
    pub const DEDUPLICATED: &str = "Deduplicated";
    /// Dimension `Reason`: the DLQ reason code.
    pub const DEAD_LETTERED: &str = "DeadLettered";
    pub const RETRIED: &str = "Retried";
    pub const UNPROCESSED_AFTER_RETRIES: &str = "UnprocessedAfterRetries";
    pub const BATCH_WRITE_REQUESTS: &str = "BatchWriteRequests";
    pub const BATCH_DURATION: &str = "BatchDuration";
    /// Write time minus the report's `receivedAt`.
    pub const END_TO_END_LAG: &str = "EndToEndLag";
    /// Receipt time minus SQS's `SentTimestamp`.
    pub const MESSAGE_AGE: &str = "MessageAge";

    /// Every name above, for the tests that check the template against the code.
    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUESTS_ALL,
        ERRORS_4XX,
        ERRORS_5XX,
        REQUEST_LATENCY,
        ACCEPTED_WRITES,
        REJECTIONS,
        USER_SERVICE_LATENCY,
        USER_SERVICE_UNAVAILABLE,
        SQS_SEND_LATENCY,
        SQS_SEND_FAILURES,
        BATCH_RECORDS,
        WRITTEN,
        DEDUPLICATED,
        DEAD_LETTERED,
        RETRIED,
        UNPROCESSED_AFTER_RETRIES,
        BATCH_WRITE_REQUESTS,
        BATCH_DURATION,
        END_TO_END_LAG,
        MESSAGE_AGE,
    ];

    /// The distributions, in milliseconds; everything else is a count.
    pub const MILLISECONDS: &[&str] = &[
        REQUEST_LATENCY,
        USER_SERVICE_LATENCY,
        SQS_SEND_LATENCY,
        BATCH_DURATION,
        END_TO_END_LAG,
        MESSAGE_AGE,
    ];
}

pub const DEFAULT_NAMESPACE: &str = "CreditScorePipeline";
/// The most values one EMF document may hold for a metric.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// Observations kept between flushes per distribution; past it, a uniform sample is kept.
const MAX_KEPT_OBSERVATIONS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub namespace: String,
    pub service: String,
    pub flush_interval: Duration,
}

impl MetricsSettings {
    pub fn from_source(source: &dyn Source, default_service: &str) -> Result<Self, SettingsError> {
        let enabled = match source.get("METRICS").as_deref().map(str::trim) {
            None | Some("") => crate::telemetry::json_logs(),
            Some(v) if v.eq_ignore_ascii_case("emf") => true,
            Some(v) if v.eq_ignore_ascii_case("off") => false,
            Some(v) => {
                return Err(SettingsError::Invalid {
                    name: "METRICS",
                    reason: format!("{v:?}: expected emf or off"),
                })
            }
        };
        let text = |name: &'static str, default: &str| -> Result<String, SettingsError> {
            let value = source.get(name).unwrap_or_else(|| default.to_owned());
            let value = value.trim();
            // CloudWatch: 1 to 255 characters, no leading colon; dimension values 1 to 1024.
            if value.is_empty() || value.len() > 255 || value.starts_with(':') || !value.is_ascii()
            {
                return Err(SettingsError::Invalid {
                    name,
                    reason: format!(
                        "{value:?}: expected 1 to 255 ASCII characters, not starting with ':'"
                    ),
                });
            }
            Ok(value.to_owned())
        };
        let seconds: u64 = parsed(source, "METRICS_FLUSH_SECONDS", 60)?;
        if seconds == 0 || seconds > 3600 {
            return Err(SettingsError::Invalid {
                name: "METRICS_FLUSH_SECONDS",
                reason: format!("{seconds}: expected 1 to 3600 seconds"),
            });
        }
        Ok(Self {
            enabled,
            namespace: text("METRICS_NAMESPACE", DEFAULT_NAMESPACE)?,
            service: text("METRICS_SERVICE", default_service)?,
            flush_interval: Duration::from_secs(seconds),
        })
    }
}

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
static OBSERVED: Mutex<Option<HashMap<Key, Observations>>> = Mutex::new(None);

#[derive(Default)]
struct Observations {
    values: Vec<f64>,
    seen: u64,
}

/// Installs the EMF recorder (once per process; later calls, and `enabled: false`, do
/// nothing). Until it runs, every metric is a no-op and [`observe`] keeps nothing.
pub fn init(settings: &MetricsSettings) -> anyhow::Result<()> {
    if !settings.enabled || COLLECTOR.get().is_some() {
        return Ok(());
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(settings.namespace.clone())
        .with_dimension("Service", settings.service.clone())
        .init()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    for name in names::MILLISECONDS {
        metrics::describe_histogram!(*name, Unit::Milliseconds, "");
    }
    for name in names::ALL
        .iter()
        .filter(|n| !names::MILLISECONDS.contains(n))
    {
        metrics::describe_counter!(*name, Unit::Count, "");
    }
    let _ = COLLECTOR.set(collector);
    Ok(())
}

/// Adds `count` to counter `name` (a no-op for 0, so absent outcomes emit nothing).
pub fn count(name: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!(name).increment(count as u64);
    }
}

/// Adds `count` to counter `name` under one extra dimension.
pub fn count_by(name: &'static str, dimension: &'static str, value: String, count: usize) {
    if count > 0 {
        metrics::counter!(name, dimension => value).increment(count as u64);
    }
}

/// Records values of distribution `name` (milliseconds), summarised at [`flush`].
pub fn observe(name: &'static str, values: impl IntoIterator<Item = f64>) {
    observe_with(Key::from_static_name(name), values);
}

/// [`observe`] under one extra dimension.
pub fn observe_by(
    name: &'static str,
    dimension: &'static str,
    value: String,
    values: impl IntoIterator<Item = f64>,
) {
    observe_with(
        Key::from_parts(name, vec![Label::new(dimension, value)]),
        values,
    );
}

fn observe_with(key: Key, values: impl IntoIterator<Item = f64>) {
    if COLLECTOR.get().is_none() {
        return;
    }
    let mut observed = OBSERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = observed
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default();
    for value in values.into_iter().filter(|v| v.is_finite()) {
        entry.seen += 1;
        if entry.values.len() < MAX_KEPT_OBSERVATIONS {
            entry.values.push(value);
        } else {
            // Reservoir sampling: every observation is kept with the same chance.
            let slot = fastrand::u64(0..entry.seen);
            if let Some(kept) = entry.values.get_mut(slot as usize) {
                *kept = value;
            }
        }
    }
}

/// At most [`MAX_VALUES_PER_METRIC`] values standing for `values`: themselves when few
/// enough, else that many evenly spaced quantiles (midpoints of equal-count slices).
pub fn summarise(mut values: Vec<f64>) -> Vec<f64> {
    if values.len() <= MAX_VALUES_PER_METRIC {
        return values;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (0..MAX_VALUES_PER_METRIC)
        .map(|i| {
            let rank = (2 * i + 1) * n / (2 * MAX_VALUES_PER_METRIC);
            values[rank.min(n - 1)]
        })
        .collect()
}

/// Writes every metric recorded since the last flush to stdout as EMF documents, one line
/// each, and resets them. A write that fails is logged; metrics never fail a request.
pub fn flush() {
    let Some(collector) = COLLECTOR.get() else {
        return;
    };
    let pending = OBSERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    for (key, observations) in pending.into_iter().flatten() {
        let (name, labels) = key.into_parts();
        let histogram = metrics::histogram!(name.as_str().to_owned(), labels);
        for value in summarise(observations.values) {
            histogram.record(value);
        }
    }
    // One buffer, one write: the lines never interleave with a log line.
    let mut buffer = Vec::with_capacity(4096);
    let written = collector
        .flush(&mut buffer)
        .and_then(|()| std::io::stdout().lock().write_all(&buffer));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not write metrics to stdout");
    }
}

/// Flushes every `interval` until the runtime stops (server and poller mode). Call [`flush`]
/// once more on shutdown for the last partial interval.
pub fn spawn_periodic_flush(interval: Duration) {
    if COLLECTOR.get().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            flush();
        }
    });
}

/// Milliseconds as CloudWatch takes them.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_sample_is_written_as_it_is() {
        assert_eq!(summarise(vec![3.0, 1.0, 2.0]), vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn a_large_sample_becomes_a_hundred_quantiles_that_keep_its_percentiles() {
        let values: Vec<f64> = (0..10_000).rev().map(f64::from).collect();
        let summary = summarise(values);
        assert_eq!(summary.len(), MAX_VALUES_PER_METRIC);
        assert!(summary.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(summary[0], 50.0);
        assert_eq!(summary[49], 4_950.0);
        assert_eq!(summary[98], 9_850.0);
    }

    #[test]
    fn metrics_follow_the_log_format_unless_told() {
        let on = MetricsSettings::from_source(&[("METRICS", "emf")], "worker").expect("valid");
        assert!(on.enabled);
        assert_eq!(on.namespace, DEFAULT_NAMESPACE);
        assert_eq!(on.service, "worker");
        assert_eq!(on.flush_interval, Duration::from_secs(60));
        let off = MetricsSettings::from_source(&[("METRICS", "off")], "worker").expect("valid");
        assert!(!off.enabled);
    }

    #[test]
    fn bad_metrics_settings_name_the_variable() {
        for (name, value) in [
            ("METRICS", "prometheus"),
            ("METRICS_NAMESPACE", ":aws"),
            ("METRICS_SERVICE", ""),
            ("METRICS_FLUSH_SECONDS", "0"),
        ] {
            let err = MetricsSettings::from_source(&[(name, value)], "ingest").expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
