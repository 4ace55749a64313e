//! Outside Lambda: a long-polling SQS consumer with the same processor.
//!
//! Several receive loops; DeleteMessageBatch for what succeeded; failed messages get their
//! visibility pushed out (exponential in the receive count) so they come back later. On
//! SIGTERM/Ctrl-C the batches in hand are finished before exit, within the shutdown grace
//! period when one is set (shorter than the orchestrator's, so the worker exits before it is
//! killed). A `kill -9`, or a grace period running out, loses nothing: unfinished messages
//! reappear after the visibility timeout and are rewritten to the same items.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::health::Health;
use crate::processor::Processor;
use crate::record::{parse_sent_timestamp, InboundMessage, MessageAttribute};

const MAX_VISIBILITY_SECONDS: u64 = 12 * 60 * 60;
const MAX_FAILURE_DELAY_SECONDS: u64 = 300;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub queue_url: String,
    pub receive_loops: usize,
    pub wait_time_seconds: i32,
    pub max_messages: i32,
    pub deadline_margin: Duration,
    pub failure_visibility_base: Duration,
}

pub struct Poller {
    sqs: aws_sdk_sqs::Client,
    processor: Arc<Processor>,
    config: PollerConfig,
    health: Option<Health>,
    shutdown_grace: Option<Duration>,
}

impl Poller {
    pub fn new(sqs: aws_sdk_sqs::Client, processor: Arc<Processor>, config: PollerConfig) -> Self {
        Self {
            sqs,
            processor,
            config,
            health: None,
            shutdown_grace: None,
        }
    }

    /// Reports ready once polling, and not ready from the shutdown request on.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }

    /// After shutdown is requested, wait at most `grace` for the batches in hand; without
    /// one, wait for them however long they take.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }

    /// Runs until `shutdown` turns true, then finishes the batches in hand and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let visibility = self.visibility_timeout().await?;
        if let Some(health) = &self.health {
            health.polling();
        }
        tracing::info!(
            queue_url = %self.config.queue_url,
            loops = self.config.receive_loops,
            visibility_timeout_s = visibility.as_secs(),
            "poller started"
        );
        let this = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..this.config.receive_loops {
            let this = this.clone();
            let shutdown = shutdown.clone();
            loops.spawn(async move { this.receive_loop(visibility, shutdown).await });
        }
        let mut requested = shutdown.clone();
        tokio::select! {
            // The loops end on shutdown too: when both are ready, this is the shutdown path.
            biased;
            // An Err means the sender is gone: the loops see that as shutdown too.
            _ = requested.wait_for(|stop| *stop) => {}
            ended = join_all(&mut loops) => ended?,
        }
        if let Some(health) = &this.health {
            health.draining();
        }
        match this.shutdown_grace {
            None => join_all(&mut loops).await?,
            Some(grace) => match tokio::time::timeout(grace, join_all(&mut loops)).await {
                Ok(joined) => joined?,
                Err(_) => {
                    loops.abort_all();
                    tracing::warn!(
                        grace_s = grace.as_secs_f64(),
                        "shutdown grace period over with batches unfinished; their messages \
                         return after the visibility timeout"
                    );
                }
            },
        }
        tracing::info!("poller stopped");
        Ok(())
    }

    async fn visibility_timeout(&self) -> anyhow::Result<Duration> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.config.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .with_context(|| {
                format!(
                    "reading the visibility timeout of {}",
                    self.config.queue_url
                )
            })?;
        let seconds = out
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout).cloned())
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Ok(Duration::from_secs(seconds))
    }

    async fn receive_loop(&self, visibility: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut error_delay = Duration::from_millis(200);
        while !*shutdown.borrow() {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.config.queue_url)
                .max_number_of_messages(self.config.max_messages)
                .wait_time_seconds(self.config.wait_time_seconds)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send();
            // A receive cut short by shutdown may have taken messages we never see; they
            // reappear after the visibility timeout, so nothing is lost.
            let received = tokio::select! {
                _ = shutdown.changed() => break,
                r = receive => r,
            };
            let started = Instant::now();
            let messages = match received {
                Ok(out) => {
                    error_delay = Duration::from_millis(200);
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(error_delay) => {}
                    }
                    error_delay = (error_delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            self.handle(
                messages,
                started + visibility.saturating_sub(self.config.deadline_margin),
            )
            .await;
        }
    }

    async fn handle(&self, messages: Vec<Message>, deadline: Instant) {
        let mut receipts: HashMap<String, (String, u32)> = HashMap::new();
        let inbound: Vec<InboundMessage> = messages
            .into_iter()
            .filter_map(|m| {
                let message = inbound_from_sqs(&m);
                let receipt = m.receipt_handle?;
                receipts.insert(message.message_id.clone(), (receipt, message.receive_count));
                Some(message)
            })
            .collect();
        let outcome = self.processor.process_batch(&inbound, deadline).await;
        outcome.report();
        let mut failed = Vec::with_capacity(outcome.failed.len());
        for id in &outcome.failed {
            if let Some(entry) = receipts.remove(id) {
                failed.push((id.clone(), entry));
            }
        }
        let done: Vec<(String, String)> = receipts
            .into_iter()
            .map(|(id, (receipt, _))| (id, receipt))
            .collect();
        self.delete(&done).await;
        self.delay_retries(&failed).await;
    }

    /// Deletes what was handled. A failed delete only means the message comes back and is
    /// rewritten to the same item: idempotent, never a duplicate.
    async fn delete(&self, done: &[(String, String)]) {
        for chunk in done.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .sqs
                .delete_message_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if !out.failed.is_empty() => {
                    tracing::warn!(
                        failed = out.failed.len(),
                        "some deletes failed; those messages will be redelivered"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; messages will be redelivered")
                }
            }
        }
    }

    async fn delay_retries(&self, failed: &[(String, (String, u32))]) {
        for chunk in failed.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, (receipt, receive_count)))| {
                    let delay =
                        failure_visibility(self.config.failure_visibility_base, *receive_count);
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not delay failed messages; they return after the visibility timeout");
            }
        }
    }
}

