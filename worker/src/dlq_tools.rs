//! Operating the dead-letter queue: `worker dlq stats | peek | redrive`.
//!
//! SQS cannot be queried, so stats and peek receive messages with a short visibility timeout
//! and then make them visible again at once (nothing is consumed). Redrive sends each message
//! back to QUEUE_URL and deletes it from the DLQ only after SQS acknowledged the send: an
//! interrupted run leaves at worst a message on both queues, and since its reportId maps to
//! one table item, redriving it again never stores it twice.
//!
//! A redrive takes a fixed set: at most the messages the DLQ held when it started (or
//! `--limit`). Everything it sends carries its run id (`redriveRunId`, kept by the worker when
//! it dead-letters a message again and by SQS's redrive policy), and a message carrying this
//! run's id is never taken twice: poison that comes straight back cannot keep a run going.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use clap::Subcommand;
use shared::sqs_batch::{group_ranges, is_retryable_code, EntryFailure, EntryResult};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::dlq::{
    fit_attributes, DETAIL_ATTRIBUTE, FAILED_AT_ATTRIBUTE, ORIGINAL_MESSAGE_ID_ATTRIBUTE,
    REASON_ATTRIBUTE, REDRIVE_RUN_ATTRIBUTE,
};
use crate::producer::RetryPolicy;
use crate::record::{parse_sent_timestamp, MessageAttribute};

/// Failure reason shown for messages SQS moved here by the redrive policy (they carry no
/// failureReason: the worker kept failing to write them until maxReceiveCount).
pub const EXHAUSTED_RETRIES: &str = "exhausted_retries";

/// How long stats/peek/dry-run hold messages before giving them back (they are released
/// explicitly at the end; this only bounds what a crash would hide).
const SCAN_VISIBILITY_SECONDS: i32 = 30;
/// How long redrive holds a message between receiving and deleting it.
const REDRIVE_VISIBILITY_SECONDS: i32 = 60;
/// Consecutive empty receives that mean "the queue is drained".
const EMPTY_ROUNDS_TO_STOP: usize = 2;

/// Reasons a retry cannot change: the body itself is broken, so sending it back only brings
/// it back. Redrive leaves these in the DLQ unless `--include-poison` is given. (A
/// `contract_violation` may be one that a fixed producer clock or a widened rule would now
/// accept: that is what `--include-poison` is for.)
pub const POISON_REASONS: [&str; 5] = [
    "invalid_json",
    "empty_body",
    "not_an_object",
    "contract_violation",
    "unknown_version",
];

/// True when `reason` is one of [`POISON_REASONS`].
pub fn is_poison(reason: &str) -> bool {
    POISON_REASONS.contains(&reason)
}

/// `worker dlq ...` (DLQ_URL required; redrive also needs QUEUE_URL).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DlqCommand {
    /// depth, counts by failureReason, oldest message age (reads the messages and releases
    /// them; progress on stderr when it is a terminal)
    Stats {
        /// read up to N messages
        #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = positive)]
        limit: usize,
    },
    /// up to N sample messages as JSON lines with their reasons; nothing is deleted
    Peek {
        /// how many messages to show
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = positive)]
        limit: usize,
    },
    /// send messages back to QUEUE_URL, each deleted from the DLQ only after the send
    /// succeeded; progress on stderr, summary on stdout; safe to interrupt (Ctrl-C) and run
    /// again
    #[command(
        after_help = "A run takes at most the messages in the DLQ when it starts (or --limit) \
                      and never one it already sent back. Poison (failureReason invalid_json, \
                      empty_body, not_an_object, contract_violation, unknown_version) is \
                      skipped and left in the DLQ unless --include-poison is given."
    )]
    Redrive {
        /// count what would be redriven and skipped, by reason; move nothing
        #[arg(long)]
        dry_run: bool,
        /// redrive at most N messages
        #[arg(long, value_name = "N", value_parser = positive)]
        limit: Option<usize>,
        /// send poison back too (say, after widening a rule that rejected it)
        #[arg(long)]
        include_poison: bool,
    },
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number above 0, not {value:?}")),
    }
}

/// What a redrive run does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveOptions {
    /// Count only; move nothing.
    pub dry_run: bool,
    /// At most this many messages (never more than the DLQ held at the start).
    pub limit: Option<usize>,
    /// Send [`POISON_REASONS`] messages too.
    pub include_poison: bool,
}

