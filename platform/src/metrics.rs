//! Metrics in CloudWatch Embedded Metric Format: top-level JSON lines on stdout, which
//! CloudWatch Logs turns into metrics with no API call on the request path.
//!
//! Code records through [`count`], [`count_by`], [`count_with`] and [`observe`]. Where they
//! go depends on the mode:
//!
//! * Under Lambda every invocation runs in its own [`scoped`] collection: what it records is
//!   kept apart and written as that invocation's own EMF documents (carrying its
//!   `requestId`) when it ends, before its response is sent. With several invocations in one
//!   execution environment at once (Lambda Managed Instances, `AWS_LAMBDA_MAX_CONCURRENCY`
//!   above 1) a process-wide flush at the end of one would write the others' half-counted
//!   figures; per invocation, each figure is written exactly once, in the document of the
//!   invocation that recorded it, and nothing waits for a timer that a frozen or retired
//!   environment might never fire.
//! * Elsewhere (server and poller mode), and for what an invocation's code records outside
//!   it (start-up), the `metrics` facade with `metrics_cloudwatch_embedded` as the recorder:
//!   one EMF document per label set when [`flush`] is called, every `METRICS_FLUSH_SECONDS`
//!   ([`spawn_periodic_flush`]) and on the way out.
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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Key, Label, Unit};
use metrics_cloudwatch_embedded::Collector;

use crate::settings::{MetricsEnv, SettingsError, Source};

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

pub const DEFAULT_NAMESPACE: &str = crate::settings::DEFAULT_METRICS_NAMESPACE;
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
    /// The metrics' settings ([`MetricsEnv`]'s variables) from `source`; `default_service`
    /// names the binary when `METRICS_SERVICE` is unset.
    pub fn from_source(source: &dyn Source, default_service: &str) -> Result<Self, SettingsError> {
        Self::from_env(crate::settings::parse(source)?, default_service)
    }

    pub fn from_env(env: MetricsEnv, default_service: &str) -> Result<Self, SettingsError> {
        let enabled = match env.metrics.as_deref().map(str::trim) {
            None | Some("") => crate::telemetry::json_logs(),
            Some(v) if v.eq_ignore_ascii_case("emf") => true,
            Some(v) if v.eq_ignore_ascii_case("off") => false,
            Some(v) => {
                return Err(SettingsError::invalid(
                    "METRICS",
                    format!("{v:?}: expected emf or off"),
                ))
            }
        };
        let text = |name: &'static str, value: &str| -> Result<String, SettingsError> {
            let value = value.trim();
            // CloudWatch: 1 to 255 characters, no leading colon; dimension values 1 to 1024.
            if value.is_empty() || value.len() > 255 || value.starts_with(':') || !value.is_ascii()
            {
                return Err(SettingsError::invalid(
                    name,
                    format!("{value:?}: expected 1 to 255 ASCII characters, not starting with ':'"),
                ));
            }
            Ok(value.to_owned())
        };
        let seconds = env.metrics_flush_seconds;
        if seconds == 0 || seconds > 3600 {
            return Err(SettingsError::invalid(
                "METRICS_FLUSH_SECONDS",
                format!("{seconds}: expected 1 to 3600 seconds"),
            ));
        }
        Ok(Self {
            enabled,
            namespace: text("METRICS_NAMESPACE", &env.metrics_namespace)?,
            service: text(
                "METRICS_SERVICE",
                env.metrics_service.as_deref().unwrap_or(default_service),
            )?,
            flush_interval: Duration::from_secs(seconds),
        })
    }
}

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
static OBSERVED: Mutex<Option<HashMap<Key, Observations>>> = Mutex::new(None);
/// Held by [`flush`]: the recorder keeps at most 100 values a histogram between flushes, and
/// two flushes at once (invocations ending together) could push 200 into it.
static FLUSHING: Mutex<()> = Mutex::new(());

tokio::task_local! {
    /// The collection of the invocation this task is running, when it runs one.
    static SCOPE: Arc<Mutex<Scope>>;
}

#[derive(Default)]
struct Observations {
    values: Vec<f64>,
    seen: u64,
}

impl Observations {
    fn add(&mut self, values: impl IntoIterator<Item = f64>) {
        for value in values.into_iter().filter(|v| v.is_finite()) {
            self.seen += 1;
            if self.values.len() < MAX_KEPT_OBSERVATIONS {
                self.values.push(value);
            } else {
                // Reservoir sampling: every observation is kept with the same chance.
                let slot = fastrand::u64(0..self.seen);
                if let Some(kept) = self.values.get_mut(slot as usize) {
                    *kept = value;
                }
            }
        }
    }
}

/// What one invocation recorded, written as its own documents when it ends.
#[derive(Default)]
struct Scope {
    request_id: String,
    counters: HashMap<Key, u64>,
    observed: HashMap<Key, Observations>,
}

