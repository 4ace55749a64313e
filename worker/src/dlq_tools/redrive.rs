//! The redrive run: a fixed set of DLQ messages sent back to QUEUE_URL, each deleted only
//! after SQS took it, poison left behind unless asked for.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_sqs::error::BuildError;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use platform::sqs_batch::BatchEntry;
use tokio::sync::watch;

use super::message::{carried_attributes, is_poison, DlqMessage};
use super::report::RedriveReport;
use super::sqs::{DlqTools, EMPTY_ROUNDS_TO_STOP};
use crate::dlq::{fit_attributes, REDRIVE_RUN_ATTRIBUTE};
use crate::producer::{send_with_retries, RetryPolicy};
use crate::record::MessageAttribute;

/// How long redrive holds a message between receiving and deleting it.
const REDRIVE_VISIBILITY_SECONDS: i32 = 60;

/// What a redrive run does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveOptions {
    /// Count only; move nothing.
    pub dry_run: bool,
    /// At most this many messages (never more than the DLQ held at the start).
    pub limit: Option<usize>,
    /// Send poison ([`contract::message::PoisonReason`]) too.
    pub include_poison: bool,
}

impl DlqTools {
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
            // SendMessageBatch in groups of at most 10 entries and 256 KiB; what failed in a
            // way a retry may fix is sent again, with backoff.
            let sent = send_with_retries(&self.sqs, queue_url, &outgoing, retry).await;
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
}

/// A DLQ message on its way back to the main queue: unlike a producer's
/// [`platform::sqs_batch::OutgoingMessage`], it keeps each attribute's data type.
#[derive(Debug, Clone)]
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

impl BatchEntry for Outgoing {
    fn payload_bytes(&self) -> usize {
        self.bytes
    }

    fn to_entry(&self, id: String) -> Result<SendMessageBatchRequestEntry, BuildError> {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(&self.body)
            .set_message_attributes(Some(self.attributes.clone()))
            .build()
    }
}