/// One message read from the DLQ and held invisible until released or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// Message attributes with their data types: ours (failureReason, failureDetail, ...)
    /// and the producer's.
    pub attributes: HashMap<String, MessageAttribute>,
    /// When the message entered the DLQ (for messages the redrive policy moved, when it was
    /// first sent).
    pub sent_at: Option<OffsetDateTime>,
}

impl DlqMessage {
    fn from_sqs(message: Message) -> Option<Self> {
        let sent_at = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|v| parse_sent_timestamp(v));
        let attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| MessageAttribute::from_sqs(&v).map(|a| (k, a)))
            .collect();
        Some(Self {
            message_id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            attributes,
            sent_at,
        })
    }

    pub fn reason(&self) -> &str {
        reason_of(&self.attributes)
    }

    /// The text of a String or Number attribute.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(MessageAttribute::as_str)
    }

    /// The message as `peek` prints it: one JSON object per line.
    pub fn to_json_line(&self) -> String {
        let attr = |name: &str| self.text(name).map(str::to_owned);
        serde_json::json!({
            "messageId": self.message_id,
            "failureReason": self.reason(),
            "failureDetail": attr(DETAIL_ATTRIBUTE),
            "failedAt": attr(FAILED_AT_ATTRIBUTE),
            "originalMessageId": attr(ORIGINAL_MESSAGE_ID_ATTRIBUTE),
            "correlationId": attr(contract::message::CORRELATION_ID_ATTRIBUTE),
            "sentAt": self.sent_at.map(contract::rfc3339::format_utc_millis),
            "body": self.body,
        })
        .to_string()
    }
}

/// The failure reason of a dead-lettered message; [`EXHAUSTED_RETRIES`] when it has none.
pub fn reason_of(attributes: &HashMap<String, MessageAttribute>) -> &str {
    attributes
        .get(REASON_ATTRIBUTE)
        .and_then(MessageAttribute::as_str)
        .unwrap_or(EXHAUSTED_RETRIES)
}