impl Scope {
    /// One EMF document per label set, one line each, every one carrying the `requestId`
    /// (a property, not a dimension: it would make a metric per invocation). Empty when
    /// nothing was recorded.
    fn render(self, namespace: &str, service: &str, timestamp_ms: u64) -> Vec<u8> {
        type Values = Vec<(String, serde_json::Value, &'static str)>;
        let mut by_labels: BTreeMap<Vec<Label>, Values> = BTreeMap::new();
        for (key, count) in self.counters {
            let (name, labels) = key.into_parts();
            by_labels.entry(labels).or_default().push((
                name.as_str().to_owned(),
                count.into(),
                "Count",
            ));
        }
        for (key, observations) in self.observed {
            let values = summarise(observations.values);
            if values.is_empty() {
                continue;
            }
            let (name, labels) = key.into_parts();
            by_labels.entry(labels).or_default().push((
                name.as_str().to_owned(),
                values.into(),
                "Milliseconds",
            ));
        }
        let mut out = Vec::new();
        for (labels, mut values) in by_labels {
            values.sort_by(|a, b| a.0.cmp(&b.0));
            let mut dimensions = vec!["Service".to_owned()];
            let mut document = serde_json::Map::new();
            document.insert("Service".into(), service.into());
            for label in &labels {
                dimensions.push(label.key().to_owned());
                document.insert(label.key().into(), label.value().into());
            }
            document.insert("requestId".into(), self.request_id.as_str().into());
            let metrics: Vec<serde_json::Value> = values
                .iter()
                .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
                .collect();
            for (name, value, _) in values {
                document.insert(name, value);
            }
            document.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [dimensions],
                        "Metrics": metrics,
                    }],
                }),
            );
            if serde_json::to_writer(&mut out, &document).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }
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
    count_with(name, [], count);
}

/// Adds `count` to counter `name` under one extra dimension.
pub fn count_by(name: &'static str, dimension: &'static str, value: String, count: usize) {
    count_with(name, [(dimension, value)], count);
}

