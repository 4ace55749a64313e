//! Worker configuration: every variable the worker reads, declared once ([`WorkerEnv`]), and
//! the rules that make [`WorkerSettings`] of them.

use std::time::Duration;

use clap::Args;
use platform::provision::ProvisionRequest;
use platform::settings::{trimmed, CommonEnv, SettingsError, Source};

use crate::processor::ProcessorConfig;

/// The worker's variables: name (the field's, in capitals), default, help. `worker --help`,
/// the README check below and [`WorkerSettings::from_source`] all read this one declaration.
#[derive(Debug, Clone, Args)]
pub struct WorkerEnv {
    /// the dead-letter queue (required)
    #[arg(long, env)]
    pub dlq_url: Option<String>,
    /// the DynamoDB table (required)
    #[arg(long, env)]
    pub table_name: Option<String>,
    /// the score queue (required by the poller; under Lambda the event source mapping reads it)
    #[arg(long, env)]
    pub queue_url: Option<String>,
    /// BatchWriteItem requests in flight per batch
    #[arg(long, env, default_value_t = 4, value_parser = at_least_one)]
    pub write_concurrency: usize,
    /// first retry delay cap (full jitter below it)
    #[arg(long, env, default_value_t = 50, value_parser = trimmed::<u64>)]
    pub retry_base_delay_ms: u64,
    /// largest retry delay cap
    #[arg(long, env, default_value_t = 5000, value_parser = trimmed::<u64>)]
    pub retry_max_delay_ms: u64,
    /// time kept back from the Lambda deadline / visibility timeout
    #[arg(long, env, default_value_t = 2000, value_parser = trimmed::<u64>)]
    pub deadline_margin_ms: u64,
    /// bound on one DynamoDB call
    #[arg(long, env, default_value_t = 5000, value_parser = trimmed::<u64>)]
    pub dynamodb_attempt_timeout_ms: u64,
    /// poller: long-polling loops, each keeping one ReceiveMessage of 10 in flight
    #[arg(long, env, default_value_t = 10, value_parser = at_least_one)]
    pub poller_receive_loops: usize,
    /// poller: most messages in one batch (1 to 10,000, as the mapping's BatchSize)
    #[arg(long, env, default_value_t = 100, value_parser = batch_size)]
    pub poller_batch_size: usize,
    /// poller: how long a batch gathers after its first message
    #[arg(long, env, default_value_t = 100, value_parser = trimmed::<u64>)]
    pub poller_batch_window_ms: u64,
    /// poller: batches processed at once
    #[arg(long, env, default_value_t = 4, value_parser = at_least_one)]
    pub poller_batches_in_flight: usize,
    /// poller: first redelivery delay of a failed message; doubles per receive
    #[arg(long, env, default_value_t = 5, value_parser = trimmed::<u64>)]
    pub failure_visibility_base_seconds: u64,
    /// poller: port of GET /health and GET /ready (unset: no port)
    #[arg(long, env, value_parser = port_number)]
    pub health_port: Option<u16>,
    /// poller: how long the batches in hand may take after SIGTERM
    #[arg(long, env, default_value_t = 25, value_parser = trimmed::<u64>)]
    pub shutdown_grace_seconds: u64,
}

impl WorkerEnv {
    /// Every variable the worker reads, its own and the logging and metrics ones.
    pub fn variables() -> Vec<clap::Arg> {
        let mut all = platform::settings::declared::<WorkerEnv>();
        all.extend(platform::settings::declared::<CommonEnv>());
        all
    }
}

