//! Sending poison messages to the dead-letter queue with the reason they failed.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use contract::message::CORRELATION_ID_ATTRIBUTE;

use crate::record::MessageAttribute;

/// Attribute names on dead-lettered messages; operators filter and count by them.
pub const REASON_ATTRIBUTE: &str = "failureReason";
pub const DETAIL_ATTRIBUTE: &str = "failureDetail";
pub const ORIGINAL_MESSAGE_ID_ATTRIBUTE: &str = "originalMessageId";
pub const FAILED_AT_ATTRIBUTE: &str = "failedAt";
/// Set by `worker dlq redrive` on what it sends back; kept when the message is dead-lettered
/// again, so that run recognises it and does not send it round forever.
pub const REDRIVE_RUN_ATTRIBUTE: &str = "redriveRunId";

/// SQS takes at most this many message attributes on one message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The most bytes (body, attribute names, data types and values) a DLQ copy is given: SQS's
/// historical message size limit (AWS allows 1 MiB since 2025; emulators and older endpoints
/// do not).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SQS rejects an empty body; a message that had none is kept visible as such.
const EMPTY_BODY_PLACEHOLDER: &str = "<empty body>";
const MAX_DETAIL_CHARS: usize = 1024;

/// A message that can never succeed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub original_message_id: String,
    pub body: String,
    pub reason_code: &'static str,
    pub detail: String,
    pub correlation_id: Option<String>,
    /// The `redriveRunId` the message arrived with, if a redrive sent it.
    pub redrive_run_id: Option<String>,
    /// The message attributes the producer sent, kept on the DLQ copy as far as SQS's limit
    /// of [`MAX_MESSAGE_ATTRIBUTES`] allows (see [`fit_attributes`]).
    pub attributes: HashMap<String, MessageAttribute>,
}

/// What a message sent on by the worker or the DLQ tools carries: `own` (always kept, in the
/// order given) and then as many of `carried` as fit in [`MAX_MESSAGE_ATTRIBUTES`] and, with
/// `body_bytes`, in [`MAX_MESSAGE_BYTES`]. `carried` attributes named like one of `own` are
/// replaced by it; the rest are taken in order of name (byte order: `Z` before `a`) and those
/// at the end of that order are left out. Returns the attributes and the names left out.
pub fn fit_attributes(
    own: Vec<(String, MessageAttribute)>,
    carried: &HashMap<String, MessageAttribute>,
    body_bytes: usize,
) -> (Vec<(String, MessageAttribute)>, Vec<String>) {
    let mut names: Vec<&String> = carried
        .keys()
        .filter(|name| !own.iter().any(|(ours, _)| ours == *name))
        .collect();
    names.sort_unstable();
    let mut bytes = body_bytes
        + own
            .iter()
            .map(|(name, attribute)| attribute.size(name))
            .sum::<usize>();
    let mut kept = own;
    let mut left_out = Vec::new();
    for name in names {
        let attribute = &carried[name];
        let size = attribute.size(name);
        if kept.len() < MAX_MESSAGE_ATTRIBUTES && bytes + size <= MAX_MESSAGE_BYTES {
            bytes += size;
            kept.push((name.clone(), attribute.clone()));
        } else {
            left_out.push(name.clone());
        }
    }
    (kept, left_out)
}

#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Sends one message to the DLQ; only an acknowledged send counts as done.
    async fn send(&self, letter: &DeadLetter) -> anyhow::Result<()>;
}

/// [`DeadLetterQueue`] on an SQS queue.
pub struct SqsDeadLetterQueue {
    client: DlqClient,
    pub queue_url: String,
}

/// Most batches hold no poison, so the production client is built on the first send:
/// building an SDK client loads and parses the TLS root certificates, which start-up (Lambda
/// init) should not pay for a client most invocations never use.
enum DlqClient {
    Ready(aws_sdk_sqs::Client),
    OnFirstUse {
        // Boxed: an SdkConfig is large beside a client handle.
        sdk: Box<aws_config::SdkConfig>,
        client: std::sync::OnceLock<aws_sdk_sqs::Client>,
    },
}

