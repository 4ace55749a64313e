//! One SQS message, decoded on its own: a bad record never fails its batch.

use std::collections::HashMap;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::MessageAttributeValue;
use contract::message::MessageError;
use contract::report::StoredReport;
use contract::ScoreMessage;
use time::OffsetDateTime;

/// An SQS message as the worker sees it, whether it came in a Lambda event or from polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub message_id: String,
    pub body: Option<String>,
    /// When SQS accepted the message; stands in for `receivedAt` when a producer left it out.
    pub sent_at: Option<OffsetDateTime>,
    /// How often SQS has handed this message out, this time included.
    pub receive_count: u32,
    /// The producer's message attributes, with their data types (the correlation id travels
    /// here); kept on the message's DLQ copy.
    pub attributes: HashMap<String, MessageAttribute>,
    /// SQS's `AWSTraceHeader` system attribute: the X-Ray trace of the sender.
    pub trace_header: Option<String>,
}

/// One message attribute as SQS carries it: its data type (`String`, `Number`, `Binary`, or
/// one of those with a custom suffix such as `Number.int`) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    pub data_type: String,
    pub value: AttributeValue,
}

/// String and Number attributes carry text; Binary ones bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Text(String),
    Binary(Vec<u8>),
}

impl MessageAttribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".to_owned(),
            value: AttributeValue::Text(value.into()),
        }
    }

    /// The text of a String or Number attribute; `None` for a Binary one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            AttributeValue::Text(text) => Some(text),
            AttributeValue::Binary(_) => None,
        }
    }

    /// Bytes SQS counts against the message size: name, data type and value.
    pub fn size(&self, name: &str) -> usize {
        let value = match &self.value {
            AttributeValue::Text(text) => text.len(),
            AttributeValue::Binary(bytes) => bytes.len(),
        };
        name.len() + self.data_type.len() + value
    }

    /// From a received message. `None` for a value of neither kind (SQS's reserved list
    /// types), which the worker cannot carry on.
    pub fn from_sqs(value: &MessageAttributeValue) -> Option<Self> {
        let binary = value.data_type.starts_with("Binary");
        let value_of = if binary {
            value
                .binary_value
                .as_ref()
                .map(|blob| AttributeValue::Binary(blob.as_ref().to_vec()))
        } else {
            value.string_value.clone().map(AttributeValue::Text)
        };
        Some(Self {
            data_type: value.data_type.clone(),
            value: value_of?,
        })
    }

    /// As SQS takes it on a send, with its data type.
    pub fn to_sqs(&self) -> Result<MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
        let builder = MessageAttributeValue::builder().data_type(&self.data_type);
        let builder = match &self.value {
            AttributeValue::Text(text) => builder.string_value(text),
            AttributeValue::Binary(bytes) => builder.binary_value(Blob::new(bytes.clone())),
        };
        builder.build()
    }
}

/// Why a record did not make it, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The message itself is wrong; it goes to the DLQ with this reason.
    #[error(transparent)]
    Permanent(#[from] MessageError),
    /// The message is fine but could not be written yet; SQS redelivers it.
    #[error("not written yet: {0}")]
    Retryable(String),
}

impl RecordError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// Decodes and validates one message into the report to store. Pure: no I/O.
pub fn process_record(
    message: &InboundMessage,
    now: OffsetDateTime,
) -> Result<StoredReport, RecordError> {
    let body = message.body.as_deref().unwrap_or_default();
    let parsed = ScoreMessage::parse(body, now)?;
    Ok(StoredReport {
        received_at: parsed.received_at.or(message.sent_at).unwrap_or(now),
        source: parsed.source.to_string(),
        report: parsed.report,
    })
}

/// Parses SQS's `SentTimestamp` attribute (epoch milliseconds).
pub fn parse_sent_timestamp(value: &str) -> Option<OffsetDateTime> {
    let millis: i128 = value.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(millis.checked_mul(1_000_000)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    fn message(body: &str) -> InboundMessage {
        InboundMessage {
            trace_header: None,
            message_id: "m-1".into(),
            body: Some(body.into()),
            sent_at: parse_sent_timestamp("1764320000000"),
            receive_count: 1,
            attributes: HashMap::new(),
        }
    }

    #[test]
    fn falls_back_to_the_sqs_sent_timestamp_when_received_at_is_absent() {
        let body = r#"{"version":1,"reportId":"r1","userId":"u1","bureau":"equifax","score":700,
            "reportedAt":"2026-11-28T09:00:00Z","source":"batch:nightly"}"#;
        let stored = process_record(&message(body), NOW).unwrap();
        assert_eq!(
            Some(stored.received_at),
            parse_sent_timestamp("1764320000000")
        );
        assert_eq!(stored.source, "batch:nightly");
    }

    #[test]
    fn malformed_bodies_are_permanent_failures() {
        for body in ["", "{", "[]", r#"{"version":9}"#, r#"{"version":1}"#] {
            let err = process_record(&message(body), NOW).unwrap_err();
            assert!(!err.is_retryable(), "{body}: {err}");
        }
    }

    #[test]
    fn a_missing_body_is_a_permanent_failure_not_a_panic() {
        let mut m = message("");
        m.body = None;
        assert!(matches!(
            process_record(&m, NOW),
            Err(RecordError::Permanent(_))
        ));
    }

    #[test]
    fn sent_timestamp_parsing_rejects_garbage() {
        assert_eq!(parse_sent_timestamp("soon"), None);
        assert_eq!(parse_sent_timestamp("99999999999999999999999999999"), None);
    }
}
