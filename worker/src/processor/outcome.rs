//! What one batch came to: its log line and its metrics.

use std::time::Duration;

use platform::metrics::{self, names};
use time::OffsetDateTime;

/// What one batch came to. `failed` holds the message ids SQS must deliver again.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    pub records: usize,
    pub failed: Vec<String>,
    pub written: usize,
    pub dead_lettered: usize,
    /// Dead-lettered messages by DLQ reason code.
    pub dead_lettered_by_reason: Vec<(&'static str, usize)>,
    /// Messages folded into another with the same key (they share its fate).
    pub deduplicated: usize,
    /// BatchWriteItem requests sent, retries included.
    pub write_requests: usize,
    /// Items sent again after DynamoDB left them unprocessed or a request failed.
    pub retried: usize,
    /// Messages whose write had not succeeded when the deadline came (SQS delivers them again).
    pub unprocessed: usize,
    /// Per written message: write time minus `receivedAt`, in milliseconds.
    pub lag_ms: Vec<f64>,
    /// Per message: receipt time minus SQS's `SentTimestamp`, in milliseconds.
    pub message_age_ms: Vec<f64>,
    pub duration: Duration,
}

impl BatchOutcome {
    /// The batch's one log line and its metrics (see `platform::metrics::names`).
    pub fn report(&self) {
        tracing::info!(
            records = self.records,
            written = self.written,
            deduplicated = self.deduplicated,
            deadLettered = self.dead_lettered,
            retried = self.retried,
            unprocessed = self.unprocessed,
            failed = self.failed.len(),
            writeRequests = self.write_requests,
            durationMs = metrics::millis(self.duration).round(),
            "batch processed"
        );
        metrics::count(names::BATCH_RECORDS, self.records);
        metrics::count(names::WRITTEN, self.written);
        metrics::count(names::DEDUPLICATED, self.deduplicated);
        for (reason, count) in &self.dead_lettered_by_reason {
            metrics::count_by(names::DEAD_LETTERED, "Reason", (*reason).to_owned(), *count);
        }
        metrics::count(names::RETRIED, self.retried);
        metrics::count(names::UNPROCESSED_AFTER_RETRIES, self.unprocessed);
        metrics::count(names::BATCH_WRITE_REQUESTS, self.write_requests);
        metrics::observe(names::BATCH_DURATION, [metrics::millis(self.duration)]);
        metrics::observe(names::END_TO_END_LAG, self.lag_ms.iter().copied());
        metrics::observe(names::MESSAGE_AGE, self.message_age_ms.iter().copied());
    }
}

/// `later - earlier` in milliseconds, never negative (clocks of different hosts disagree).
pub(super) fn millis_between(earlier: OffsetDateTime, later: OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64().max(0.0) * 1000.0
}
