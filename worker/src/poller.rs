//! Outside Lambda: a long-polling SQS consumer that batches the way the event source mapping
//! does, driving the same processor as the Lambda handler.
//!
//! * `receive_loops` loops each keep one ReceiveMessage (up to 10 messages, 20 s long poll)
//!   in flight and hand what they take to the gatherer.
//! * The gatherer forms batches of up to `batch_size` messages, or of whatever arrived within
//!   `batch_window` of a batch's first message, and runs up to `batches_in_flight` of them at
//!   once through [`Processor::process_batch`]: `ceil(n/25)` BatchWriteItem requests for n
//!   distinct keys, dedupe and the DLQ as under Lambda.
//! * What a batch finished is deleted in DeleteMessageBatch calls of 10, sent concurrently;
//!   failed messages get their visibility pushed out (exponential in the receive count) so
//!   they come back later.
//! * The loops take messages only while the batches in hand leave room (one semaphore permit
//!   per message held, released when its batch is done).
//! * Every message held is leased ([`leases`]): from the receive until its batch deleted or
//!   delayed it, its visibility is renewed each time half of it has gone, so it does not
//!   reappear while it waits for a batch slot, while its batch writes, or while its delete is
//!   on the way.
//!
//! On SIGTERM/Ctrl-C the receives stop, what was received is gathered and finished before
//! exit, within the shutdown grace period when one is set (shorter than the orchestrator's,
//! so the worker exits before it is killed). A `kill -9`, or a grace period running out, loses
//! nothing: unfinished messages reappear after the visibility timeout and are rewritten to the
//! same items.

mod leases;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use futures::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use platform::sqs_batch::{delete_entries, MAX_BATCH_ENTRIES};

use crate::health::Health;
use crate::processor::Processor;
use crate::record::{parse_sent_timestamp, InboundMessage, MessageAttribute};
use crate::settings::WorkerSettings;
use leases::{Lease, Leases};

const MAX_VISIBILITY_SECONDS: u64 = 12 * 60 * 60;
const MAX_FAILURE_DELAY_SECONDS: u64 = 300;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub queue_url: String,
    /// Loops each keeping one ReceiveMessage in flight.
    pub receive_loops: usize,
    pub wait_time_seconds: i32,
    /// Messages asked for per ReceiveMessage (SQS allows 1 to 10).
    pub max_messages: i32,
    /// The most messages in one batch.
    pub batch_size: usize,
    /// How long a batch gathers after its first message arrived.
    pub batch_window: Duration,
    /// Batches processed at once.
    pub batches_in_flight: usize,
    pub deadline_margin: Duration,
    pub failure_visibility_base: Duration,
}

impl PollerConfig {
    /// The production shape: 20 s long polls of 10 messages, the rest from the settings.
    pub fn from_settings(queue_url: impl Into<String>, settings: &WorkerSettings) -> Self {
        Self {
            queue_url: queue_url.into(),
            receive_loops: settings.receive_loops,
            wait_time_seconds: 20,
            max_messages: MAX_BATCH_ENTRIES as i32,
            batch_size: settings.batch_size,
            batch_window: settings.batch_window,
            batches_in_flight: settings.batches_in_flight,
            deadline_margin: settings.deadline_margin,
            failure_visibility_base: settings.failure_visibility_base,
        }
    }

    fn messages_per_receive(&self) -> usize {
        usize::try_from(self.max_messages)
            .unwrap_or(1)
            .clamp(1, MAX_BATCH_ENTRIES)
    }

    /// Messages the worker may hold at once: the batches in flight, one more gathering.
    fn messages_in_hand(&self) -> usize {
        let batch = self.batch_size.max(1);
        (batch * (self.batches_in_flight.max(1) + 1)).max(self.messages_per_receive())
    }
}

pub struct Poller {
    sqs: aws_sdk_sqs::Client,
    processor: Arc<Processor>,
    config: PollerConfig,
    health: Option<Health>,
    shutdown_grace: Option<Duration>,
}

/// What one ReceiveMessage brought, with a permit and a lease per message.
struct Received {
    messages: Vec<Message>,
    at: Instant,
    permits: OwnedSemaphorePermit,
    lease: Lease,
}

/// Messages gathered for one batch. Its permits go back, and its lease ends, when it is
/// dropped.
struct Batch {
    messages: Vec<Message>,
    /// When its first messages were received: its gathering window runs from then.
    first_received: Instant,
    permits: OwnedSemaphorePermit,
    lease: Lease,
}

impl Batch {
    fn start(received: Received) -> Self {
        Self {
            messages: received.messages,
            first_received: received.at,
            permits: received.permits,
            lease: received.lease,
        }
    }

    /// Adds what fits of `received`; returns the rest, which starts the next batch.
    fn take(&mut self, mut received: Received, batch_size: usize) -> Option<Received> {
        let rest = received.split_off(batch_size.saturating_sub(self.messages.len()));
        self.messages.append(&mut received.messages);
        self.permits.merge(received.permits);
        self.lease.merge(received.lease);
        rest
    }
}

