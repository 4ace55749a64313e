//! Operating the dead-letter queue: `worker dlq stats | peek | redrive`.
//!
//! SQS cannot be queried, so stats and peek receive messages with a short visibility timeout
//! and then make them visible again at once (nothing is consumed). Redrive sends each message
//! back to QUEUE_URL and deletes it from the DLQ only after SQS acknowledged the send: an
//! interrupted run leaves at worst a message on both queues, and since its reportId maps to
//! one table item, redriving it again never stores it twice.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use shared::sqs_batch::OutgoingMessage;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::dlq::{
    DETAIL_ATTRIBUTE, FAILED_AT_ATTRIBUTE, ORIGINAL_MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE,
};
use crate::producer::{send_with_retries, RetryPolicy};
use crate::record::parse_sent_timestamp;

pub const DLQ_USAGE: &str = "\
usage: worker dlq COMMAND

Commands (DLQ_URL required; redrive also needs QUEUE_URL):
  stats [--limit N]               depth, counts by failureReason, oldest message age
                                  (reads up to N messages, default 10000, and releases them)
  peek [--limit N]                up to N sample messages (default 10) as JSON lines with their
                                  reasons; nothing is deleted
  redrive [--dry-run] [--limit N] send messages back to QUEUE_URL, each deleted from the DLQ
                                  only after the send succeeded; progress on stderr, final
                                  count on stdout; safe to interrupt (Ctrl-C) and run again";

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqCommand {
    Stats { limit: usize },
    Peek { limit: usize },
    Redrive { dry_run: bool, limit: Option<usize> },
}

impl DlqCommand {
    /// Parses the words after `dlq`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (command, rest) = args
            .split_first()
            .ok_or_else(|| "missing dlq command".to_owned())?;
        let mut limit = None;
        let mut dry_run = false;
        let mut words = rest.iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "--dry-run" if command == "redrive" => dry_run = true,
                "--limit" => {
                    let value = words
                        .next()
                        .ok_or_else(|| "--limit needs a number".to_owned())?;
                    limit = Some(parse_limit(value)?);
                }
                other => match other.strip_prefix("--limit=") {
                    Some(value) => limit = Some(parse_limit(value)?),
                    None => return Err(format!("unknown option {other:?} for dlq {command}")),
                },
            }
        }
        match command.as_str() {
            "stats" => Ok(Self::Stats {
                limit: limit.unwrap_or(10_000),
            }),
            "peek" => Ok(Self::Peek {
                limit: limit.unwrap_or(10),
            }),
            "redrive" => Ok(Self::Redrive { dry_run, limit }),
            other => Err(format!("unknown dlq command {other:?}")),
        }
    }
}

fn parse_limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "--limit must be a whole number above 0, not {value:?}"
        )),
    }
}

/// One message read from the DLQ and held invisible until released or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// String message attributes (failureReason, failureDetail, correlationId, ...).
    pub attributes: HashMap<String, String>,
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
            .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
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

    /// The message as `peek` prints it: one JSON object per line.
    pub fn to_json_line(&self) -> String {
        let attr = |name: &str| self.attributes.get(name).cloned();
        serde_json::json!({
            "messageId": self.message_id,
            "failureReason": self.reason(),
            "failureDetail": attr(DETAIL_ATTRIBUTE),
            "failedAt": attr(FAILED_AT_ATTRIBUTE),
            "originalMessageId": attr(ORIGINAL_MESSAGE_ID_ATTRIBUTE),
            "correlationId": attr(shared::message::CORRELATION_ID_ATTRIBUTE),
            "sentAt": self.sent_at.map(shared::domain::format_utc_millis),
            "body": self.body,
        })
        .to_string()
    }
}

/// The failure reason of a dead-lettered message; [`EXHAUSTED_RETRIES`] when it has none.
pub fn reason_of(attributes: &HashMap<String, String>) -> &str {
    attributes
        .get(REASON_ATTRIBUTE)
        .map_or(EXHAUSTED_RETRIES, String::as_str)
}

