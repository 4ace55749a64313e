//! One DLQ message: its failure reason, whether a retry can change it, what a redrive
//! carries over.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use contract::message::PoisonReason;
use time::OffsetDateTime;

use crate::dlq::{
    DETAIL_ATTRIBUTE, FAILED_AT_ATTRIBUTE, ORIGINAL_MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE,
    REDRIVE_RUN_ATTRIBUTE,
};
use crate::record::{parse_sent_timestamp, MessageAttribute};

/// Failure reason shown for messages SQS moved here by the redrive policy (they carry no
/// failureReason: the worker kept failing to write them until maxReceiveCount).
pub const EXHAUSTED_RETRIES: &str = "exhausted_retries";

/// True for a reason a retry cannot change ([`PoisonReason`]): the body itself is broken, so
/// sending it back only brings it back. Redrive leaves these in the DLQ unless
/// `--include-poison` is given. (A `contract_violation` may be one that a fixed producer clock
/// or a widened rule would now accept: that is what `--include-poison` is for.)
pub fn is_poison(reason: &str) -> bool {
    PoisonReason::from_code(reason).is_some()
}

/// One message read from the DLQ and held invisible until released or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// Message attributes with their data types: ours (failureReason, failureDetail, ...)
    /// and the producer's.
    pub attributes: HashMap<String, MessageAttribute>,
    /// When the message entered the DLQ (for messages the redrive policy moved, when it was
    /// first sent).
    pub sent_at: Option<OffsetDateTime>,
}

impl DlqMessage {
    pub(super) fn from_sqs(message: Message) -> Option<Self> {
        let sent_at = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|v| parse_sent_timestamp(v));
        let attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| MessageAttribute::from_sqs(&v).map(|a| (k, a)))
            .collect();
        Some(Self {
            message_id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            attributes,
            sent_at,
        })
    }

    pub fn reason(&self) -> &str {
        reason_of(&self.attributes)
    }

    /// The text of a String or Number attribute.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(MessageAttribute::as_str)
    }

    /// The message as `peek` prints it: one JSON object per line.
    pub fn to_json_line(&self) -> String {
        let attr = |name: &str| self.text(name).map(str::to_owned);
        serde_json::json!({
            "messageId": self.message_id,
            "failureReason": self.reason(),
            "failureDetail": attr(DETAIL_ATTRIBUTE),
            "failedAt": attr(FAILED_AT_ATTRIBUTE),
            "originalMessageId": attr(ORIGINAL_MESSAGE_ID_ATTRIBUTE),
            "correlationId": attr(contract::message::CORRELATION_ID_ATTRIBUTE),
            "sentAt": self.sent_at.map(contract::rfc3339::format_utc_millis),
            "body": self.body,
        })
        .to_string()
    }
}

/// The failure reason of a dead-lettered message; [`EXHAUSTED_RETRIES`] when it has none.
pub fn reason_of(attributes: &HashMap<String, MessageAttribute>) -> &str {
    attributes
        .get(REASON_ATTRIBUTE)
        .and_then(MessageAttribute::as_str)
        .unwrap_or(EXHAUSTED_RETRIES)
}

/// The attributes a redriven message keeps: the producer's, with their data types, and the
/// correlation id; not what the DLQ added (why and when it failed), so a message that fails
/// again is described afresh, nor an earlier run's `redriveRunId`.
pub fn carried_attributes(
    attributes: &HashMap<String, MessageAttribute>,
) -> HashMap<String, MessageAttribute> {
    const DROPPED: [&str; 5] = [
        REASON_ATTRIBUTE,
        DETAIL_ATTRIBUTE,
        FAILED_AT_ATTRIBUTE,
        ORIGINAL_MESSAGE_ID_ATTRIBUTE,
        REDRIVE_RUN_ATTRIBUTE,
    ];
    attributes
        .iter()
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()) && !k.starts_with("failure"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    pub(in crate::dlq_tools) fn message(
        id: &str,
        reason: Option<&str>,
        sent_at: OffsetDateTime,
    ) -> DlqMessage {
        let mut attributes = HashMap::new();
        if let Some(r) = reason {
            attributes.insert(REASON_ATTRIBUTE.to_owned(), MessageAttribute::string(r));
        }
        DlqMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{}".into(),
            attributes,
            sent_at: Some(sent_at),
        }
    }
    #[test]
    fn knows_which_reasons_a_retry_cannot_change() {
        for reason in PoisonReason::ALL {
            assert!(is_poison(reason.code()));
        }
        assert!(!is_poison(EXHAUSTED_RETRIES));
    }
    #[test]
    fn drops_the_failure_attributes_on_redrive_and_keeps_the_rest() {
        let attributes: HashMap<String, MessageAttribute> = [
            (REASON_ATTRIBUTE, "contract_violation"),
            (DETAIL_ATTRIBUTE, "score: too high"),
            (FAILED_AT_ATTRIBUTE, "2026-11-28T10:00:00.000Z"),
            (ORIGINAL_MESSAGE_ID_ATTRIBUTE, "m-1"),
            ("correlationId", "corr-1"),
            ("tenant", "acme"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), MessageAttribute::string(v)))
        .collect();
        let carried = carried_attributes(&attributes);
        let mut keys: Vec<&str> = carried.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlationId", "tenant"]);
        let mut tagged = attributes;
        tagged.insert(
            REDRIVE_RUN_ATTRIBUTE.to_owned(),
            MessageAttribute::string("an-earlier-run"),
        );
        assert!(!carried_attributes(&tagged).contains_key(REDRIVE_RUN_ATTRIBUTE));
    }
    #[test]
    fn peek_lines_are_json_with_the_reason() {
        let line = message("a", None, datetime!(2026-11-28 10:00 UTC)).to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["failureReason"], EXHAUSTED_RETRIES);
        assert_eq!(v["messageId"], "a");
    }
}