/// The attributes a redriven message keeps: the producer's, with their data types, and the
/// correlation id; not what the DLQ added (why and when it failed), so a message that fails
/// again is described afresh, nor an earlier run's `redriveRunId`.
pub fn carried_attributes(
    attributes: &HashMap<String, MessageAttribute>,
) -> HashMap<String, MessageAttribute> {
    const DROPPED: [&str; 5] = [
        REASON_ATTRIBUTE,
        DETAIL_ATTRIBUTE,
        FAILED_AT_ATTRIBUTE,
        ORIGINAL_MESSAGE_ID_ATTRIBUTE,
        REDRIVE_RUN_ATTRIBUTE,
    ];
    attributes
        .iter()
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()) && !k.starts_with("failure"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What `dlq stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqStats {
    /// SQS's approximate counts before the scan.
    pub visible: u64,
    pub in_flight: u64,
    /// Messages actually read.
    pub scanned: usize,
    pub by_reason: BTreeMap<String, usize>,
    pub oldest_sent_at: Option<OffsetDateTime>,
}

impl DlqStats {
    pub fn from_messages(visible: u64, in_flight: u64, messages: &[DlqMessage]) -> Self {
        let mut by_reason = BTreeMap::new();
        for m in messages {
            *by_reason.entry(m.reason().to_owned()).or_insert(0) += 1;
        }
        Self {
            visible,
            in_flight,
            scanned: messages.len(),
            by_reason,
            oldest_sent_at: messages.iter().filter_map(|m| m.sent_at).min(),
        }
    }

    pub fn render(&self, now: OffsetDateTime) -> String {
        let mut out = format!(
            "depth: {} visible, {} in flight (approximate)\nscanned: {}\n",
            self.visible, self.in_flight, self.scanned
        );
        if self.by_reason.is_empty() {
            out.push_str("by reason: (none)\n");
        } else {
            out.push_str("by reason:\n");
            let width = self.by_reason.keys().map(String::len).max().unwrap_or(0);
            for (reason, count) in &self.by_reason {
                out.push_str(&format!("  {reason:<width$}  {count}\n"));
            }
        }
        match self.oldest_sent_at {
            Some(t) => out.push_str(&format!(
                "oldest: {} ago ({})\n",
                format_age(now - t),
                contract::rfc3339::format_utc_millis(t)
            )),
            None => out.push_str("oldest: -\n"),
        }
        out
    }
}

/// `2d 3h`, `3h 12m`, `4m 5s`, `9s`: the two largest units.
pub fn format_age(age: time::Duration) -> String {
    let s = age.whole_seconds().max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How far a redrive got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// This run's id, carried by every message it sent (`redriveRunId`).
    pub run_id: String,
    /// How many messages the run would take at most: the DLQ's depth at the start, or the
    /// limit when smaller.
    pub budget: usize,
    /// Sent to QUEUE_URL and deleted from the DLQ.
    pub redriven: usize,
    /// What was redriven, by reason.
    pub redriven_by_reason: BTreeMap<String, usize>,
    /// Sent, but the delete failed: they stay in the DLQ and a rerun sends them again
    /// (harmless: same reportId, same item).
    pub sent_not_deleted: usize,
    /// Not sent; left in the DLQ.
    pub failed: usize,
    /// Poison left in the DLQ (no `--include-poison`), by reason.
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// Messages this run sent that were dead-lettered again while it ran: left in the DLQ.
    pub came_back: usize,
    /// For --dry-run: what would be redriven, by reason.
    pub would_redrive: BTreeMap<String, usize>,
    /// True when a shutdown signal stopped the run early.
    pub interrupted: bool,
}

impl RedriveReport {
    pub fn skipped(&self) -> usize {
        self.skipped_by_reason.values().sum()
    }

    /// The summary `worker dlq redrive` prints on stdout.
    pub fn render(&self, queue_url: &str, dry_run: bool) -> String {
        let mut out = String::new();
        let by_reason = |out: &mut String, counts: &BTreeMap<String, usize>| {
            for (reason, n) in counts {
                out.push_str(&format!("  {reason}  {n}\n"));
            }
        };
        if dry_run {
            let count: usize = self.would_redrive.values().sum();
            out.push_str(&format!("dry run: would redrive {count} messages\n"));
            by_reason(&mut out, &self.would_redrive);
        } else {
            out.push_str(&format!(
                "redriven {} messages to {queue_url}{}\n",
                self.redriven,
                if self.interrupted {
                    " (interrupted; run again to continue)"
                } else {
                    ""
                }
            ));
            by_reason(&mut out, &self.redriven_by_reason);
        }
        if self.skipped() > 0 {
            out.push_str(&format!(
                "{} {} (poison, left in the DLQ; --include-poison sends them too)\n",
                if dry_run { "would skip" } else { "skipped" },
                self.skipped()
            ));
            by_reason(&mut out, &self.skipped_by_reason);
        }
        if self.came_back > 0 {
            out.push_str(&format!(
                "left {} that this run sent and the worker dead-lettered again (see `worker dlq stats`)\n",
                self.came_back
            ));
        }
        if self.sent_not_deleted > 0 || self.failed > 0 {
            out.push_str(&format!(
                "left {} sent but not deleted (a rerun sends them again; same reportId, same item), {} not sent\n",
                self.sent_not_deleted, self.failed
            ));
        }
        out
    }
}

/// `[#######.............]  120/400 redriven`: the total is SQS's approximate count, so the
/// bar never claims more than it knows.
pub fn progress_line(done: usize, total: usize, failed: usize) -> String {
    const WIDTH: usize = 20;
    let total = total.max(done);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let mut line = format!(
        "[{}{}] {done}/{total} redriven",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    line
}

/// The DLQ tools against one DLQ (and, for redrive, the main queue).
pub struct DlqTools {
    pub sqs: aws_sdk_sqs::Client,
    pub dlq_url: String,
    pub queue_url: Option<String>,
    /// Long-poll wait per receive; 1 s lets SQS look at all its servers before saying empty.
    pub receive_wait_seconds: i32,
}

impl DlqTools {
    pub fn new(sqs: aws_sdk_sqs::Client, dlq_url: String, queue_url: Option<String>) -> Self {
        Self {
            sqs,
            dlq_url,
            queue_url,
            receive_wait_seconds: 1,
        }
    }

    /// (visible, in flight), approximate.
    pub async fn depth(&self) -> anyhow::Result<(u64, u64)> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .with_context(|| format!("reading the depth of {}", self.dlq_url))?;
        let attrs = out.attributes.unwrap_or_default();
        let read = |k: &QueueAttributeName| {
            attrs
                .get(k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()
        };
        Ok((
            read(&QueueAttributeName::ApproximateNumberOfMessages),
            read(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    async fn receive(&self, max: usize, visibility: i32) -> anyhow::Result<Vec<DlqMessage>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(visibility)
            .wait_time_seconds(self.receive_wait_seconds)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.dlq_url))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(DlqMessage::from_sqs)
            .collect())
    }

    /// Reads up to `limit` distinct messages, holding them invisible; the caller releases
    /// them. A message seen twice keeps its newest receipt handle (the only valid one).
    async fn scan(
        &self,
        limit: usize,
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<Vec<DlqMessage>> {
        let mut seen: Vec<DlqMessage> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut empty_rounds = 0;
        while seen.len() < limit && empty_rounds < EMPTY_ROUNDS_TO_STOP {
            let batch = self
                .receive(limit - seen.len(), SCAN_VISIBILITY_SECONDS)
                .await?;
            let mut new = 0;
            for m in batch {
                match position.get(&m.message_id) {
                    Some(&i) => seen[i].receipt_handle = m.receipt_handle,
                    None => {
                        position.insert(m.message_id.clone(), seen.len());
                        seen.push(m);
                        new += 1;
                    }
                }
            }
            empty_rounds = if new == 0 { empty_rounds + 1 } else { 0 };
            progress(seen.len());
        }
        Ok(seen)
    }

    /// Makes held messages visible again at once.
    async fn release(&self, messages: &[DlqMessage]) -> anyhow::Result<()> {
        for chunk in messages.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let out = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("making peeked messages visible again")?;
            if !out.failed.is_empty() {
                tracing::warn!(
                    failed = out.failed.len(),
                    "some messages stay hidden until their visibility timeout ends"
                );
            }
        }
        Ok(())
    }

    /// Depth, reasons and oldest age; every message read is released again.
    pub async fn stats(&self, limit: usize) -> anyhow::Result<DlqStats> {
        self.stats_with_progress(limit, &mut |_, _| {}).await
    }

    /// [`Self::stats`], calling `progress(read, approximate_depth)` after every receive.
    pub async fn stats_with_progress(
        &self,
        limit: usize,
        progress: &mut dyn FnMut(usize, u64),
    ) -> anyhow::Result<DlqStats> {
        let (visible, in_flight) = self.depth().await?;
        let messages = self
            .scan(limit, &mut |read| progress(read, visible + in_flight))
            .await?;
        self.release(&messages).await?;
        Ok(DlqStats::from_messages(visible, in_flight, &messages))
    }

    /// Up to `limit` messages, released again before returning.
    pub async fn peek(&self, limit: usize) -> anyhow::Result<Vec<DlqMessage>> {
        let messages = self.scan(limit, &mut |_| {}).await?;
        self.release(&messages).await?;
        Ok(messages)
    }

    /// Sends DLQ messages back to QUEUE_URL, each deleted only after its send succeeded.
    /// Takes at most the messages the DLQ held at the start (or `limit`), never one this run
    /// sent already; poison is left unless `include_poison`. Stops at that budget, when
    /// nothing new is received, or when `shutdown` turns true (after the batch in hand).
    /// `progress` is called after every batch with the report so far.
    pub async fn redrive(
        &self,
        options: &RedriveOptions,
        shutdown: watch::Receiver<bool>,
        retry: &RetryPolicy,
        progress: &mut dyn FnMut(&RedriveReport),
    ) -> anyhow::Result<RedriveReport> {
        let (visible, in_flight) = self.depth().await?;
        let depth = usize::try_from(visible.saturating_add(in_flight)).unwrap_or(usize::MAX);
        let mut report = RedriveReport {
            run_id: ulid::Ulid::new().to_string(),
            budget: depth.min(options.limit.unwrap_or(usize::MAX)),
            ..RedriveReport::default()
        };
        if options.dry_run {
            let messages = self.scan(report.budget, &mut |_| {}).await?;
            self.release(&messages).await?;
            for m in &messages {
                let counts = if is_poison(m.reason()) && !options.include_poison {
                    &mut report.skipped_by_reason
                } else {
                    &mut report.would_redrive
                };
                *counts.entry(m.reason().to_owned()).or_insert(0) += 1;
            }
            return Ok(report);
        }
        let queue_url = self
            .queue_url
            .as_deref()
            .context("redrive needs QUEUE_URL (where messages go back to)")?;
        // Everything received and not sent stays held (invisible) until the run ends, so a
        // receive never returns it again; then it is released in one go.
        let mut held: Vec<DlqMessage> = Vec::new();
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        let mut taken = 0;
        let mut idle_rounds = 0;
        let result = loop {
            if taken >= report.budget || idle_rounds >= EMPTY_ROUNDS_TO_STOP {
                break Ok(());
            }
            if *shutdown.borrow() {
                report.interrupted = true;
                break Ok(());
            }
            let batch = match self
                .receive(report.budget - taken, REDRIVE_VISIBILITY_SECONDS)
                .await
            {
                Ok(batch) => batch,
                Err(e) => break Err(e),
            };
            let mut to_send = Vec::new();
            let mut new = 0;
            for m in batch {
                if let Some(position) = seen.get(&m.message_id) {
                    // Held past its visibility timeout and received again: keep the newest
                    // receipt handle (the only one that works), count nothing.
                    if let Some(&i) = position.as_ref() {
                        held[i].receipt_handle = m.receipt_handle;
                    }
                    continue;
                }
                new += 1;
                if m.text(REDRIVE_RUN_ATTRIBUTE) == Some(report.run_id.as_str()) {
                    report.came_back += 1;
                } else {
                    taken += 1;
                    if !is_poison(m.reason()) || options.include_poison {
                        seen.insert(m.message_id.clone(), None);
                        to_send.push(m);
                        continue;
                    }
                    *report
                        .skipped_by_reason
                        .entry(m.reason().to_owned())
                        .or_insert(0) += 1;
                }
                seen.insert(m.message_id.clone(), Some(held.len()));
                held.push(m);
            }
            idle_rounds = if new == 0 { idle_rounds + 1 } else { 0 };
            if to_send.is_empty() {
                progress(&report);
                continue;
            }
            let outgoing: Vec<Outgoing> = to_send
                .iter()
                .map(|m| Outgoing::redriven(m, &report.run_id))
                .collect();
            let sent = self.send_back(queue_url, &outgoing, retry).await;
            let mut to_delete = Vec::new();
            let mut codes = Vec::new();
            for (m, result) in to_send.iter().zip(&sent) {
                match result {
                    Ok(_) => to_delete.push(m),
                    Err(f) => {
                        tracing::warn!(message_id = %m.message_id, code = %f.code, "redrive send failed; the message stays in the DLQ");
                        codes.push(f.code.clone());
                    }
                }
            }
            report.failed += codes.len();
            let not_deleted = self.delete(&to_delete).await;
            report.sent_not_deleted += not_deleted;
            report.redriven += to_delete.len() - not_deleted;
            for m in &to_delete {
                *report
                    .redriven_by_reason
                    .entry(m.reason().to_owned())
                    .or_insert(0) += 1;
            }
            progress(&report);
            if to_delete.is_empty() {
                // Nothing in this batch could be sent: the queue is missing or refusing us.
                // Going on would only spin on the same messages.
                break Err(anyhow::anyhow!(
                    "SQS refused every message of a batch ({}); {} redriven so far",
                    codes.join(", "),
                    report.redriven
                ));
            }
        };
        // Skipped poison and returned messages are visible again at once for stats/peek.
        if let Err(e) = self.release(&held).await {
            tracing::warn!(error = %format!("{e:#}"), "some skipped messages stay hidden until their visibility timeout ends");
        }
        result.map(|()| report)
    }

    /// Sends `messages` to `queue_url` with SendMessageBatch (groups of at most 10 entries and
    /// 256 KiB) and sends again, with backoff, the entries that failed in a way a retry may
    /// fix; one result per message, in order. Not `producer::send_with_retries`: that sends
    /// String attributes only, and a redrive keeps each attribute's data type.
    async fn send_back(
        &self,
        queue_url: &str,
        messages: &[Outgoing],
        policy: &RetryPolicy,
    ) -> Vec<EntryResult> {
        let everything: Vec<usize> = (0..messages.len()).collect();
        let mut results = self.send_batches(queue_url, messages, &everything).await;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.retries)
            .with_jitter()
            .build();
        loop {
            let pending: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r, Err(f) if f.retryable))
                .map(|(i, _)| i)
                .collect();
            if pending.is_empty() {
                break;
            }
            let Some(delay) = delays.next() else {
                break;
            };
            tokio::time::sleep(delay).await;
            let again = self.send_batches(queue_url, messages, &pending).await;
            for (i, result) in pending.into_iter().zip(again) {
                results[i] = result;
            }
        }
        results
    }

    /// One attempt at `messages[i]` for each `i` of `which`; one result each, in that order.
    async fn send_batches(
        &self,
        queue_url: &str,
        messages: &[Outgoing],
        which: &[usize],
    ) -> Vec<EntryResult> {
        let sizes: Vec<usize> = which.iter().map(|&i| messages[i].bytes).collect();
        let mut results = Vec::with_capacity(which.len());
        for range in group_ranges(&sizes, shared::sqs_batch::MAX_BATCH_BYTES) {
            let group = &which[range];
            let mut answers: Vec<Option<EntryResult>> = vec![None; group.len()];
            let entries: Vec<SendMessageBatchRequestEntry> = group
                .iter()
                .enumerate()
                .filter_map(|(slot, &i)| {
                    let built = SendMessageBatchRequestEntry::builder()
                        .id(slot.to_string())
                        .message_body(&messages[i].body)
                        .set_message_attributes(Some(messages[i].attributes.clone()))
                        .build();
                    match built {
                        Ok(entry) => Some(entry),
                        Err(e) => {
                            answers[slot] = Some(Err(EntryFailure {
                                code: "InvalidEntry".into(),
                                message: e.to_string(),
                                retryable: false,
                            }));
                            None
                        }
                    }
                })
                .collect();
            if !entries.is_empty() {
                let sent = self
                    .sqs
                    .send_message_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        for ok in out.successful {
                            if let Some(slot) = slot_of(&mut answers, &ok.id) {
                                *slot = Some(Ok(ok.message_id));
                            }
                        }
                        for failed in out.failed {
                            if let Some(slot) = slot_of(&mut answers, &failed.id) {
                                *slot = Some(Err(EntryFailure {
                                    code: failed.code,
                                    message: failed.message.unwrap_or_default(),
                                    retryable: !failed.sender_fault,
                                }));
                            }
                        }
                    }
                    Err(e) => {
                        let failure = call_failure(&e);
                        for slot in answers.iter_mut().filter(|a| a.is_none()) {
                            *slot = Some(Err(failure.clone()));
                        }
                    }
                }
            }
            results.extend(answers.into_iter().map(|a| {
                a.unwrap_or_else(|| {
                    Err(EntryFailure {
                        code: "MissingResult".into(),
                        message: "SQS reported neither success nor failure for this entry".into(),
                        retryable: true,
                    })
                })
            }));
        }
        results
    }

    /// Deletes sent messages from the DLQ; returns how many could not be deleted.
    async fn delete(&self, messages: &[&DlqMessage]) -> usize {
        let mut not_deleted = 0;
        for chunk in messages.chunks(shared::sqs_batch::MAX_BATCH_ENTRIES) {
            let entries =
                shared::sqs_batch::delete_entries(chunk.iter().map(|m| m.receipt_handle.as_str()));
            match self
                .sqs
                .delete_message_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => not_deleted += out.failed.len(),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch on the DLQ failed; those messages will be redriven again by a rerun");
                    not_deleted += chunk.len();
                }
            }
        }
        not_deleted
    }
}