async fn join_all(loops: &mut tokio::task::JoinSet<()>) -> anyhow::Result<()> {
    while let Some(result) = loops.join_next().await {
        result.context("a receive loop panicked")?;
    }
    Ok(())
}

/// How long a failed message stays hidden: base * 2^(receives - 1), capped, with jitter so
/// a burst of failures does not come back in lockstep.
pub fn failure_visibility(base: Duration, receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    let cap = base
        .as_secs()
        .saturating_mul(1 << exponent)
        .min(MAX_FAILURE_DELAY_SECONDS)
        .min(MAX_VISIBILITY_SECONDS);
    let jittered = (cap as f64 * (0.5 + fastrand::f64() / 2.0)).round() as u64;
    Duration::from_secs(jittered)
}

pub fn inbound_from_sqs(message: &Message) -> InboundMessage {
    let system = message.attributes.as_ref();
    let system_attr = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name)).cloned();
    InboundMessage {
        message_id: message.message_id.clone().unwrap_or_default(),
        body: message.body.clone(),
        sent_at: system_attr(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| parse_sent_timestamp(&v)),
        receive_count: system_attr(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        trace_header: system_attr(MessageSystemAttributeName::AwsTraceHeader),
        attributes: message
            .message_attributes
            .as_ref()
            .map(|attrs| {
                attrs
                    .iter()
                    .filter_map(|(k, v)| MessageAttribute::from_sqs(v).map(|a| (k.clone(), a)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_visibility_grows_with_receives_and_is_capped() {
        let base = Duration::from_secs(5);
        for _ in 0..50 {
            let first = failure_visibility(base, 1).as_secs();
            assert!((2..=5).contains(&first), "{first}");
            let later = failure_visibility(base, 4).as_secs();
            assert!((20..=40).contains(&later), "{later}");
            assert!(failure_visibility(base, 40).as_secs() <= MAX_FAILURE_DELAY_SECONDS);
        }
    }
}
