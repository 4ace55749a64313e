//! The port ingest enqueues through, and its SQS adapter.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use shared::message::CORRELATION_ID_ATTRIBUTE;
use shared::metrics::{self, names};
use shared::sqs_batch::{
    current_trace_header, send_all, trace_attribute, EntryFailure, OutgoingMessage,
};
use shared::ScoreMessage;

/// SendMessageBatch calls in flight at once for one batch request (500 entries = 50 calls).
pub const BATCH_SEND_CONCURRENCY: usize = 8;

#[async_trait]
pub trait ScoreQueue: Send + Sync {
    /// Returns only once the queue has acknowledged the message.
    async fn enqueue(&self, message: &ScoreMessage, correlation_id: &str) -> anyhow::Result<()>;

    /// Enqueues many messages; one result per message, in order. `Ok` only for messages the
    /// queue acknowledged. The default sends them one by one; [`SqsScoreQueue`] batches.
    async fn enqueue_batch(
        &self,
        messages: &[ScoreMessage],
        correlation_id: &str,
    ) -> Vec<Result<(), EntryFailure>> {
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(
                self.enqueue(message, correlation_id)
                    .await
                    .map_err(|e| EntryFailure {
                        code: "SendFailed".into(),
                        message: format!("{e:#}"),
                        retryable: true,
                    }),
            );
        }
        results
    }
}

pub struct SqsScoreQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

pub fn correlation_attribute(
    correlation_id: &str,
) -> anyhow::Result<HashMap<String, MessageAttributeValue>> {
    let value = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(correlation_id)
        .build()
        .context("building the correlation id attribute")?;
    Ok(HashMap::from([(
        CORRELATION_ID_ATTRIBUTE.to_owned(),
        value,
    )]))
}

#[async_trait]
impl ScoreQueue for SqsScoreQueue {
    async fn enqueue(&self, message: &ScoreMessage, correlation_id: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let sent = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.to_json())
            .set_message_attributes(Some(correlation_attribute(correlation_id)?))
            .set_message_system_attributes(
                current_trace_header().as_deref().and_then(trace_attribute),
            )
            .send()
            .await;
        metrics::observe(
            names::SQS_SEND_LATENCY,
            [metrics::millis(started.elapsed())],
        );
        if sent.is_err() {
            metrics::count(names::SQS_SEND_FAILURES, 1);
        }
        sent.map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .context("SendMessage")?;
        Ok(())
    }

    /// SendMessageBatch in groups of 10, [`BATCH_SEND_CONCURRENCY`] calls at a time.
    async fn enqueue_batch(
        &self,
        messages: &[ScoreMessage],
        correlation_id: &str,
    ) -> Vec<Result<(), EntryFailure>> {
        let trace = current_trace_header();
        let outgoing: Vec<OutgoingMessage> = messages
            .iter()
            .map(|m| {
                OutgoingMessage::new(m.to_json())
                    .with_attribute(CORRELATION_ID_ATTRIBUTE, correlation_id)
                    .with_trace_header(trace.clone())
            })
            .collect();
        let started = Instant::now();
        let results: Vec<Result<(), EntryFailure>> = send_all(
            &self.client,
            &self.queue_url,
            &outgoing,
            BATCH_SEND_CONCURRENCY,
        )
        .await
        .into_iter()
        .map(|r| r.map(|_| ()))
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
