//! The port the worker writes through, and its DynamoDB adapter.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use shared::item::{StoredReport, ORDER_KEY, PK, SK};

/// The most items one BatchWriteItem request may carry.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// Writing failed in a way that may pass on a later attempt. Every store failure is treated
/// as retryable: items come only from validated values, and anything that keeps failing ends
/// in the DLQ through the queue's redrive policy rather than being dropped.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("throttled by DynamoDB ({0})")]
    Throttled(String),
    #[error("DynamoDB call timed out")]
    TimedOut,
    #[error("DynamoDB call failed")]
    Failed(#[source] anyhow::Error),
}

/// What became of a forward-only update of the latest item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestOutcome {
    Advanced,
    /// A report at least as new is already the latest; nothing changed.
    AlreadyNewer,
}

#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Writes up to 25 reports with distinct keys in one request. Returns the positions (in
    /// `reports`) of those the store did not process (`UnprocessedItems`).
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError>;

    /// Makes `report` the latest for its user and bureau unless a newer one is there.
    async fn advance_latest(&self, report: &StoredReport) -> Result<LatestOutcome, StoreError>;
}

/// [`ScoreStore`] on a DynamoDB table.
pub struct DynamoScoreStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    if code.contains("Throughput") || code.contains("Throttl") || code == "RequestLimitExceeded" {
        return StoreError::Throttled(code);
    }
    if let SdkError::TimeoutError(_) = err {
        return StoreError::TimedOut;
    }
    StoreError::Failed(anyhow::Error::new(err))
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
            Some((pk.clone(), sk.clone()))
        }
        _ => None,
    }
}

#[async_trait]
impl ScoreStore for DynamoScoreStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        let mut positions = HashMap::with_capacity(reports.len());
        let mut requests = Vec::with_capacity(reports.len());
        for (i, report) in reports.iter().enumerate() {
            let item = report.report_item();
            if let Some(k) = key_of(&item) {
                positions.insert(k, i);
            }
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Failed(e.into()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let out = self
            .client
            .batch_write_item()
            .request_items(&self.table_name, requests)
            .send()
            .await
            .map_err(classify)?;
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut u| u.remove(&self.table_name))
            .unwrap_or_default();
        let mut left = Vec::with_capacity(unprocessed.len());
        for request in unprocessed {
            let position = request
                .put_request
                .as_ref()
                .and_then(|p| key_of(&p.item))
                .and_then(|k| positions.get(&k).copied());
            match position {
                Some(i) => left.push(i),
                // An unprocessed item we cannot place: retry the whole request, never assume it landed.
                None => return Ok((0..reports.len()).collect()),
            }
        }
        Ok(left)
    }

    async fn advance_latest(&self, report: &StoredReport) -> Result<LatestOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(report.latest_item()))
            // Only forward: out-of-order or redelivered messages never move "latest" back.
            .condition_expression("attribute_not_exists(#order) OR #order <= :order")
            .expression_attribute_names("#order", ORDER_KEY)
            .expression_attribute_values(":order", AttributeValue::S(report.report.order_key()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(LatestOutcome::Advanced),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(LatestOutcome::AlreadyNewer)
            }
            Err(e) => Err(classify(e)),
        }
    }
}
