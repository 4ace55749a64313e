//! The batch processor: decode each record on its own, dead-letter poison, dedupe, write in
//! requests of at most 25 with bounded concurrency (BatchWriteItem and nothing else: for n
//! distinct keys, `ceil(n/25)` requests plus retries of what DynamoDB left unprocessed),
//! retry what is left with exponential backoff and full jitter inside the time the
//! invocation has, and report the rest.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::{self, StreamExt};
use shared::item::StoredReport;
use shared::message::CORRELATION_ID_ATTRIBUTE;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::record::{process_record, InboundMessage, RecordError};
use crate::store::{ScoreStore, StoreError, MAX_BATCH_WRITE_ITEMS};

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// BatchWriteItem requests in flight at once.
    pub write_concurrency: usize,
    /// First retry delay cap; doubles each attempt up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            write_concurrency: 4,
            retry_base_delay: Duration::from_millis(50),
            retry_max_delay: Duration::from_secs(5),
        }
    }
}

/// What one batch came to. `failed` holds the message ids SQS must deliver again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: Vec<String>,
    pub written: usize,
    pub dead_lettered: usize,
    /// Messages folded into another with the same key (they share its fate).
    pub deduplicated: usize,
    /// BatchWriteItem requests sent, retries included.
    pub write_requests: usize,
}

/// Reports sharing one table key, reduced to the newest, with the position in the batch of
/// every message that carried one. Positions, not ids: most keys come once, and then a group
/// costs no allocation of its own.
pub struct KeyGroup {
    pub report: StoredReport,
    /// The first message with this key.
    pub first: usize,
    /// Later messages with the same key, in batch order.
    pub repeats: Vec<usize>,
}

impl KeyGroup {
    /// Every message of the group, as positions in the batch.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.first).chain(self.repeats.iter().copied())
    }

    /// How many messages share this key (at least one).
    pub fn message_count(&self) -> usize {
        1 + self.repeats.len()
    }
}

/// A batch after the CPU-only steps: decoded, validated, poison set aside, deduplicated.
pub struct PreparedBatch {
    pub groups: Vec<KeyGroup>,
    pub poison: Vec<DeadLetter>,
    /// Ids of records that failed in a way a retry may fix.
    pub retry: Vec<String>,
    pub deduplicated: usize,
}

/// Decodes, validates and deduplicates a batch: everything but I/O.
pub fn prepare_batch(messages: &[InboundMessage], now: OffsetDateTime) -> PreparedBatch {
    let mut valid = Vec::with_capacity(messages.len());
    let mut poison = Vec::new();
    let mut retry = Vec::new();
    for (position, message) in messages.iter().enumerate() {
        match process_record(message, now) {
            Ok(report) => valid.push((position, report)),
            Err(RecordError::Permanent(reason)) => poison.push(dead_letter(message, &reason)),
            Err(e @ RecordError::Retryable(_)) => {
                tracing::warn!(message_id = %message.message_id, error = %e, "record will be retried");
                retry.push(message.message_id.clone());
            }
        }
    }
    let valid_count = valid.len();
    let groups = dedupe(valid);
    PreparedBatch {
        deduplicated: valid_count - groups.len(),
        groups,
        poison,
        retry,
    }
}

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
        let mut outcome = BatchOutcome::default();
        let prepared = prepare_batch(messages, OffsetDateTime::now_utc());
        outcome.failed.extend(prepared.retry);

        let (dead_lettered, undeliverable) = self.dead_letter_all(prepared.poison).await;
        outcome.dead_lettered = dead_lettered;
        outcome.failed.extend(undeliverable);

        let groups = prepared.groups;
        outcome.deduplicated = prepared.deduplicated;

        let requests = AtomicUsize::new(0);
        let unwritten = self.write_groups(&groups, deadline, &requests).await;
        outcome.write_requests = requests.load(Ordering::Relaxed);

        // One flag per group: batches may hold 10,000 records, so no search per group.
        let mut written = vec![true; groups.len()];
        for i in unwritten {
            written[i] = false;
        }
        for (group, written) in groups.iter().zip(written) {
            if written {
                outcome.written += group.message_count();
            } else {
                outcome
                    .failed
                    .extend(group.positions().map(|i| messages[i].message_id.clone()));
            }
        }
        if !outcome.failed.is_empty() {
            tracing::warn!(
                failed = outcome.failed.len(),
                "messages left for redelivery"
            );
        }
        outcome
    }

    /// Sends poison messages to the DLQ; returns how many went, and the ids of those that
    /// could not be sent (they stay on the queue: never dropped).
    async fn dead_letter_all(&self, letters: Vec<DeadLetter>) -> (usize, Vec<String>) {
        let results = stream::iter(letters)
            .map(|letter| async move {
                tracing::warn!(
                    message_id = %letter.original_message_id,
                    reason = letter.reason_code,
                    detail = %letter.detail,
                    "poison message sent to the DLQ"
                );
                let sent = self.dlq.send(&letter).await;
                (letter.original_message_id, sent)
            })
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut sent = 0;
        let mut failed = Vec::new();
        for (id, result) in results {
            match result {
                Ok(()) => sent += 1,
                Err(e) => {
                    tracing::error!(message_id = %id, error = %format!("{e:#}"), "DLQ send failed; message left for redelivery");
                    failed.push(id);
                }
            }
        }
        (sent, failed)
    }

    /// Writes every group; returns the positions of groups not written by the deadline.
    async fn write_groups(
        &self,
        groups: &[KeyGroup],
        deadline: Instant,
        requests: &AtomicUsize,
    ) -> Vec<usize> {
        // Owned chunks: borrowed stream items trip up `Send` inference in spawned tasks.
        let indexes: Vec<usize> = (0..groups.len()).collect();
        let chunks: Vec<Vec<usize>> = indexes
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(<[usize]>::to_vec)
            .collect();
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(groups, chunk, deadline, requests))
            .buffer_unordered(self.config.write_concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await
    }

    async fn write_chunk(
        &self,
        groups: &[KeyGroup],
        chunk: Vec<usize>,
        deadline: Instant,
        requests: &AtomicUsize,
    ) -> Vec<usize> {
        let mut pending = chunk;
        let mut backoff = self.backoff(deadline);
        loop {
            let reports: Vec<&StoredReport> = pending.iter().map(|&i| &groups[i].report).collect();
            requests.fetch_add(1, Ordering::Relaxed);
            match within(deadline, self.store.put_reports(&reports)).await {
                Ok(left) if left.is_empty() => return Vec::new(),
                Ok(left) => {
                    tracing::debug!(
                        unprocessed = left.len(),
                        "BatchWriteItem left items unprocessed"
                    );
                    pending = left
                        .into_iter()
                        .filter_map(|p| pending.get(p).copied())
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, items = pending.len(), "BatchWriteItem failed")
                }
            }
            if !backoff.wait().await {
                return pending;
            }
        }
    }

    fn backoff(&self, deadline: Instant) -> Backoff {
        Backoff {
            delays: ExponentialBuilder::default()
                .with_min_delay(self.config.retry_base_delay)
                .with_max_delay(self.config.retry_max_delay)
                .without_max_times()
                .build(),
            deadline,
        }
    }
}