/// A DLQ message on its way back to the main queue.
struct Outgoing {
    body: String,
    attributes: HashMap<String, MessageAttributeValue>,
    /// What SQS counts against a batch's size.
    bytes: usize,
}

impl Outgoing {
    /// `message` as a redrive sends it: body unchanged; the producer's attributes (with their
    /// data types) and the correlation id, without the DLQ's; tagged with the run's id. The
    /// run id takes one of SQS's 10 attribute slots: a message that already uses all ten
    /// (one the queue's redrive policy moved) loses the last of its attributes by name.
    fn redriven(message: &DlqMessage, run_id: &str) -> Self {
        let own = vec![(
            REDRIVE_RUN_ATTRIBUTE.to_owned(),
            MessageAttribute::string(run_id),
        )];
        let (attributes, left_out) = fit_attributes(
            own,
            &carried_attributes(&message.attributes),
            message.body.len(),
        );
        if !left_out.is_empty() {
            tracing::warn!(
                messageId = %message.message_id,
                leftOut = left_out.len(),
                attributes = ?left_out,
                "message attributes left off the redriven message: over SQS's limit of 10 \
                 attributes (or 256 KiB) per message"
            );
        }
        let bytes = message.body.len()
            + attributes
                .iter()
                .map(|(name, a)| a.size(name))
                .sum::<usize>();
        // A value with a data type always builds; one that did not would be left out, loudly.
        let attributes = attributes
            .into_iter()
            .filter_map(|(name, attribute)| match attribute.to_sqs() {
                Ok(value) => Some((name, value)),
                Err(e) => {
                    tracing::warn!(messageId = %message.message_id, attribute = %name, error = %e, "message attribute left off the redriven message");
                    None
                }
            })
            .collect();
        Self {
            body: message.body.clone(),
            attributes,
            bytes,
        }
    }
}

