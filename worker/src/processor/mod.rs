//! The batch processor: decode each record on its own, dead-letter poison, dedupe, write in
//! requests of at most 25 with bounded concurrency (BatchWriteItem and nothing else: for n
//! distinct keys, `ceil(n/25)` requests plus retries of what DynamoDB left unprocessed),
//! retry what is left with exponential backoff and full jitter inside the time the
//! invocation has, and report the rest.
//!
//! * [`prepare`]: the CPU-only steps (decode, validate, set poison aside, [`dedupe`]);
//! * [`dead_letter`]: poison sent to the DLQ;
//! * [`write`]: the BatchWriteItem requests and their retries;
//! * [`outcome`]: what the batch came to, its log line and metrics; [`record_log`]: each
//!   record's line.

mod config;
mod dead_letter;
mod dedupe;
mod outcome;
mod prepare;
mod record_log;
mod write;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::dlq::DeadLetterQueue;
use crate::record::InboundMessage;
use crate::store::ScoreStore;
use dead_letter::dead_letter_all;
use outcome::millis_between;
use record_log::{log_record, RecordOutcome};
use write::{WriteCounters, Writer};

pub use config::ProcessorConfig;
pub use dedupe::KeyGroup;
pub use outcome::BatchOutcome;
pub use prepare::{prepare_batch, PreparedBatch};

pub struct Processor {
    store: Arc<dyn ScoreStore>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: ProcessorConfig,
}

impl Processor {
    pub fn new(
        store: Arc<dyn ScoreStore>,
        dlq: Arc<dyn DeadLetterQueue>,
        config: ProcessorConfig,
    ) -> Self {
        Self { store, dlq, config }
    }

    /// Processes one batch; whatever is not done by `deadline` is reported as failed.
    #[tracing::instrument(skip_all, fields(records = messages.len()))]
    pub async fn process_batch(
        &self,
        messages: &[InboundMessage],
        deadline: Instant,
    ) -> BatchOutcome {
        let started = Instant::now();
        let received_at = OffsetDateTime::now_utc();
        let mut outcome = BatchOutcome {
            records: messages.len(),
            message_age_ms: messages
                .iter()
                .filter_map(|m| m.sent_at)
                .map(|sent| millis_between(sent, received_at))
                .collect(),
            ..BatchOutcome::default()
        };
        let prepared = prepare_batch(messages, received_at);
        outcome.failed.extend(prepared.retry);

        let (dead_lettered, undeliverable) = dead_letter_all(
            &*self.dlq,
            self.config.write_concurrency,
            messages,
            prepared.poison,
        )
        .await;
        outcome.dead_lettered = dead_lettered.iter().map(|(_, n)| n).sum();
        outcome.dead_lettered_by_reason = dead_lettered;
        outcome.failed.extend(undeliverable);

        let groups = prepared.groups;
        outcome.deduplicated = prepared.deduplicated;

        let counters = WriteCounters::default();
        let writer = Writer {
            store: &*self.store,
            config: &self.config,
        };
        let written_at = writer.write_groups(&groups, deadline, &counters).await;
        outcome.write_requests = counters.requests.load(Ordering::Relaxed);
        outcome.retried = counters.retried.load(Ordering::Relaxed);

        outcome.lag_ms.reserve(messages.len());
        for (group, written_at) in groups.iter().zip(written_at) {
            let report_id = group.report.report.report_id.as_str();
            match written_at {
                Some(at) => {
                    outcome.written += group.message_count();
                    let lag = millis_between(group.report.received_at, at);
                    for i in group.positions() {
                        outcome.lag_ms.push(lag);
                        log_record(&messages[i], RecordOutcome::Written { report_id });
                    }
                }
                None => {
                    outcome.unprocessed += group.message_count();
                    for i in group.positions() {
                        log_record(&messages[i], RecordOutcome::Unprocessed { report_id });
                        outcome.failed.push(messages[i].message_id.clone());
                    }
                }
            }
        }
        if !outcome.failed.is_empty() {
            tracing::warn!(
                failed = outcome.failed.len(),
                "messages left for redelivery"
            );
        }
        outcome.duration = started.elapsed();
        outcome
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
