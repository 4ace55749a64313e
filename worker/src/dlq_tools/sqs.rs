//! The SQS side of the DLQ tools: depth, receiving and releasing messages, deleting them.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use platform::sqs_batch::{delete_entries, MAX_BATCH_ENTRIES};

use super::message::DlqMessage;
use super::report::DlqStats;

/// How long stats/peek/dry-run hold messages before giving them back (they are released
/// explicitly at the end; this only bounds what a crash would hide).
const SCAN_VISIBILITY_SECONDS: i32 = 30;
/// Consecutive empty receives that mean "the queue is drained".
pub(super) const EMPTY_ROUNDS_TO_STOP: usize = 2;

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

    pub(super) async fn receive(
        &self,
        max: usize,
        visibility: i32,
    ) -> anyhow::Result<Vec<DlqMessage>> {
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
    pub(super) async fn scan(
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
    pub(super) async fn release(&self, messages: &[DlqMessage]) -> anyhow::Result<()> {
        for chunk in messages.chunks(MAX_BATCH_ENTRIES) {
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
    /// Deletes sent messages from the DLQ; returns how many could not be deleted.
    pub(super) async fn delete(&self, messages: &[&DlqMessage]) -> usize {
        let mut not_deleted = 0;
        for chunk in messages.chunks(MAX_BATCH_ENTRIES) {
            let entries = delete_entries(chunk.iter().map(|m| m.receipt_handle.as_str()));
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
