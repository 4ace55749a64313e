//! Sending poison messages to the dead-letter queue with the reason they failed.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use shared::message::CORRELATION_ID_ATTRIBUTE;

/// Attribute names on dead-lettered messages; operators filter and count by them.
pub const REASON_ATTRIBUTE: &str = "failureReason";
pub const DETAIL_ATTRIBUTE: &str = "failureDetail";
pub const ORIGINAL_MESSAGE_ID_ATTRIBUTE: &str = "originalMessageId";
pub const FAILED_AT_ATTRIBUTE: &str = "failedAt";
/// Set by `worker dlq redrive` on what it sends back; kept when the message is dead-lettered
/// again, so that run recognises it and does not send it round forever.
pub const REDRIVE_RUN_ATTRIBUTE: &str = "redriveRunId";

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
                client.get_or_init(|| shared::aws::sqs_client(sdk))
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

fn string_attribute(value: &str) -> anyhow::Result<MessageAttributeValue> {
    Ok(MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()?)
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn send(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        let body = if letter.body.is_empty() {
            EMPTY_BODY_PLACEHOLDER
        } else {
            letter.body.as_str()
        };
        let mut attributes = HashMap::from([
            (
                REASON_ATTRIBUTE.to_owned(),
                string_attribute(letter.reason_code)?,
            ),
            (
                DETAIL_ATTRIBUTE.to_owned(),
                string_attribute(&sanitize(&letter.detail))?,
            ),
            (
                ORIGINAL_MESSAGE_ID_ATTRIBUTE.to_owned(),
                string_attribute(&sanitize(&letter.original_message_id))?,
            ),
            (
                FAILED_AT_ATTRIBUTE.to_owned(),
                string_attribute(&shared::domain::format_utc_millis(
                    time::OffsetDateTime::now_utc(),
                ))?,
            ),
        ]);
        if let Some(id) = letter.correlation_id.as_deref().filter(|id| !id.is_empty()) {
            attributes.insert(
                CORRELATION_ID_ATTRIBUTE.to_owned(),
                string_attribute(&sanitize(id))?,
            );
        }
        if let Some(run) = letter.redrive_run_id.as_deref().filter(|id| !id.is_empty()) {
            attributes.insert(
                REDRIVE_RUN_ATTRIBUTE.to_owned(),
                string_attribute(&sanitize(run))?,
            );
        }
        self.client()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(Some(attributes))
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

    #[test]
    fn replaces_the_two_noncharacters_sqs_refuses() {
        assert_eq!(sanitize("a\u{FFFE}b\u{FFFF}"), "a?b?");
    }
}