/// The `Environment:` part of `worker --help`.
pub fn environment_help() -> String {
    platform::settings::environment_help(&WorkerEnv::variables(), platform::settings::AWS_FOOTER)
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Needed by the poller only; under Lambda the event source mapping reads the queue.
    pub queue_url: Option<String>,
    pub dlq_url: String,
    pub table_name: String,
    pub processor: ProcessorConfig,
    /// Time kept back from the deadline so the response reaches SQS/Lambda in time.
    pub deadline_margin: Duration,
    pub dynamodb_attempt_timeout: Duration,
    /// Poller mode: receive loops, each keeping one ReceiveMessage (10 messages) in flight.
    pub receive_loops: usize,
    /// Poller mode: the most messages gathered into one batch (like the event source
    /// mapping's `BatchSize`).
    pub batch_size: usize,
    /// Poller mode: how long a batch may gather once its first message is in hand (like the
    /// mapping's `MaximumBatchingWindowInSeconds`, in finer steps).
    pub batch_window: Duration,
    /// Poller mode: batches being processed at once.
    pub batches_in_flight: usize,
    /// First visibility delay for a failed message in poller mode; doubles per receive.
    pub failure_visibility_base: Duration,
    /// Poller mode: the port of the liveness/readiness answers (`worker::health`); none
    /// when unset, so Lambda and several local pollers on one machine need no port.
    pub health_port: Option<u16>,
    /// Poller mode: how long batches in hand may take after SIGTERM. Shorter than the
    /// orchestrator's own grace (Kubernetes and ECS default to 30 s) so the worker exits
    /// itself rather than being killed.
    pub shutdown_grace: Duration,
}

/// `worker provision`'s variables: what it creates when missing.
#[derive(Debug, Clone, Args)]
pub struct ProvisionEnv {
    /// the score queue's name
    #[arg(long, env, default_value = "credit-scores")]
    pub queue_name: String,
    /// the dead-letter queue's name
    #[arg(long, env, default_value = "credit-scores-dlq")]
    pub dlq_name: String,
    /// the table's name
    #[arg(long, env, default_value = "credit-scores")]
    pub table_name: String,
    /// receives before a message moves to the dead-letter queue
    #[arg(long, env, default_value_t = 5, value_parser = trimmed::<u32>)]
    pub max_receive_count: u32,
    /// the score queue's visibility timeout
    #[arg(long, env, default_value_t = 60, value_parser = trimmed::<u32>)]
    pub visibility_timeout_seconds: u32,
}

impl From<ProvisionEnv> for ProvisionRequest {
    fn from(env: ProvisionEnv) -> Self {
        Self {
            queue_name: env.queue_name,
            dlq_name: env.dlq_name,
            table_name: env.table_name,
            max_receive_count: env.max_receive_count,
            visibility_timeout_seconds: env.visibility_timeout_seconds,
        }
    }
}

/// The `Environment:` part of `worker provision --help`.
pub fn provision_help() -> String {
    platform::settings::environment_help(
        &platform::settings::declared::<ProvisionEnv>(),
        platform::settings::AWS_FOOTER,
    )
}

/// The event source mapping's own limit for standard queues.
pub const MAX_POLLER_BATCH_SIZE: usize = 10_000;

fn at_least_one(raw: &str) -> Result<usize, String> {
    match trimmed::<usize>(raw).map_err(|e| e.to_string())? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn batch_size(raw: &str) -> Result<usize, String> {
    match at_least_one(raw)? {
        n if n > MAX_POLLER_BATCH_SIZE => Err(format!("must be at most {MAX_POLLER_BATCH_SIZE}")),
        n => Ok(n),
    }
}

fn port_number(raw: &str) -> Result<u16, String> {
    match trimmed::<u16>(raw) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{raw:?} is not a port number (1..=65535)")),
    }
}

impl WorkerSettings {
    /// The settings from `source` (the process environment, or pairs in tests) and the
    /// declared defaults.
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        platform::settings::parse::<WorkerEnv>(source).and_then(Self::try_from)
    }

    pub fn require_queue_url(&self) -> Result<&str, SettingsError> {
        self.queue_url
            .as_deref()
            .ok_or(SettingsError::Missing("QUEUE_URL"))
    }
}

impl TryFrom<WorkerEnv> for WorkerSettings {
    type Error = SettingsError;