impl SqsDeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self {
            client: DlqClient::Ready(client),
            queue_url,
        }
    }

    /// Builds its client from `sdk` when the first poison message needs it.
    pub fn on_first_use(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: DlqClient::OnFirstUse {
                sdk: Box::new(sdk.clone()),
                client: std::sync::OnceLock::new(),
            },
            queue_url,
        }
    }

    fn client(&self) -> &aws_sdk_sqs::Client {
        match &self.client {
            DlqClient::Ready(client) => client,
            DlqClient::OnFirstUse { sdk, client } => {
                client.get_or_init(|| platform::aws::sqs_client(sdk))
            }
        }
    }
}

/// SQS accepts only some characters in attribute values (#x9, #xA, #xD, #x20-#xD7FF,
/// #xE000-#xFFFD, #x10000-#x10FFFF); details may quote field names from the bad message
/// (a JSON key `"\uffff"` decodes to one SQS refuses), so anything unusual is replaced.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| {
            if (c.is_control() && c != '\n') || matches!(c, '\u{FFFE}' | '\u{FFFF}') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

impl DeadLetter {
    /// The DLQ copy's attributes: ours first (why and when it failed, its original id, the
    /// correlation id, the redrive run), then the producer's as [`fit_attributes`] allows.
    /// Returns them with the names of the producer's attributes left out.
    pub fn dlq_attributes(
        &self,
        failed_at: time::OffsetDateTime,
    ) -> (Vec<(String, MessageAttribute)>, Vec<String>) {
        let mut own = vec![
            (
                REASON_ATTRIBUTE.to_owned(),
                MessageAttribute::string(self.reason_code),
            ),
            (
                DETAIL_ATTRIBUTE.to_owned(),
                MessageAttribute::string(sanitize(&self.detail)),
            ),
            (
                ORIGINAL_MESSAGE_ID_ATTRIBUTE.to_owned(),
                MessageAttribute::string(sanitize(&self.original_message_id)),
            ),
            (
                FAILED_AT_ATTRIBUTE.to_owned(),
                MessageAttribute::string(contract::rfc3339::format_utc_millis(failed_at)),
            ),
        ];
        if let Some(id) = self.correlation_id.as_deref().filter(|id| !id.is_empty()) {
            own.push((
                CORRELATION_ID_ATTRIBUTE.to_owned(),
                MessageAttribute::string(sanitize(id)),
            ));
        }
        if let Some(run) = self.redrive_run_id.as_deref().filter(|id| !id.is_empty()) {
            own.push((
                REDRIVE_RUN_ATTRIBUTE.to_owned(),
                MessageAttribute::string(sanitize(run)),
            ));
        }
        fit_attributes(own, &self.attributes, self.body().len())
    }

    /// The body the DLQ copy carries (SQS refuses an empty one).
    fn body(&self) -> &str {
        if self.body.is_empty() {
            EMPTY_BODY_PLACEHOLDER
        } else {
            &self.body
        }
    }
}

