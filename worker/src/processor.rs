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
use contract::message::CORRELATION_ID_ATTRIBUTE;
use contract::report::StoredReport;
use futures::stream::{self, StreamExt};
use shared::metrics::{self, names};
use shared::telemetry::ErrorChain;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::record::{process_record, InboundMessage, MessageAttribute, RecordError};
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
    /// The batch's one log line and its metrics (see `shared::metrics::names`).
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

/// The correlation id a record is logged and dead-lettered with: the producer's, else the
/// message id (batch producers need not set one).
fn correlation_of(message: &InboundMessage) -> &str {
    message
        .attributes
        .get(CORRELATION_ID_ATTRIBUTE)
        .and_then(MessageAttribute::as_str)
        .unwrap_or(message.message_id.as_str())
}

/// One line per record, so an operator finds any report's fate by its id, its message id or
/// its correlation id.
fn log_outcome(message: &InboundMessage, outcome: &'static str, report_id: Option<&str>) {
    tracing::info!(
        outcome,
        messageId = %message.message_id,
        reportId = report_id,
        correlationId = correlation_of(message),
        receiveCount = message.receive_count,
        awsTraceHeader = message.trace_header.as_deref(),
        "record outcome"
    );
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
    /// Each with the message's position in the batch.
    pub poison: Vec<(usize, DeadLetter)>,
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
            Err(RecordError::Permanent(reason)) => {
                poison.push((position, dead_letter(message, &reason)));
            }
            Err(e @ RecordError::Retryable(_)) => {
                tracing::warn!(
                    outcome = "retry",
                    messageId = %message.message_id,
                    correlationId = correlation_of(message),
                    receiveCount = message.receive_count,
                    error = %ErrorChain(&e),
                    "record outcome"
                );
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

        let (dead_lettered, undeliverable) = self.dead_letter_all(messages, prepared.poison).await;
        outcome.dead_lettered = dead_lettered.iter().map(|(_, n)| n).sum();
        outcome.dead_lettered_by_reason = dead_lettered;
        outcome.failed.extend(undeliverable);

        let groups = prepared.groups;
        outcome.deduplicated = prepared.deduplicated;

        let counters = WriteCounters::default();
        let written_at = self.write_groups(&groups, deadline, &counters).await;
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
                        log_outcome(&messages[i], "written", Some(report_id));
                    }
                }
                None => {
                    outcome.unprocessed += group.message_count();
                    for i in group.positions() {
                        log_outcome(&messages[i], "unprocessed", Some(report_id));
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

    /// Sends poison messages to the DLQ; returns how many went by reason, and the ids of
    /// those that could not be sent (they stay on the queue: never dropped).
    async fn dead_letter_all(
        &self,
        messages: &[InboundMessage],
        letters: Vec<(usize, DeadLetter)>,
    ) -> (Vec<(&'static str, usize)>, Vec<String>) {
        let results = stream::iter(letters)
            .map(|(position, letter)| async move {
                let sent = self.dlq.send(&letter).await;
                (position, letter, sent)
            })
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut sent: Vec<(&'static str, usize)> = Vec::new();
        let mut failed = Vec::new();
        for (position, letter, result) in results {
            let message = &messages[position];
            match result {
                Ok(()) => {
                    tracing::warn!(
                        outcome = "dead-lettered",
                        messageId = %message.message_id,
                        correlationId = correlation_of(message),
                        receiveCount = message.receive_count,
                        awsTraceHeader = message.trace_header.as_deref(),
                        reason = letter.reason_code,
                        detail = %letter.detail,
                        "record outcome"
                    );
                    match sent
                        .iter_mut()
                        .find(|(reason, _)| *reason == letter.reason_code)
                    {
                        Some((_, count)) => *count += 1,
                        None => sent.push((letter.reason_code, 1)),
                    }
                }
                Err(e) => {
                    tracing::error!(
                        outcome = "retry",
                        messageId = %message.message_id,
                        correlationId = correlation_of(message),
                        receiveCount = message.receive_count,
                        reason = letter.reason_code,
                        error = %format!("{e:#}"),
                        "record outcome"
                    );
                    failed.push(letter.original_message_id);
                }
            }
        }
        (sent, failed)
    }

    /// Writes every group; returns, per group, when it was written (`None`: not by the
    /// deadline).
    async fn write_groups(
        &self,
        groups: &[KeyGroup],
        deadline: Instant,
        counters: &WriteCounters,
    ) -> Vec<Option<OffsetDateTime>> {
        // Owned chunks: borrowed stream items trip up `Send` inference in spawned tasks.
        let indexes: Vec<usize> = (0..groups.len()).collect();
        let chunks: Vec<Vec<usize>> = indexes
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(<[usize]>::to_vec)
            .collect();
        let mut written_at = vec![None; groups.len()];
        let written: Vec<(usize, OffsetDateTime)> = stream::iter(chunks)
            .map(|chunk| self.write_chunk(groups, chunk, deadline, counters))
            .buffer_unordered(self.config.write_concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        for (group, at) in written {
            written_at[group] = Some(at);
        }
        written_at
    }

    /// Writes one chunk of at most 25 groups, retrying what is left; returns the groups
    /// written, each with the time its write was acknowledged.
    async fn write_chunk(
        &self,
        groups: &[KeyGroup],
        chunk: Vec<usize>,
        deadline: Instant,
        counters: &WriteCounters,
    ) -> Vec<(usize, OffsetDateTime)> {
        let mut written = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        let mut backoff = self.backoff(deadline);
        loop {
            let reports: Vec<&StoredReport> = pending.iter().map(|&i| &groups[i].report).collect();
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match within(deadline, self.store.put_reports(&reports)).await {
                Ok(left) => {
                    let now = OffsetDateTime::now_utc();
                    if left.is_empty() {
                        written.extend(pending.iter().map(|&i| (i, now)));
                        return written;
                    }
                    tracing::debug!(
                        unprocessed = left.len(),
                        "BatchWriteItem left items unprocessed"
                    );
                    let mut kept = vec![false; pending.len()];
                    for &p in &left {
                        if let Some(k) = kept.get_mut(p) {
                            *k = true;
                        }
                    }
                    let mut still = Vec::with_capacity(left.len());
                    for (&group, kept) in pending.iter().zip(kept) {
                        if kept {
                            still.push(group);
                        } else {
                            written.push((group, now));
                        }
                    }
                    pending = still;
                }
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), items = pending.len(), "BatchWriteItem failed")
                }
            }
            if !backoff.wait().await {
                return written;
            }
            counters.retried.fetch_add(pending.len(), Ordering::Relaxed);
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

#[derive(Default)]
struct WriteCounters {
    requests: AtomicUsize,
    retried: AtomicUsize,
}

fn millis_between(earlier: OffsetDateTime, later: OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64().max(0.0) * 1000.0
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

fn dead_letter(message: &InboundMessage, reason: &contract::message::MessageError) -> DeadLetter {
    DeadLetter {
        original_message_id: message.message_id.clone(),
        body: message.body.clone().unwrap_or_default(),
        reason_code: reason.reason_code(),
        detail: reason.to_string(),
        correlation_id: Some(correlation_of(message).to_owned()),
        redrive_run_id: message
            .attributes
            .get(crate::dlq::REDRIVE_RUN_ATTRIBUTE)
            .and_then(MessageAttribute::as_str)
            .map(str::to_owned),
        // All of them: the DLQ keeps what fits beside its own (`DeadLetter::dlq_attributes`).
        attributes: message.attributes.clone(),
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
