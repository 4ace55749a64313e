//! The Lambda SQS handler: partial batch responses built from the failures only.
//!
//! The event source mapping must have `ReportBatchItemFailures` on; SQS then redelivers just
//! the listed message ids, and the redrive policy moves repeat offenders to the DLQ.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::processor::Processor;
use crate::record::{parse_sent_timestamp, InboundMessage};

/// Converts one Lambda SQS record; a record without an id cannot be reported back, so it is
/// processed like any other and its fate logged.
pub fn inbound_from_lambda(record: SqsMessage) -> InboundMessage {
    let attributes = record
        .message_attributes
        .iter()
        .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
        .collect();
    InboundMessage {
        message_id: record.message_id.unwrap_or_default(),
        sent_at: record
            .attributes
            .get("SentTimestamp")
            .and_then(|v| parse_sent_timestamp(v)),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        body: record.body,
        attributes,
    }
}

/// The time left in this invocation, less a margin for answering.
pub fn deadline_from(lambda_deadline: SystemTime, margin: Duration) -> Instant {
    let left = lambda_deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(margin);
    Instant::now() + left
}

pub async fn handle_sqs_event(
    processor: &Processor,
    margin: Duration,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = deadline_from(event.context.deadline(), margin);
    let messages: Vec<InboundMessage> = event
        .payload
        .records
        .into_iter()
        .map(inbound_from_lambda)
        .collect();
    let outcome = processor.process_batch(&messages, deadline).await;
    tracing::info!(
        records = messages.len(),
        written = outcome.written,
        dead_lettered = outcome.dead_lettered,
        failed = outcome.failed.len(),
        write_requests = outcome.write_requests,
        "batch processed"
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcome
        .failed
        .into_iter()
        .filter(|id| !id.is_empty())
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}