/// The attributes a redriven message keeps: everything but what the DLQ added (why and when
/// it failed), so a message that fails again is described afresh.
pub fn carried_attributes(attributes: &HashMap<String, String>) -> HashMap<String, String> {
    const DROPPED: [&str; 4] = [
        REASON_ATTRIBUTE,
        DETAIL_ATTRIBUTE,
        FAILED_AT_ATTRIBUTE,
        ORIGINAL_MESSAGE_ID_ATTRIBUTE,
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
                shared::domain::format_utc_millis(t)
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
    /// Sent to QUEUE_URL and deleted from the DLQ.
    pub redriven: usize,
    /// Sent, but the delete failed: they stay in the DLQ and a rerun sends them again
    /// (harmless: same reportId, same item).
    pub sent_not_deleted: usize,
    /// Not sent; left in the DLQ (visible again after the visibility timeout).
    pub failed: usize,
    /// For --dry-run: what would be redriven, by reason.
    pub would_redrive: BTreeMap<String, usize>,
    /// True when a shutdown signal stopped the run early.
    pub interrupted: bool,
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
    async fn scan(&self, limit: usize) -> anyhow::Result<Vec<DlqMessage>> {
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
        let (visible, in_flight) = self.depth().await?;
        let messages = self.scan(limit).await?;
        self.release(&messages).await?;
        Ok(DlqStats::from_messages(visible, in_flight, &messages))
    }

    /// Up to `limit` messages, released again before returning.
    pub async fn peek(&self, limit: usize) -> anyhow::Result<Vec<DlqMessage>> {
        let messages = self.scan(limit).await?;
        self.release(&messages).await?;
        Ok(messages)
    }

    /// Sends DLQ messages back to QUEUE_URL, each deleted only after its send succeeded.
    /// Stops at `limit`, when the DLQ is drained, or when `shutdown` turns true (after the
    /// batch in hand). `progress` is called after every batch with the report so far.
    pub async fn redrive(
        &self,
        dry_run: bool,
        limit: Option<usize>,
        shutdown: watch::Receiver<bool>,
        retry: &RetryPolicy,
        progress: &mut dyn FnMut(&RedriveReport),
    ) -> anyhow::Result<RedriveReport> {
        let mut report = RedriveReport::default();
        if dry_run {
            let messages = self.scan(limit.unwrap_or(usize::MAX)).await?;
            self.release(&messages).await?;
            for m in &messages {
                *report
                    .would_redrive
                    .entry(m.reason().to_owned())
                    .or_insert(0) += 1;
            }
            return Ok(report);
        }
        let queue_url = self
            .queue_url
            .as_deref()
            .context("redrive needs QUEUE_URL (where messages go back to)")?;
        let limit = limit.unwrap_or(usize::MAX);
        let mut empty_rounds = 0;
        loop {
            let handled = report.redriven + report.sent_not_deleted + report.failed;
            if handled >= limit || empty_rounds >= EMPTY_ROUNDS_TO_STOP {
                break;
            }
            if *shutdown.borrow() {
                report.interrupted = true;
                break;
            }
            let batch = self
                .receive(limit - handled, REDRIVE_VISIBILITY_SECONDS)
                .await?;
            if batch.is_empty() {
                empty_rounds += 1;
                continue;
            }
            empty_rounds = 0;
            let outgoing: Vec<OutgoingMessage> = batch
                .iter()
                .map(|m| OutgoingMessage {
                    body: m.body.clone(),
                    attributes: carried_attributes(&m.attributes),
                })
                .collect();
            let sent = send_with_retries(&self.sqs, queue_url, &outgoing, retry).await;
            let mut to_delete = Vec::new();
            let mut codes = Vec::new();
            for (m, result) in batch.iter().zip(&sent) {
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
            progress(&report);
            if to_delete.is_empty() {
                // Nothing in this batch could be sent: the queue is missing or refusing us.
                // Going on would only spin on the same messages.
                bail!(
                    "SQS refused every message of a batch ({}); {} redriven so far",
                    codes.join(", "),
                    report.redriven
                );
            }
        }
        Ok(report)
    }

    /// Deletes sent messages from the DLQ; returns how many could not be deleted.
    async fn delete(&self, messages: &[&DlqMessage]) -> usize {
        let mut not_deleted = 0;
        for chunk in messages.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
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

/// `worker dlq ...`: reads DLQ_URL (and QUEUE_URL for redrive) from the environment.
pub async fn run(args: &[String], shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    use shared::settings::{required, Env, Source};
    use std::io::{IsTerminal, Write};

    if matches!(
        args.first().map(String::as_str),
        None | Some("help" | "--help" | "-h")
    ) {
        println!("{DLQ_USAGE}");
        return Ok(());
    }
    let command = DlqCommand::parse(args).map_err(|e| anyhow::anyhow!("{e}\n\n{DLQ_USAGE}"))?;
    let dlq_url = required(&Env, "DLQ_URL")?;
    let sdk = shared::aws::sdk_config().await;
    let tools = DlqTools::new(shared::aws::sqs_client(&sdk), dlq_url, Env.get("QUEUE_URL"));
    let now = OffsetDateTime::now_utc();
    match command {
        DlqCommand::Stats { limit } => {
            print!("{}", tools.stats(limit).await?.render(now));
        }
        DlqCommand::Peek { limit } => {
            for m in tools.peek(limit).await? {
                println!("{}", m.to_json_line());
            }
        }
        DlqCommand::Redrive { dry_run, limit } => {
            if !dry_run {
                required(&Env, "QUEUE_URL")?;
            }
            let (visible, _) = tools.depth().await?;
            let total = usize::try_from(visible)
                .unwrap_or(usize::MAX)
                .min(limit.unwrap_or(usize::MAX));
            let tty = std::io::stderr().is_terminal();
            let mut progress = |r: &RedriveReport| {
                let line = progress_line(r.redriven, total, r.failed);
                let mut err = std::io::stderr();
                // A terminal gets one line redrawn in place; a log gets one line per batch.
                let _ = if tty {
                    write!(err, "\r{line}")
                } else {
                    writeln!(err, "{line}")
                };
            };
            let report = tools
                .redrive(
                    dry_run,
                    limit,
                    shutdown,
                    &RetryPolicy::default(),
                    &mut progress,
                )
                .await;
            if tty {
                eprintln!();
            }
            let report = report?;
            if dry_run {
                let count: usize = report.would_redrive.values().sum();
                println!("dry run: would redrive {count} messages");
                for (reason, n) in &report.would_redrive {
                    println!("  {reason}  {n}");
                }
            } else {
                println!(
                    "redriven {} messages to {}{}",
                    report.redriven,
                    tools.queue_url.as_deref().unwrap_or_default(),
                    if report.interrupted {
                        " (interrupted; run again to continue)"
                    } else {
                        ""
                    }
                );
                if report.sent_not_deleted > 0 || report.failed > 0 {
                    println!(
                        "{} sent but not deleted (a rerun sends them again; same reportId, same item), {} not sent (left in the DLQ)",
                        report.sent_not_deleted, report.failed
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn message(id: &str, reason: Option<&str>, sent_at: OffsetDateTime) -> DlqMessage {
        let mut attributes = HashMap::new();
        if let Some(r) = reason {
            attributes.insert(REASON_ATTRIBUTE.to_owned(), r.to_owned());
        }
        DlqMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{}".into(),
            attributes,
            sent_at: Some(sent_at),
        }
    }

    #[test]
    fn parses_each_command_with_its_options() {
        assert_eq!(
            DlqCommand::parse(&args(&["stats"])),
            Ok(DlqCommand::Stats { limit: 10_000 })
        );
        assert_eq!(
            DlqCommand::parse(&args(&["peek", "--limit", "3"])),
            Ok(DlqCommand::Peek { limit: 3 })
        );
        assert_eq!(
            DlqCommand::parse(&args(&["redrive", "--dry-run", "--limit=25"])),
            Ok(DlqCommand::Redrive {
                dry_run: true,
                limit: Some(25)
            })
        );
        assert_eq!(
            DlqCommand::parse(&args(&["redrive"])),
            Ok(DlqCommand::Redrive {
                dry_run: false,
                limit: None
            })
        );
    }

    #[test]
    fn rejects_bad_options_naming_them() {
        assert!(DlqCommand::parse(&args(&["peek", "--limit", "0"]))
            .unwrap_err()
            .contains("--limit"));
        assert!(DlqCommand::parse(&args(&["peek", "--limit"])).is_err());
        assert!(DlqCommand::parse(&args(&["peek", "--dry-run"]))
            .unwrap_err()
            .contains("--dry-run"));
        assert!(DlqCommand::parse(&args(&["purge"]))
            .unwrap_err()
            .contains("purge"));
        assert!(DlqCommand::parse(&[]).is_err());
    }

    #[test]
    fn drops_the_failure_attributes_on_redrive_and_keeps_the_rest() {
        let attributes: HashMap<String, String> = [
            (REASON_ATTRIBUTE, "contract_violation"),
            (DETAIL_ATTRIBUTE, "score: too high"),
            (FAILED_AT_ATTRIBUTE, "2026-11-28T10:00:00.000Z"),
            (ORIGINAL_MESSAGE_ID_ATTRIBUTE, "m-1"),
            ("correlationId", "corr-1"),
            ("tenant", "acme"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let carried = carried_attributes(&attributes);
        let mut keys: Vec<&str> = carried.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlationId", "tenant"]);
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
