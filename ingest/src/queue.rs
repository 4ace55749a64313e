//! The port ingest enqueues through, and its SQS adapter.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use shared::message::CORRELATION_ID_ATTRIBUTE;
use shared::ScoreMessage;

#[async_trait]
pub trait ScoreQueue: Send + Sync {
    /// Returns only once the queue has acknowledged the message.
    async fn enqueue(&self, message: &ScoreMessage, correlation_id: &str) -> anyhow::Result<()>;
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
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.to_json())
            .set_message_attributes(Some(correlation_attribute(correlation_id)?))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .context("SendMessage")?;
        Ok(())
    }
}