    fn try_from(env: WorkerEnv) -> Result<Self, SettingsError> {
        Ok(Self {
            queue_url: env.queue_url,
            dlq_url: env.dlq_url.ok_or(SettingsError::Missing("DLQ_URL"))?,
            table_name: env.table_name.ok_or(SettingsError::Missing("TABLE_NAME"))?,
            processor: ProcessorConfig {
                write_concurrency: env.write_concurrency,
                retry_base_delay: Duration::from_millis(env.retry_base_delay_ms),
                retry_max_delay: Duration::from_millis(env.retry_max_delay_ms),
            },
            deadline_margin: Duration::from_millis(env.deadline_margin_ms),
            dynamodb_attempt_timeout: Duration::from_millis(env.dynamodb_attempt_timeout_ms),
            receive_loops: env.poller_receive_loops,
            batch_size: env.poller_batch_size,
            batch_window: Duration::from_millis(env.poller_batch_window_ms),
            batches_in_flight: env.poller_batches_in_flight,
            failure_visibility_base: Duration::from_secs(env.failure_visibility_base_seconds),
            health_port: env.health_port,
            shutdown_grace: Duration::from_secs(env.shutdown_grace_seconds),
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn names_the_missing_table() {
        let env = [("DLQ_URL", "http://q")];
        let err = WorkerSettings::from_source(&env).unwrap_err();
        assert_eq!(err, SettingsError::Missing("TABLE_NAME"));
    }

    #[test]
    fn rejects_zero_concurrency() {
        let env = [
            ("DLQ_URL", "http://q"),
            ("TABLE_NAME", "t"),
            ("WRITE_CONCURRENCY", "0"),
        ];
        assert!(WorkerSettings::from_source(&env).is_err());
    }

    #[test]
    fn the_health_port_is_off_unless_set_and_must_be_a_port() {
        let base = [("DLQ_URL", "http://q"), ("TABLE_NAME", "t")];
        let settings = WorkerSettings::from_source(&base).unwrap();
        assert_eq!(settings.health_port, None);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(25));
        let set = [
            ("DLQ_URL", "http://q"),
            ("TABLE_NAME", "t"),
            ("HEALTH_PORT", "8081"),
            ("SHUTDOWN_GRACE_SECONDS", "10"),
        ];
        let settings = WorkerSettings::from_source(&set).unwrap();
        assert_eq!(settings.health_port, Some(8081));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
        for bad in ["0", "65536", "http"] {
            let env = [
                ("DLQ_URL", "http://q"),
                ("TABLE_NAME", "t"),
                ("HEALTH_PORT", bad),
            ];
            assert!(
                WorkerSettings::from_source(&env).is_err_and(|err| err.variable() == "HEALTH_PORT"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_poller_gathers_batches_of_a_hundred_by_default_within_the_mapping_limit() {
        let base = [("DLQ_URL", "http://q"), ("TABLE_NAME", "t")];
        let settings = WorkerSettings::from_source(&base).unwrap();
        assert_eq!(settings.batch_size, 100);
        assert_eq!(settings.receive_loops, 10);
        assert_eq!(settings.batches_in_flight, 4);
        assert_eq!(settings.batch_window, Duration::from_millis(100));
        for (name, bad) in [
            ("POLLER_BATCH_SIZE", "0"),
            ("POLLER_BATCH_SIZE", "10001"),
            ("POLLER_BATCHES_IN_FLIGHT", "0"),
            ("POLLER_RECEIVE_LOOPS", "0"),
            ("POLLER_BATCH_WINDOW_MS", "soon"),
        ] {
            let env = [("DLQ_URL", "http://q"), ("TABLE_NAME", "t"), (name, bad)];
            assert!(
                WorkerSettings::from_source(&env).is_err_and(|err| err.variable() == name),
                "{name}={bad}"
            );
        }
    }

    #[test]
    fn the_poller_needs_a_queue_url() {
        let env = [("DLQ_URL", "http://q"), ("TABLE_NAME", "t")];
        let settings = WorkerSettings::from_source(&env).unwrap();
        assert_eq!(
            settings.require_queue_url(),
            Err(SettingsError::Missing("QUEUE_URL"))
        );
    }

    /// Variables the README lists that no settings struct declares: the AWS SDK reads them.
    const READ_BY_THE_AWS_SDK: [&str; 2] = ["AWS_REGION", "AWS_ENDPOINT_URL"];

    #[test]
    fn the_readme_lists_exactly_the_declared_variables() {
        let documented = platform::settings::documented_variables(include_str!("../../README.md"))
            .into_iter()
            .filter(|(_, used_by)| used_by.contains("worker") || used_by.contains("both"))
            .map(|(name, _)| name);
        let (undocumented, undeclared) = platform::settings::disagreement(
            &WorkerEnv::variables(),
            documented,
            &[],
            &READ_BY_THE_AWS_SDK,
        );
        assert!(
            undocumented.is_empty(),
            "declared but in no row of README.md's table for the worker: {undocumented:?}"
        );
        assert!(
            undeclared.is_empty(),
            "documented for the worker but not declared in WorkerEnv: {undeclared:?}"
        );
    }

    /// Declared variables the template leaves to their defaults, on purpose.
    const NOT_IN_THE_TEMPLATE: [&str; 16] = [
        // Their defaults are what the stack wants.
        "WRITE_CONCURRENCY",
        "RETRY_BASE_DELAY_MS",
        "RETRY_MAX_DELAY_MS",
        "DEADLINE_MARGIN_MS",
        "DYNAMODB_ATTEMPT_TIMEOUT_MS",
        // Poller mode only: under Lambda the event source mapping polls.
        "POLLER_RECEIVE_LOOPS",
        "POLLER_BATCH_SIZE",
        "POLLER_BATCH_WINDOW_MS",
        "POLLER_BATCHES_IN_FLIGHT",
        "FAILURE_VISIBILITY_BASE_SECONDS",
        "HEALTH_PORT",
        "SHUTDOWN_GRACE_SECONDS",
        "METRICS_FLUSH_SECONDS",
        // Lambda's own logging controls set these, and JSON is the default under Lambda.
        "AWS_LAMBDA_LOG_LEVEL",
        "AWS_LAMBDA_LOG_FORMAT",
        "LOG_FORMAT",
    ];

    /// Template variables for libraries rather than the worker's settings.
    const FOR_LIBRARIES: [&str; 1] = [
        // rustls-native-certs: one CA bundle instead of a scan of /etc/ssl/certs.
        "SSL_CERT_FILE",
    ];

    #[test]
    fn the_template_sets_every_declared_variable_it_does_not_leave_to_its_default() {
        let in_template = platform::settings::template_variables(
            include_str!("../../infra/template.yaml"),
            "WorkerFunction",
        );
        assert!(
            in_template.iter().any(|name| name == "DLQ_URL"),
            "{in_template:?}"
        );
        let (missing, unknown) = platform::settings::disagreement(
            &WorkerEnv::variables(),
            in_template,
            &NOT_IN_THE_TEMPLATE,
            &FOR_LIBRARIES,
        );
        assert!(
            missing.is_empty(),
            "declared, not in WorkerFunction's environment nor NOT_IN_THE_TEMPLATE: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "WorkerFunction sets variables the worker does not declare: {unknown:?}"
        );
    }

    #[test]
    fn provisioning_has_defaults_and_names_a_bad_count() {
        let request: ProvisionRequest = platform::settings::parse::<ProvisionEnv>(&[("X", "1")])
            .unwrap()
            .into();
        assert_eq!(request.queue_name, "credit-scores");
        assert_eq!(request.max_receive_count, 5);
        assert_eq!(request.visibility_timeout_seconds, 60);
        let err = platform::settings::parse::<ProvisionEnv>(&[("MAX_RECEIVE_COUNT", "five")])
            .unwrap_err();
        assert_eq!(err.variable(), "MAX_RECEIVE_COUNT");
    }
}
