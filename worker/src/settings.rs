//! Worker configuration, from the environment.

use std::time::Duration;

use shared::settings::{millis, parsed, required, SettingsError, Source};

use crate::processor::ProcessorConfig;

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

/// The event source mapping's own limit for standard queues.
pub const MAX_POLLER_BATCH_SIZE: usize = 10_000;

fn at_least_one(
    source: &dyn Source,
    name: &'static str,
    default: usize,
) -> Result<usize, SettingsError> {
    match parsed(source, name, default)? {
        0 => Err(SettingsError::Invalid {
            name,
            reason: "must be at least 1".into(),
        }),
        n => Ok(n),
    }
}

impl WorkerSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        let write_concurrency = at_least_one(source, "WRITE_CONCURRENCY", 4)?;
        let receive_loops = at_least_one(source, "POLLER_RECEIVE_LOOPS", 10)?;
        let batch_size = at_least_one(source, "POLLER_BATCH_SIZE", 100)?;
        if batch_size > MAX_POLLER_BATCH_SIZE {
            return Err(SettingsError::Invalid {
                name: "POLLER_BATCH_SIZE",
                reason: format!("must be at most {MAX_POLLER_BATCH_SIZE}"),
            });
        }
        let batches_in_flight = at_least_one(source, "POLLER_BATCHES_IN_FLIGHT", 4)?;
        let health_port = match source.get("HEALTH_PORT") {
            None => None,
            Some(raw) => match raw.trim().parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    return Err(SettingsError::Invalid {
                        name: "HEALTH_PORT",
                        reason: format!("{raw:?} is not a port number (1..=65535)"),
                    })
                }
            },
        };
        Ok(Self {
            queue_url: source.get("QUEUE_URL"),
            dlq_url: required(source, "DLQ_URL")?,
            table_name: required(source, "TABLE_NAME")?,
            processor: ProcessorConfig {
                write_concurrency,
                retry_base_delay: millis(source, "RETRY_BASE_DELAY_MS", Duration::from_millis(50))?,
                retry_max_delay: millis(source, "RETRY_MAX_DELAY_MS", Duration::from_secs(5))?,
            },
            deadline_margin: millis(source, "DEADLINE_MARGIN_MS", Duration::from_secs(2))?,
            dynamodb_attempt_timeout: millis(
                source,
                "DYNAMODB_ATTEMPT_TIMEOUT_MS",
                Duration::from_secs(5),
            )?,
            receive_loops,
            batch_size,
            batch_window: millis(source, "POLLER_BATCH_WINDOW_MS", Duration::from_millis(100))?,
            batches_in_flight,
            failure_visibility_base: Duration::from_secs(parsed(
                source,
                "FAILURE_VISIBILITY_BASE_SECONDS",
                5u64,
            )?),
            health_port,
            shutdown_grace: Duration::from_secs(parsed(source, "SHUTDOWN_GRACE_SECONDS", 25u64)?),
        })
    }

    pub fn require_queue_url(&self) -> Result<&str, SettingsError> {
        self.queue_url
            .as_deref()
            .ok_or(SettingsError::Missing("QUEUE_URL"))
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
                matches!(
                    WorkerSettings::from_source(&env),
                    Err(SettingsError::Invalid {
                        name: "HEALTH_PORT",
                        ..
                    })
                ),
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
                matches!(
                    WorkerSettings::from_source(&env),
                    Err(SettingsError::Invalid { name: n, .. }) if n == name
                ),
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
}
