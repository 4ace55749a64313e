//! The CPU-only steps of a batch: decode, validate, set poison aside, deduplicate.

use platform::telemetry::ErrorChain;
use time::OffsetDateTime;

use super::dead_letter::dead_letter;
use super::dedupe::{dedupe, KeyGroup};
use super::record_log::{log_record, RecordOutcome};
use crate::dlq::DeadLetter;
use crate::record::{process_record, InboundMessage, RecordError};

/// A batch after the CPU-only steps: decoded, validated, poison set aside, deduplicated.
pub struct PreparedBatch {
    pub groups: Vec<KeyGroup>,
    /// Each with the message's position in the batch.
    pub poison: Vec<(usize, DeadLetter)>,
    /// Ids of records that failed in a way a retry may fix.
    pub retry: Vec<String>,
    pub deduplicated: usize,
}

/// Decodes, validates and deduplicates a batch: everything but I/O.
pub fn prepare_batch(messages: &[InboundMessage], now: OffsetDateTime) -> PreparedBatch {
    let mut valid = Vec::with_capacity(messages.len());
    let mut poison = Vec::new();
    let mut retry = Vec::new();
    for (position, message) in messages.iter().enumerate() {
        match process_record(message, now) {
            Ok(report) => valid.push((position, report)),
            Err(RecordError::Permanent(reason)) => {
                poison.push((position, dead_letter(message, &reason)));
            }
            Err(e @ RecordError::Retryable(_)) => {
                log_record(
                    message,
                    RecordOutcome::Retry {
                        error: &ErrorChain(&e),
                    },
                );
                retry.push(message.message_id.clone());
            }
        }
    }
    let valid_count = valid.len();
    let groups = dedupe(valid);
    PreparedBatch {
        deduplicated: valid_count - groups.len(),
        groups,
        poison,
        retry,
    }
}
