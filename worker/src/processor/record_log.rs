//! The per-record log line: one line per record, so an operator finds any report's fate by
//! its id, its message id or its correlation id.

use std::fmt::Display;

use contract::message::CORRELATION_ID_ATTRIBUTE;
use tracing::Level;

use crate::record::{InboundMessage, MessageAttribute};

/// The correlation id a record is logged and dead-lettered with: the producer's, else the
/// message id (batch producers need not set one).
pub(super) fn correlation_of(message: &InboundMessage) -> &str {
    message
        .attributes
        .get(CORRELATION_ID_ATTRIBUTE)
        .and_then(MessageAttribute::as_str)
        .unwrap_or(message.message_id.as_str())
}

/// What became of one record.
pub(super) enum RecordOutcome<'a> {
    /// Written (with every message sharing its key).
    Written { report_id: &'a str },
    /// Not written by the deadline: SQS delivers it again.
    Unprocessed { report_id: &'a str },
    /// Failed in a way a retry may fix: SQS delivers it again.
    Retry { error: &'a dyn Display },
    /// Poison, now in the DLQ.
    DeadLettered {
        reason: &'static str,
        detail: &'a dyn Display,
    },
    /// Poison the DLQ did not take: it stays on the queue and SQS delivers it again.
    NotDeadLettered {
        reason: &'static str,
        error: &'a dyn Display,
    },
}

/// The parts of a record's line that depend on its outcome.
struct Fields<'a> {
    level: Level,
    outcome: &'static str,
    report_id: Option<&'a str>,
    reason: Option<&'static str>,
    detail: Option<&'a dyn Display>,
    error: Option<&'a dyn Display>,
    /// Whether the line names the message's X-Ray trace (the retry lines never have).
    trace_header: bool,
}

impl<'a> RecordOutcome<'a> {
    fn fields(self) -> Fields<'a> {
        let none = Fields {
            level: Level::INFO,
            outcome: "",
            report_id: None,
            reason: None,
            detail: None,
            error: None,
            trace_header: false,
        };
        match self {
            Self::Written { report_id } => Fields {
                outcome: "written",
                report_id: Some(report_id),
                trace_header: true,
                ..none
            },
            Self::Unprocessed { report_id } => Fields {
                outcome: "unprocessed",
                report_id: Some(report_id),
                trace_header: true,
                ..none
            },
            Self::Retry { error } => Fields {
                level: Level::WARN,
                outcome: "retry",
                error: Some(error),
                ..none
            },
            Self::DeadLettered { reason, detail } => Fields {
                level: Level::WARN,
                outcome: "dead-lettered",
                reason: Some(reason),
                detail: Some(detail),
                trace_header: true,
                ..none
            },
            Self::NotDeadLettered { reason, error } => Fields {
                level: Level::ERROR,
                outcome: "retry",
                reason: Some(reason),
                error: Some(error),
                ..none
            },
        }
    }
}

/// Logs the record's `record outcome` line: info when written or unprocessed, warn when
/// retried or dead-lettered, error when the DLQ refused it.
pub(super) fn log_record(message: &InboundMessage, outcome: RecordOutcome<'_>) {
    let fields = outcome.fields();
    let trace_header = message
        .trace_header
        .as_deref()
        .filter(|_| fields.trace_header);
    // An event's level is part of its static callsite: one event per level, same fields.
    macro_rules! record_outcome {
        ($level:expr) => {
            tracing::event!(
                $level,
                outcome = fields.outcome,
                messageId = %message.message_id,
                reportId = fields.report_id,
                correlationId = correlation_of(message),
                receiveCount = message.receive_count,
                awsTraceHeader = trace_header,
                reason = fields.reason,
                detail = fields.detail.map(display),
                error = fields.error.map(display),
                "record outcome"
            )
        };
    }
    match fields.level {
        Level::ERROR => record_outcome!(Level::ERROR),
        Level::WARN => record_outcome!(Level::WARN),
        _ => record_outcome!(Level::INFO),
    }
}