impl Received {
    /// Keeps the first `keep` messages; returns the rest with their permits and lease, or
    /// `None` when all of them fit.
    fn split_off(&mut self, keep: usize) -> Option<Received> {
        let rest = self.messages.len().checked_sub(keep).filter(|&n| n > 0)?;
        let permits = self.permits.split(rest)?;
        let messages = self.messages.split_off(keep);
        let lease = self.lease.split_off(&messages);
        Some(Received {
            messages,
            at: self.at,
            permits,
            lease,
        })
    }
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
            receiveLoops = self.config.receive_loops,
            batchSize = self.config.batch_size,
            batchWindowMs = self.config.batch_window.as_millis() as u64,
            batchesInFlight = self.config.batches_in_flight,
            visibility_timeout_s = visibility.as_secs(),
            "poller started"
        );
        let this = Arc::new(self);
        let leases = Leases::new(visibility);
        // Renews what is held for as long as the poller runs (dropping the set aborts it).
        let mut keeper = JoinSet::new();
        keeper.spawn(this.clone().keep_hidden(leases.clone()));
        let permits = Arc::new(Semaphore::new(this.config.messages_in_hand()));
        let (received_tx, received_rx) = mpsc::channel(this.config.receive_loops.max(1) * 2);
        let mut receivers = JoinSet::new();
        for _ in 0..this.config.receive_loops.max(1) {
            let (this, permits, tx) = (this.clone(), permits.clone(), received_tx.clone());
            let (leases, shutdown) = (leases.clone(), shutdown.clone());
            receivers.spawn(async move { this.receive_loop(permits, leases, tx, shutdown).await });
        }
        // The gatherer ends once every loop has ended and what they sent is done.
        drop(received_tx);
        let mut gatherer = tokio::spawn(this.clone().gather(received_rx, visibility));

        let mut requested = shutdown.clone();
        tokio::select! {
            // The loops end on shutdown too: when both are ready, this is the shutdown path.
            biased;
            // An Err means the sender is gone: the loops see that as shutdown too.
            // (The guard `wait_for` returns is dropped at once: it is not Send.)
            _ = async { requested.wait_for(|stop| *stop).await.is_ok() } => {}
            // Before shutdown only a panicking loop ends them all.
            ended = &mut gatherer => {
                join_all(&mut receivers).await?;
                ended.context("the batch gatherer panicked")?;
                // The loops end only on shutdown: a request that raced the gatherer's end
                // (every batch already finished) is a clean stop.
                if !*shutdown.borrow() {
                    anyhow::bail!("every receive loop ended before shutdown was requested");
                }
                tracing::info!("poller stopped");
                return Ok(());
            }
        }
        if let Some(health) = &this.health {
            health.draining();
        }
        let finish = async {
            join_all(&mut receivers).await?;
            (&mut gatherer).await.context("the batch gatherer panicked")
        };
        match this.shutdown_grace {
            None => finish.await?,
            Some(grace) => match tokio::time::timeout(grace, finish).await {
                Ok(finished) => finished?,
                Err(_) => {
                    // Dropping the gatherer's task set aborts the batches it runs.
                    gatherer.abort();
                    receivers.abort_all();
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

    /// Keeps one ReceiveMessage in flight whenever the batches in hand leave room for its
    /// messages.
    async fn receive_loop(
        &self,
        permits: Arc<Semaphore>,
        leases: Arc<Leases>,
        received_tx: mpsc::Sender<Received>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let per_receive = self.config.messages_per_receive();
        let mut error_delay = Duration::from_millis(200);
        while !*shutdown.borrow() {
            let room = tokio::select! {
                _ = shutdown.changed() => break,
                room = permits.clone().acquire_many_owned(per_receive as u32) => match room {
                    Ok(room) => room,
                    Err(_) => break,
                },
            };
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.config.queue_url)
                .max_number_of_messages(per_receive as i32)
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
            let at = Instant::now();
            let mut messages = match received {
                Ok(out) => {
                    error_delay = Duration::from_millis(200);
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                    drop(room);
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
            messages.truncate(per_receive);
            // One permit per message stays with it; the rest go back with `room`.
            let mut room = room;
            let Some(kept) = room.split(messages.len()) else {
                continue;
            };
            let lease = leases.hold(&messages, at);
            let received = Received {
                messages,
                at,
                permits: kept,
                lease,
            };
            if received_tx.send(received).await.is_err() {
                // The gatherer is gone (aborted): these return after the visibility timeout.
                break;
            }
        }
    }

    /// Forms batches from what the loops receive and runs `batches_in_flight` at once, until
    /// the loops have ended and every batch is done.
    async fn gather(
        self: Arc<Self>,
        mut received_rx: mpsc::Receiver<Received>,
        visibility: Duration,
    ) {
        let batch_size = self.config.batch_size.max(1);
        let slots = Arc::new(Semaphore::new(self.config.batches_in_flight.max(1)));
        let mut running = JoinSet::new();
        let mut carried: Option<Received> = None;
        loop {
            let mut first = match carried.take() {
                Some(rest) => rest,
                None => match received_rx.recv().await {
                    Some(received) => received,
                    None => break,
                },
            };
            // A receive can bring more than a small batch holds.
            carried = first.split_off(batch_size);
            let mut batch = Batch::start(first);
            let window_closes = batch.first_received + self.config.batch_window;
            while batch.messages.len() < batch_size {
                tokio::select! {
                    more = received_rx.recv() => match more {
                        Some(received) => {
                            carried = batch.take(received, batch_size);
                            if carried.is_some() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(window_closes) => break,
                }
            }
            // Reap what finished, so the set does not grow with the run.
            while let Some(done) = running.try_join_next() {
                log_batch_panic(done);
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            running.spawn(async move {
                this.handle(batch, visibility).await;
                drop(slot);
            });
        }
        while let Some(done) = running.join_next().await {
            log_batch_panic(done);
        }
    }

    async fn handle(&self, mut batch: Batch, visibility: Duration) {
        // The batch's lease keeps its messages hidden however long it waited for its slot, so
        // its time to write runs from now.
        let deadline = Instant::now() + visibility.saturating_sub(self.config.deadline_margin);
        let mut receipts: HashMap<String, (String, u32)> =
            HashMap::with_capacity(batch.messages.len());
        let inbound: Vec<InboundMessage> = batch
            .messages
            .iter()
            .filter_map(|m| {
                let message = inbound_from_sqs(m);
                let receipt = m.receipt_handle.clone()?;
                receipts.insert(message.message_id.clone(), (receipt, message.receive_count));
                Some(message)
            })
            .collect();
        let outcome = self.processor.process_batch(&inbound, deadline).await;
        outcome.report();
        let mut failed = Vec::with_capacity(outcome.failed.len());
        for id in &outcome.failed {
            if let Some(entry) = receipts.remove(id) {
                failed.push(entry);
            }
        }
        // What is deleted stays leased until the delete is done: a slow delete must not let
        // it reappear. What is delayed is not: a renewal would cut the delay short.
        batch.lease.end(
            &failed
                .iter()
                .map(|(receipt, _)| receipt)
                .collect::<Vec<_>>(),
        );
        let done: Vec<String> = receipts.into_values().map(|(receipt, _)| receipt).collect();
        tokio::join!(self.delete(&done), self.delay_retries(&failed));
        // The batch's permits go back here, making room for the next receives.
        drop(batch);
    }

    /// Renews the visibility of every message held once half of it has gone, until the
    /// poller stops.
    async fn keep_hidden(self: Arc<Self>, leases: Arc<Leases>) -> Infallible {
        let visibility = leases.visibility();
        if visibility.is_zero() {
            // A queue without a visibility timeout hides nothing: there is nothing to renew.
            return std::future::pending().await;
        }
        let seconds = i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX);
        let mut check = tokio::time::interval(leases.check_every());
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Renewals run beside the checks, so a slow one does not hold back the next.
        let mut renewing = JoinSet::new();
        loop {
            check.tick().await;
            while renewing.try_join_next().is_some() {}
            let due = leases.due(Instant::now());
            if due.is_empty() {
                continue;
            }
            tracing::info!(
                messages = due.len(),
                visibility_timeout_s = visibility.as_secs(),
                "messages still held at half their visibility timeout; extending it"
            );
            let this = self.clone();
            renewing.spawn(async move {
                let entries: Vec<(&String, i32)> = due.iter().map(|r| (r, seconds)).collect();
                this.change_visibility(&entries, "extend the visibility of messages still held")
                    .await;
            });
        }
    }

    /// Deletes what was handled, 10 per call, the calls concurrently. A failed delete only
    /// means the message comes back and is rewritten to the same item: idempotent, never a
    /// duplicate.
    async fn delete(&self, done: &[String]) {
        stream::iter(done.chunks(MAX_BATCH_ENTRIES))
            .for_each_concurrent(None, |chunk| async move {
                let entries = delete_entries(chunk.iter().map(String::as_str));
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
            })
            .await;
    }

    /// Hides failed messages for a while that grows with their receive count.
    async fn delay_retries(&self, failed: &[(String, u32)]) {
        let entries: Vec<(&String, i32)> = failed
            .iter()
            .map(|(receipt, receive_count)| {
                let delay = failure_visibility(self.config.failure_visibility_base, *receive_count);
                (receipt, i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            })
            .collect();
        self.change_visibility(
            &entries,
            "delay failed messages; they return after the visibility timeout",
        )
        .await;
    }

    /// ChangeMessageVisibilityBatch, 10 per call, the calls concurrently.
    async fn change_visibility(&self, entries: &[(&String, i32)], purpose: &str) {
        stream::iter(entries.chunks(MAX_BATCH_ENTRIES))
            .for_each_concurrent(None, |chunk| async move {
                let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (receipt, seconds))| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*receipt)
                            .visibility_timeout(*seconds)
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
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not {purpose}");
                }
            })
            .await;
    }
}

fn log_batch_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            // Its messages were neither deleted nor delayed: they return after the
            // visibility timeout.
            tracing::error!(error = %e, "a batch panicked; its messages will be redelivered");
        }
    }
}

async fn join_all(loops: &mut JoinSet<()>) -> anyhow::Result<()> {
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