fn slot_of<'a>(
    answers: &'a mut [Option<EntryResult>],
    id: &str,
) -> Option<&'a mut Option<EntryResult>> {
    id.parse::<usize>().ok().and_then(|i| answers.get_mut(i))
}

/// A whole SendMessageBatch call that failed: throttling, the service's own faults and calls
/// that got no answer may succeed later; a missing queue or a denied call will not.
fn call_failure<E, R>(error: &SdkError<E, R>) -> EntryFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("ServiceError").to_owned();
            EntryFailure {
                retryable: is_retryable_code(&code),
                message: format!("{}", DisplayErrorContext(error)),
                code,
            }
        }
        _ => EntryFailure {
            code: "RequestFailed".into(),
            message: format!("{}", DisplayErrorContext(error)),
            retryable: true,
        },
    }
}

/// `worker dlq ...`: reads DLQ_URL (and QUEUE_URL for redrive) from the environment.
pub async fn run(command: DlqCommand, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    use shared::settings::{required, Env, Source};
    use std::io::{IsTerminal, Write};

    let dlq_url = required(&Env, "DLQ_URL")?;
    let sdk = shared::aws::sdk_config().await;
    let tools = DlqTools::new(shared::aws::sqs_client(&sdk), dlq_url, Env.get("QUEUE_URL"));
    let now = OffsetDateTime::now_utc();
    let tty = std::io::stderr().is_terminal();
    match command {
        DlqCommand::Stats { limit } => {
            // Reading a deep DLQ takes seconds: show how far it got, on a terminal only.
            let mut progress = |read: usize, depth: u64| {
                if tty {
                    let _ = write!(
                        std::io::stderr(),
                        "\rscanning the DLQ: {read} read of ~{depth}"
                    );
                }
            };
            let stats = tools.stats_with_progress(limit, &mut progress).await;
            if tty {
                eprintln!();
            }
            print!("{}", stats?.render(now));
        }
        DlqCommand::Peek { limit } => {
            for m in tools.peek(limit).await? {
                println!("{}", m.to_json_line());
            }
        }
        DlqCommand::Redrive {
            dry_run,
            limit,
            include_poison,
        } => {
            if !dry_run {
                required(&Env, "QUEUE_URL")?;
            }
            let mut progress = |r: &RedriveReport| {
                let line = progress_line(r.redriven, r.budget, r.failed);
                let mut err = std::io::stderr();
                // A terminal gets one line redrawn in place; a log gets one line per batch.
                let _ = if tty {
                    write!(err, "\r{line}")
                } else {
                    writeln!(err, "{line}")
                };
            };
            let options = RedriveOptions {
                dry_run,
                limit,
                include_poison,
            };
            let report = tools
                .redrive(&options, shutdown, &RetryPolicy::default(), &mut progress)
                .await;
            if tty {
                eprintln!();
            }
            print!(
                "{}",
                report?.render(tools.queue_url.as_deref().unwrap_or_default(), dry_run)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn message(id: &str, reason: Option<&str>, sent_at: OffsetDateTime) -> DlqMessage {
        let mut attributes = HashMap::new();
        if let Some(r) = reason {
            attributes.insert(REASON_ATTRIBUTE.to_owned(), MessageAttribute::string(r));
        }
        DlqMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{}".into(),
            attributes,
            sent_at: Some(sent_at),
        }
    }

    #[derive(Debug, clap::Parser)]
    struct Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    }

    fn parse(words: &[&str]) -> Result<DlqCommand, clap::Error> {
        use clap::Parser;
        Dlq::try_parse_from(std::iter::once("dlq").chain(words.iter().copied())).map(|d| d.command)
    }

    #[test]
    fn parses_each_command_with_its_options() {
        assert_eq!(
            parse(&["stats"]).unwrap(),
            DlqCommand::Stats { limit: 10_000 }
        );
        assert_eq!(
            parse(&["peek", "--limit", "3"]).unwrap(),
            DlqCommand::Peek { limit: 3 }
        );
        assert_eq!(
            parse(&["redrive", "--dry-run", "--limit=25"]).unwrap(),
            DlqCommand::Redrive {
                dry_run: true,
                limit: Some(25),
                include_poison: false,
            }
        );
        assert_eq!(
            parse(&["redrive", "--include-poison"]).unwrap(),
            DlqCommand::Redrive {
                dry_run: false,
                limit: None,
                include_poison: true,
            }
        );
    }

    #[test]
    fn rejects_bad_options_naming_them() {
        let message = |words: &[&str]| parse(words).unwrap_err().to_string();
        assert!(message(&["peek", "--limit", "0"]).contains("--limit"));
        assert!(parse(&["peek", "--limit"]).is_err());
        assert!(message(&["peek", "--dry-run"]).contains("--dry-run"));
        assert!(message(&["purge"]).contains("purge"));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn knows_which_reasons_a_retry_cannot_change() {
        for reason in POISON_REASONS {
            assert!(is_poison(reason));
        }
        assert!(!is_poison(EXHAUSTED_RETRIES));
    }

    #[test]
    fn the_summary_counts_redriven_skipped_and_left_by_reason() {
        let report = RedriveReport {
            redriven: 4,
            redriven_by_reason: BTreeMap::from([(EXHAUSTED_RETRIES.to_owned(), 4)]),
            skipped_by_reason: BTreeMap::from([
                ("invalid_json".to_owned(), 3),
                ("unknown_version".to_owned(), 2),
            ]),
            came_back: 1,
            ..RedriveReport::default()
        };
        let text = report.render("q", false);
        assert!(text.contains("redriven 4 messages to q"), "{text}");
        assert!(text.contains("exhausted_retries  4"), "{text}");
        assert!(text.contains("skipped 5 (poison"), "{text}");
        assert!(text.contains("invalid_json  3"), "{text}");
        assert!(text.contains("left 1 that this run sent"), "{text}");
    }

    #[test]
    fn drops_the_failure_attributes_on_redrive_and_keeps_the_rest() {
        let attributes: HashMap<String, MessageAttribute> = [
            (REASON_ATTRIBUTE, "contract_violation"),
            (DETAIL_ATTRIBUTE, "score: too high"),
            (FAILED_AT_ATTRIBUTE, "2026-11-28T10:00:00.000Z"),
            (ORIGINAL_MESSAGE_ID_ATTRIBUTE, "m-1"),
            ("correlationId", "corr-1"),
            ("tenant", "acme"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), MessageAttribute::string(v)))
        .collect();
        let carried = carried_attributes(&attributes);
        let mut keys: Vec<&str> = carried.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlationId", "tenant"]);
        let mut tagged = attributes;
        tagged.insert(
            REDRIVE_RUN_ATTRIBUTE.to_owned(),
            MessageAttribute::string("an-earlier-run"),
        );
        assert!(!carried_attributes(&tagged).contains_key(REDRIVE_RUN_ATTRIBUTE));
    }

    #[test]
    fn counts_reasons_and_finds_the_oldest_message() {
        let t = datetime!(2026-11-28 10:00 UTC);
        let messages = [
            message("a", Some("invalid_json"), t),
            message("b", Some("invalid_json"), t - time::Duration::hours(3)),
            message("c", None, t),
            message("d", Some("unknown_version"), t),
        ];
        let stats = DlqStats::from_messages(4, 0, &messages);
        assert_eq!(stats.by_reason["invalid_json"], 2);
        assert_eq!(stats.by_reason[EXHAUSTED_RETRIES], 1);
        assert_eq!(stats.by_reason["unknown_version"], 1);
        assert_eq!(stats.oldest_sent_at, Some(t - time::Duration::hours(3)));
        let text = stats.render(t + time::Duration::minutes(5));
        assert!(text.contains("oldest: 3h 5m ago"), "{text}");
        assert!(text.contains("invalid_json"), "{text}");
    }

    #[test]
    fn formats_ages_with_two_units() {
        assert_eq!(format_age(time::Duration::seconds(9)), "9s");
        assert_eq!(format_age(time::Duration::seconds(245)), "4m 5s");
        assert_eq!(format_age(time::Duration::minutes(192)), "3h 12m");
        assert_eq!(format_age(time::Duration::hours(51)), "2d 3h");
        assert_eq!(format_age(time::Duration::seconds(-3)), "0s");
    }

    #[test]
    fn draws_progress_against_the_approximate_total() {
        assert_eq!(
            progress_line(5, 10, 0),
            "[##########..........] 5/10 redriven"
        );
        assert_eq!(
            progress_line(12, 10, 1),
            "[####################] 12/12 redriven, 1 failed"
        );
        assert_eq!(
            progress_line(0, 0, 0),
            "[####################] 0/0 redriven"
        );
    }

    #[test]
    fn peek_lines_are_json_with_the_reason() {
        let line = message("a", None, datetime!(2026-11-28 10:00 UTC)).to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["failureReason"], EXHAUSTED_RETRIES);
        assert_eq!(v["messageId"], "a");
    }
}