/// Adds `count` to counter `name` under extra dimensions, in the order given.
pub fn count_with<const N: usize>(
    name: &'static str,
    dimensions: [(&'static str, String); N],
    count: usize,
) {
    if count == 0 {
        return;
    }
    let labels: Vec<Label> = dimensions
        .into_iter()
        .map(|(dimension, value)| Label::new(dimension, value))
        .collect();
    let mut pending = Some(labels);
    let _outside_any_invocation = SCOPE.try_with(|scope| {
        if let Some(labels) = pending.take() {
            let mut scope = scope.lock().unwrap_or_else(|p| p.into_inner());
            *scope
                .counters
                .entry(Key::from_parts(name, labels))
                .or_default() += count as u64;
        }
    });
    if let Some(labels) = pending {
        if COLLECTOR.get().is_some() {
            metrics::counter!(name, labels).increment(count as u64);
        }
    }
}

/// Records values of distribution `name` (milliseconds), summarised when written.
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
    let mut pending = Some((key, values));
    let _outside_any_invocation = SCOPE.try_with(|scope| {
        if let Some((key, values)) = pending.take() {
            let mut scope = scope.lock().unwrap_or_else(|p| p.into_inner());
            scope.observed.entry(key).or_default().add(values);
        }
    });
    let Some((key, values)) = pending else {
        return;
    };
    if COLLECTOR.get().is_none() {
        return;
    }
    OBSERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default()
        .add(values);
}

/// Runs `invocation` with its own metrics: everything it records (in this task) is written
/// as its own EMF documents, with `request_id`, when it ends, however it ends (finished,
/// failed, panicked or dropped); then whatever was recorded outside any invocation. Under
/// Lambda the front ends run each invocation in one, so concurrent invocations never write
/// each other's figures. Without the recorder ([`init`], `METRICS=off`) it only runs it.
pub async fn scoped<F: Future>(request_id: String, invocation: F) -> F::Output {
    if COLLECTOR.get().is_none() {
        return invocation.await;
    }
    let scope = Arc::new(Mutex::new(Scope {
        request_id,
        ..Scope::default()
    }));
    let _written_when_done = WriteWhenDone(scope.clone());
    SCOPE.scope(scope, invocation).await
}

/// Writes its scope on drop: the end of the invocation, whichever way it came.
struct WriteWhenDone(Arc<Mutex<Scope>>);

impl Drop for WriteWhenDone {
    fn drop(&mut self) {
        let Some(collector) = COLLECTOR.get() else {
            return;
        };
        let scope = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let service = collector
            .config
            .default_dimensions
            .iter()
            .find(|(name, _)| name.as_ref() == "Service")
            .map_or("", |(_, value)| value.as_ref());
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let lines = scope.render(
            &collector.config.cloudwatch_namespace,
            service,
            u64::try_from(now_ms).unwrap_or_default(),
        );
        write_stdout(&lines);
        flush();
    }
}

/// One buffer, one write: the lines never interleave with a log line. A write that fails is
/// logged; metrics never fail a request.
fn write_stdout(lines: &[u8]) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_all(lines) {
        tracing::warn!(error = %e, "could not write metrics to stdout");
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

/// Writes every metric recorded outside an invocation's [`scoped`] collection since the last
/// flush to stdout as EMF documents, one line each, and resets them.
pub fn flush() {
    let Some(collector) = COLLECTOR.get() else {
        return;
    };
    let _one_at_a_time = FLUSHING.lock().unwrap_or_else(|p| p.into_inner());
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
    let mut buffer = Vec::with_capacity(4096);
    match collector.flush(&mut buffer) {
        Ok(()) => write_stdout(&buffer),
        Err(e) => tracing::warn!(error = %e, "could not write metrics"),
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

    /// Runs `invocation` in a collection of its own; returns what it recorded, unwritten.
    async fn recorded_by(request_id: String, invocation: impl Future<Output = ()>) -> Scope {
        let scope = Arc::new(Mutex::new(Scope {
            request_id,
            ..Scope::default()
        }));
        SCOPE.scope(scope.clone(), invocation).await;
        let recorded = std::mem::take(&mut *scope.lock().expect("not poisoned"));
        recorded
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_invocations_each_keep_only_what_they_recorded() {
        let invocations: Vec<_> = (1..=8usize)
            .map(|n| {
                tokio::spawn(recorded_by(format!("request-{n}"), async move {
                    for _ in 0..n * 10 {
                        count(names::WRITTEN, 1);
                        observe(names::BATCH_DURATION, [n as f64]);
                        // Hand the thread to the others between records.
                        tokio::task::yield_now().await;
                    }
                    count_by(names::DEAD_LETTERED, "Reason", "invalid_json".into(), n);
                }))
            })
            .collect();
        for (n, invocation) in (1..=8usize).zip(invocations) {
            let scope = invocation.await.expect("the invocation ran");
            assert_eq!(scope.request_id, format!("request-{n}"));
            let written = Key::from_static_name(names::WRITTEN);
            assert_eq!(scope.counters[&written], n as u64 * 10);
            let dead = Key::from_parts(
                names::DEAD_LETTERED,
                vec![Label::new("Reason", "invalid_json")],
            );
            assert_eq!(scope.counters[&dead], n as u64);
            let durations = &scope.observed[&Key::from_static_name(names::BATCH_DURATION)];
            assert_eq!(durations.values, vec![n as f64; n * 10]);
        }
    }

    #[tokio::test]
    async fn an_invocation_writes_a_document_per_label_set_each_with_its_request_id() {
        let scope = recorded_by("request-a".into(), async {
            count(names::REQUESTS_ALL, 2);
            count_with(
                names::REQUESTS,
                [("Route", "/health".into()), ("Status", "200".into())],
                2,
            );
            observe(names::REQUEST_LATENCY, [1.5, 2.5]);
            count(names::ERRORS_5XX, 0);
        })
        .await;
        let text = String::from_utf8(scope.render("Pipeline", "ingest", 1_700_000_000_000))
            .expect("JSON is UTF-8");
        let documents: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("one document a line"))
            .collect();
        assert_eq!(documents.len(), 2, "{text}");
        let plain = &documents[0];
        assert_eq!(plain["requestId"], "request-a");
        assert_eq!(plain["Service"], "ingest");
        assert_eq!(plain[names::REQUESTS_ALL], 2);
        assert_eq!(plain[names::REQUEST_LATENCY], serde_json::json!([1.5, 2.5]));
        assert!(plain.get(names::ERRORS_5XX).is_none(), "0 is not written");
        let directive = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(plain["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "Pipeline");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([
                {"Name": names::REQUEST_LATENCY, "Unit": "Milliseconds"},
                {"Name": names::REQUESTS_ALL, "Unit": "Count"},
            ])
        );
        let by_route = &documents[1];
        assert_eq!(by_route["requestId"], "request-a");
        assert_eq!(
            by_route["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Service", "Route", "Status"]])
        );
        assert_eq!(
            (
                &by_route["Route"],
                &by_route["Status"],
                &by_route[names::REQUESTS]
            ),
            (
                &serde_json::json!("/health"),
                &serde_json::json!("200"),
                &serde_json::json!(2)
            )
        );
    }

    #[tokio::test]
    async fn an_invocation_that_recorded_nothing_writes_nothing() {
        let scope = recorded_by("quiet".into(), async {}).await;
        assert!(scope.render("Pipeline", "worker", 1).is_empty());
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
            // Blank reads as unset (the binary's name); what CloudWatch refuses does not.
            ("METRICS_SERVICE", "crédit"),
            ("METRICS_FLUSH_SECONDS", "soon"),
            ("METRICS_FLUSH_SECONDS", "0"),
        ] {
            let err = MetricsSettings::from_source(&[(name, value)], "ingest").expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