/// Attributes as SQS takes them on a send.
pub fn to_sqs_attributes(
    attributes: Vec<(String, MessageAttribute)>,
) -> anyhow::Result<HashMap<String, MessageAttributeValue>> {
    attributes
        .into_iter()
        .map(|(name, attribute)| {
            let value = attribute
                .to_sqs()
                .with_context(|| format!("message attribute {name}"))?;
            Ok((name, value))
        })
        .collect()
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn send(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        let (attributes, left_out) = letter.dlq_attributes(time::OffsetDateTime::now_utc());
        if !left_out.is_empty() {
            tracing::warn!(
                originalMessageId = %letter.original_message_id,
                leftOut = left_out.len(),
                attributes = ?left_out,
                "producer message attributes left off the DLQ copy: over SQS's limit of 10 attributes (or 256 KiB) per message"
            );
        }
        self.client()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter.body())
            .set_message_attributes(Some(to_sqs_attributes(attributes)?))
            .send()
            .await
            .context("sending a poison message to the DLQ")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_control_characters_and_bounds_length() {
        assert_eq!(sanitize("bad\u{0}field"), "bad?field");
        assert_eq!(sanitize(&"x".repeat(5000)).len(), MAX_DETAIL_CHARS);
    }

    fn sqs_accepts(c: char) -> bool {
        matches!(u32::from(c), 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
    }

    proptest::proptest! {
        /// Found by property testing: U+FFFE and U+FFFF passed through, and SQS refuses them,
        /// so the poison message could never reach the DLQ with its reason.
        #[test]
        fn sanitized_text_is_always_acceptable_to_sqs(text in "\\PC*|.*|[\u{0}-\u{20}\u{7f}-\u{a0}\u{fffe}\u{ffff}]*") {
            let clean = sanitize(&text);
            proptest::prop_assert!(clean.chars().all(sqs_accepts), "{:?}", clean);
            proptest::prop_assert!(clean.chars().count() <= MAX_DETAIL_CHARS);
            proptest::prop_assert_eq!(clean.chars().count(), text.chars().count().min(MAX_DETAIL_CHARS));
        }
    }

    fn letter(attributes: Vec<(&str, MessageAttribute)>) -> DeadLetter {
        DeadLetter {
            original_message_id: "m-1".into(),
            body: "{".into(),
            reason_code: "invalid_json",
            detail: "not JSON".into(),
            correlation_id: Some("corr-1".into()),
            redrive_run_id: None,
            attributes: attributes
                .into_iter()
                .map(|(name, a)| (name.to_owned(), a))
                .collect(),
        }
    }

    fn names(attributes: &[(String, MessageAttribute)]) -> Vec<&str> {
        attributes.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn ours_come_first_and_the_producers_fill_the_ten_slots_in_order_of_name() {
        let mut producers = vec![("correlationId", MessageAttribute::string("corr-1"))];
        for name in [
            "theta", "Zone", "alpha", "iota", "Beta", "eta", "delta", "gamma", "epsilon",
        ] {
            producers.push((name, MessageAttribute::string(name)));
        }
        let (kept, left_out) = letter(producers).dlq_attributes(time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            names(&kept),
            [
                REASON_ATTRIBUTE,
                DETAIL_ATTRIBUTE,
                ORIGINAL_MESSAGE_ID_ATTRIBUTE,
                FAILED_AT_ATTRIBUTE,
                CORRELATION_ID_ATTRIBUTE,
                "Beta",
                "Zone",
                "alpha",
                "delta",
                "epsilon"
            ]
        );
        assert_eq!(left_out, ["eta", "gamma", "iota", "theta"]);
    }

    #[test]
    fn a_producer_attribute_named_like_ours_gives_way_to_ours() {
        let (kept, left_out) = letter(vec![
            (REASON_ATTRIBUTE, MessageAttribute::string("made up")),
            ("tenant", MessageAttribute::string("acme")),
        ])
        .dlq_attributes(time::OffsetDateTime::UNIX_EPOCH);
        assert!(left_out.is_empty());
        assert_eq!(kept.len(), 6);
        assert_eq!(kept[0].1, MessageAttribute::string("invalid_json"));
        assert_eq!(
            kept[5],
            ("tenant".to_owned(), MessageAttribute::string("acme"))
        );
    }

    #[test]
    fn number_and_binary_attributes_keep_their_data_types() {
        let number = MessageAttribute {
            data_type: "Number.int".into(),
            value: crate::record::AttributeValue::Text("42".into()),
        };
        let binary = MessageAttribute {
            data_type: "Binary".into(),
            value: crate::record::AttributeValue::Binary(vec![0, 255]),
        };
        let (kept, _) = letter(vec![("line", number), ("sig", binary)])
            .dlq_attributes(time::OffsetDateTime::UNIX_EPOCH);
        let sqs = to_sqs_attributes(kept).unwrap();
        assert_eq!(sqs["line"].data_type(), "Number.int");
        assert_eq!(sqs["line"].string_value(), Some("42"));
        assert_eq!(sqs["sig"].data_type(), "Binary");
        assert_eq!(
            sqs["sig"].binary_value().map(|b| b.as_ref()),
            Some(&[0u8, 255][..])
        );
    }

    #[test]
    fn producer_attributes_that_would_pass_the_size_limit_are_left_out() {
        let mut big = letter(vec![
            ("a-small", MessageAttribute::string("x")),
            ("b-large", MessageAttribute::string("y".repeat(2048))),
        ]);
        big.body = "z".repeat(MAX_MESSAGE_BYTES - 1024);
        let (kept, left_out) = big.dlq_attributes(time::OffsetDateTime::UNIX_EPOCH);
        assert!(names(&kept).contains(&"a-small"));
        assert_eq!(left_out, ["b-large"]);
    }

    #[test]
    fn replaces_the_two_noncharacters_sqs_refuses() {
        assert_eq!(sanitize("a\u{FFFE}b\u{FFFF}"), "a?b?");
    }
}
