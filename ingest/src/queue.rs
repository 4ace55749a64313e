//! The port ingest enqueues through, and its SQS adapter. The port speaks of messages the
//! queue took or did not ([`NotEnqueued`]); SQS's error codes stay in the adapter.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use contract::message::CORRELATION_ID_ATTRIBUTE;
use contract::ScoreMessage;
use platform::metrics::{self, names};
use platform::sqs_batch::{
    current_trace_header, send_all, EntryFailure, EntryResult, OutgoingMessage, MAX_BATCH_ENTRIES,
};

use crate::coalesce::Coalescer;

/// SendMessageBatch calls in flight at once for one batch request (500 entries = 50 calls).
pub const BATCH_SEND_CONCURRENCY: usize = 8;

/// Why the queue did not take one message of a batch, in the port's terms: whether sending
/// it again may succeed, and the queue's own account of it for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEnqueued {
    /// The queue failed, or gave no answer, for this message: sending it again may succeed.
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    /// The queue refused this message: sending it again fails the same way.
    #[error("the queue refused the message: {0}")]
    Refused(String),
}

#[async_trait]
pub trait ScoreQueue: Send + Sync {
    /// Returns only once the queue has acknowledged the message, with the id the queue gave
    /// it (operators follow a write into the worker's logs by it).
    async fn enqueue(&self, message: &ScoreMessage, correlation_id: &str)
        -> anyhow::Result<String>;

    /// Enqueues many messages; one result per message, in order. `Ok` only for messages the
    /// queue acknowledged. The default sends them one by one; [`SqsScoreQueue`] batches.
    async fn enqueue_batch(
        &self,
        messages: &[ScoreMessage],
        correlation_id: &str,
    ) -> Vec<Result<(), NotEnqueued>> {
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(
                self.enqueue(message, correlation_id)
                    .await
                    .map(|_| ())
                    .map_err(|e| NotEnqueued::Unavailable(format!("{e:#}"))),
            );
        }
        results
    }
}

/// An entry SQS did not take, in the port's terms: its code and message kept for the log.
fn not_enqueued(failure: EntryFailure) -> NotEnqueued {
    let account = format!("{}: {}", failure.code, failure.message);
    if failure.retryable {
        NotEnqueued::Unavailable(account)
    } else {
        NotEnqueued::Refused(account)
    }
}

/// [`ScoreQueue`] on SQS. Single writes made at the same moment share SendMessageBatch calls
/// ([`crate::coalesce`]): a full call of 10 leaves at once, a partial one when fewer than
/// [`PARTIAL_SENDS_IN_FLIGHT`] partial calls are in flight.
pub struct SqsScoreQueue {
    client: aws_sdk_sqs::Client,
    queue_url: Arc<str>,
    single_writes: Coalescer<OutgoingMessage, EntryResult>,
}

/// SendMessageBatch calls of fewer than 10 writes in flight at once. One keeps a lone write
/// waiting at most one round trip behind another, and the calls near full under load, where
/// full calls leave without waiting (measured in docs/reliability.md's spike runs).
pub const PARTIAL_SENDS_IN_FLIGHT: usize = 1;

impl SqsScoreQueue {
    /// Spawns the batching task: call inside the tokio runtime that serves the requests.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<Arc<str>>) -> Self {
        let queue_url: Arc<str> = queue_url.into();
        let single_writes = {
            let (client, queue_url) = (client.clone(), queue_url.clone());
            Coalescer::spawn(
                MAX_BATCH_ENTRIES,
                PARTIAL_SENDS_IN_FLIGHT,
                move |messages: Vec<OutgoingMessage>| {
                    let (client, queue_url) = (client.clone(), queue_url.clone());
                    // Messages are built from the parsed fields, a few hundred bytes: ten
                    // make one call (`send_all` would split a group over the byte limit).
                    async move { send_all(&client, &queue_url, &messages, 1).await }
                },
            )
        };
        Self {
            client,
            queue_url,
            single_writes,
        }
    }
}

/// The message as ingest sends it: the v1 body, the correlation id and, under Lambda, the
/// invocation's trace header (read here, in the request's task, not in the batching task).
fn outgoing(
    message: &ScoreMessage,
    correlation_id: &str,
    trace: Option<String>,
) -> OutgoingMessage {
    OutgoingMessage::new(message.to_json())
        .with_attribute(CORRELATION_ID_ATTRIBUTE, correlation_id)
        .with_trace_header(trace)
}

#[async_trait]
impl ScoreQueue for SqsScoreQueue {
    async fn enqueue(
        &self,
        message: &ScoreMessage,
        correlation_id: &str,
    ) -> anyhow::Result<String> {
        let started = Instant::now();
        let sent = self
            .single_writes
            .call(outgoing(message, correlation_id, current_trace_header()))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|result| {
                result.map_err(|failure| anyhow::anyhow!("{}: {}", failure.code, failure.message))
            });
        // Recorded here, in the request's own metrics scope: the time this write waited for
        // SQS, batching included.
        metrics::observe(
            names::SQS_SEND_LATENCY,
            [metrics::millis(started.elapsed())],
        );
        if sent.is_err() {
            metrics::count(names::SQS_SEND_FAILURES, 1);
        }
        sent.context("SendMessageBatch")
    }

    /// SendMessageBatch in groups of 10, [`BATCH_SEND_CONCURRENCY`] calls at a time.
    async fn enqueue_batch(
        &self,
        messages: &[ScoreMessage],
        correlation_id: &str,
    ) -> Vec<Result<(), NotEnqueued>> {
        let trace = current_trace_header();
        let batch: Vec<OutgoingMessage> = messages
            .iter()
            .map(|m| outgoing(m, correlation_id, trace.clone()))
            .collect();
        let started = Instant::now();
        let results: Vec<Result<(), NotEnqueued>> = send_all(
            &self.client,
            &self.queue_url,
            &batch,
            BATCH_SEND_CONCURRENCY,
        )
        .await
        .into_iter()
        .map(|r| r.map(|_| ()).map_err(not_enqueued))
        .collect();
        metrics::observe(
            names::SQS_SEND_LATENCY,
            [metrics::millis(started.elapsed())],
        );
        metrics::count(
            names::SQS_SEND_FAILURES,
            results.iter().filter(|r| r.is_err()).count(),
        );
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqs_failure(code: &str, retryable: bool) -> EntryFailure {
        EntryFailure {
            code: code.into(),
            message: "said SQS".into(),
            retryable,
        }
    }

    #[test]
    fn an_entry_sqs_may_take_on_a_retry_is_unavailable_and_one_it_refuses_is_refused() {
        assert_eq!(
            not_enqueued(sqs_failure("RequestThrottled", true)),
            NotEnqueued::Unavailable("RequestThrottled: said SQS".into())
        );
        assert_eq!(
            not_enqueued(sqs_failure(
                "AWS.SimpleQueueService.NonExistentQueue",
                false
            )),
            NotEnqueued::Refused("AWS.SimpleQueueService.NonExistentQueue: said SQS".into())
        );
    }
}
