//! The DLQ fan-out: poison sent to the DLQ a few at a time; what the DLQ does not take stays
//! on the queue.

use futures::stream::{self, StreamExt};

use super::record_log::{correlation_of, log_record, RecordOutcome};
use crate::dlq::{DeadLetter, DeadLetterQueue, REDRIVE_RUN_ATTRIBUTE};
use crate::record::{InboundMessage, MessageAttribute};

/// Sends poison messages to the DLQ, `concurrency` at a time; returns how many went by
/// reason, and the ids of those that could not be sent (they stay on the queue: never
/// dropped).
pub(super) async fn dead_letter_all(
    dlq: &dyn DeadLetterQueue,
    concurrency: usize,
    messages: &[InboundMessage],
    letters: Vec<(usize, DeadLetter)>,
) -> (Vec<(&'static str, usize)>, Vec<String>) {
    let results = stream::iter(letters)
        .map(|(position, letter)| async move {
            let sent = dlq.send(&letter).await;
            (position, letter, sent)
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut sent: Vec<(&'static str, usize)> = Vec::new();
    let mut failed = Vec::new();
    for (position, letter, result) in results {
        let message = &messages[position];
        match result {
            Ok(()) => {
                log_record(
                    message,
                    RecordOutcome::DeadLettered {
                        reason: letter.reason_code,
                        detail: &letter.detail,
                    },
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
                log_record(
                    message,
                    RecordOutcome::NotDeadLettered {
                        reason: letter.reason_code,
                        error: &format!("{e:#}"),
                    },
                );
                failed.push(letter.original_message_id);
            }
        }
    }
    (sent, failed)
}

/// The DLQ message for a record refused for `reason`.
pub(super) fn dead_letter(
    message: &InboundMessage,
    reason: &contract::message::MessageError,
) -> DeadLetter {
    DeadLetter {
        original_message_id: message.message_id.clone(),
        body: message.body.clone().unwrap_or_default(),
        reason_code: reason.reason_code(),
        detail: reason.to_string(),
        correlation_id: Some(correlation_of(message).to_owned()),
        redrive_run_id: message
            .attributes
            .get(REDRIVE_RUN_ATTRIBUTE)
            .and_then(MessageAttribute::as_str)
            .map(str::to_owned),
        // All of them: the DLQ keeps what fits beside its own (`DeadLetter::dlq_attributes`).
        attributes: message.attributes.clone(),
    }
}