/// Exponential delays with full jitter (a uniform pick in `[0, cap)`), bounded by a deadline.
struct Backoff {
    delays: backon::ExponentialBackoff,
    deadline: Instant,
}

impl Backoff {
    /// Sleeps before the next attempt; false when no attempt fits before the deadline.
    async fn wait(&mut self) -> bool {
        let Some(cap) = self.delays.next() else {
            return false;
        };
        let delay = cap.mul_f64(fastrand::f64());
        if Instant::now() + delay >= self.deadline {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

/// Runs a store call, giving up at the deadline. A call cut short may still have landed;
/// that is safe because every write is idempotent.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::TimedOut),
    }
}

fn dead_letter(message: &InboundMessage, reason: &shared::message::MessageError) -> DeadLetter {
    DeadLetter {
        original_message_id: message.message_id.clone(),
        body: message.body.clone().unwrap_or_default(),
        reason_code: reason.reason_code(),
        detail: reason.to_string(),
        correlation_id: message.attributes.get(CORRELATION_ID_ATTRIBUTE).cloned(),
        redrive_run_id: message
            .attributes
            .get(crate::dlq::REDRIVE_RUN_ATTRIBUTE)
            .cloned(),
    }
}

/// One request may not carry the same key twice, so reports sharing a key are folded into
/// the newest by `reportedAt` (the later message wins a tie); every message that carried the
/// key shares the outcome of that one write.
fn dedupe(valid: Vec<(usize, StoredReport)>) -> Vec<KeyGroup> {
    // First pass on borrowed keys (no clone per record): which group each record joins.
    // foldhash, seeded per process: several times cheaper than SipHash on short keys.
    let mut position: HashMap<(&str, &str), usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(valid.len(), foldhash::fast::RandomState::default());
    let mut group_of = Vec::with_capacity(valid.len());
    for (_, stored) in &valid {
        let key = (
            stored.report.user_id.as_str(),
            stored.report.report_id.as_str(),
        );
        let next = position.len();
        group_of.push(*position.entry(key).or_insert(next));
    }
    let group_count = position.len();
    drop(position);

    let mut groups: Vec<Option<KeyGroup>> = Vec::with_capacity(group_count);
    groups.resize_with(group_count, || None);
    for ((message, report), i) in valid.into_iter().zip(group_of) {
        match &mut groups[i] {
            Some(group) => {
                group.repeats.push(message);
                if report.report.reported_at >= group.report.report.reported_at {
                    group.report = report;
                }
            }
            slot @ None => {
                *slot = Some(KeyGroup {
                    report,
                    first: message,
                    repeats: Vec::new(),
                });
            }
        }
    }
    // Every index below `group_count` was handed to at least one record.
    groups.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
