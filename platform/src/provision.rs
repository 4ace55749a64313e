//! Creating the queue, its dead-letter queue and the table when they are missing.
//!
//! Used by `worker provision` (and so `localstack/provision.sh`) and by the integration tests,
//! so every environment gets exactly the same shape. Safe to run twice.

use std::time::Duration;

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::item::{INDEX_BY_BUREAU_REPORTED_AT, INDEX_BY_REPORTED_AT, LSI1_SK, LSI2_SK, PK, SK};

/// Fourteen days: the longest SQS keeps a message, so operators have time to look.
pub const DLQ_RETENTION_SECONDS: u32 = 1_209_600;

#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    pub queue_name: String,
    pub dlq_name: String,
    pub table_name: String,
    pub max_receive_count: u32,
    pub visibility_timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub queue_url: String,
    pub dlq_url: String,
    pub table_name: String,
}

pub async fn provision(
    sqs: &aws_sdk_sqs::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    request: &ProvisionRequest,
) -> anyhow::Result<Provisioned> {
    let dlq_url = ensure_queue(
        sqs,
        &request.dlq_name,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECONDS.to_string(),
        )],
    )
    .await?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": request.max_receive_count.to_string(),
    })
    .to_string();
    let queue_url = ensure_queue(
        sqs,
        &request.queue_name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive),
            (
                QueueAttributeName::VisibilityTimeout,
                request.visibility_timeout_seconds.to_string(),
            ),
        ],
    )
    .await?;
    ensure_table(dynamodb, &request.table_name).await?;
    Ok(Provisioned {
        queue_url,
        dlq_url,
        table_name: request.table_name.clone(),
    })
}

/// Creates the queue, or brings an existing one's attributes in line.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<String> {
    if let Ok(existing) = sqs.get_queue_url().queue_name(name).send().await {
        if let Some(url) = existing.queue_url {
            let mut set = sqs.set_queue_attributes().queue_url(&url);
            for (k, v) in attributes {
                set = set.attributes(k.clone(), v.clone());
            }
            set.send()
                .await
                .with_context(|| format!("updating attributes of queue {name}"))?;
            return Ok(url);
        }
    }
    let mut create = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v.clone());
    }
    let out = create
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?;
    out.queue_url
        .with_context(|| format!("creating queue {name} returned no URL"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the ARN of {url}"))?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("queue {url} has no ARN"))
}

fn key(name: &str, key_type: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()?)
}

fn string_attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn lsi(name: &str, sort_key: &str) -> anyhow::Result<LocalSecondaryIndex> {
    Ok(LocalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(sort_key, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()?)
}

/// Creates the table with the keys and indexes of [`crate::item`] and waits until it is active.
pub async fn ensure_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let exists = match dynamodb.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(e).with_context(|| format!("describing table {name}")),
    };
    if !exists {
        dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(PK)?)
            .attribute_definitions(string_attribute(SK)?)
            .attribute_definitions(string_attribute(LSI1_SK)?)
            .attribute_definitions(string_attribute(LSI2_SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .local_secondary_indexes(lsi(INDEX_BY_REPORTED_AT, LSI1_SK)?)
            .local_secondary_indexes(lsi(INDEX_BY_BUREAU_REPORTED_AT, LSI2_SK)?)
            .send()
            .await
            .with_context(|| format!("creating table {name}"))?;
    }
    for _ in 0..120 {
        let out = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .with_context(|| format!("describing table {name}"))?;
        if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("table {name} did not become ACTIVE within 60 s")
}
