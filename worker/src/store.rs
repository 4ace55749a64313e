//! The port the worker writes through, and its DynamoDB adapter.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use contract::report::StoredReport;
use platform::item::{key_parts, report_item};

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

#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Writes up to 25 reports with distinct keys in one request. Returns the positions (in
    /// `reports`) of those the store did not process (`UnprocessedItems`).
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError>;
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

/// Positions in `reports` of the requests DynamoDB left unprocessed; `None` when one cannot
/// be placed.
fn positions_of(reports: &[&StoredReport], unprocessed: &[WriteRequest]) -> Option<Vec<usize>> {
    // Built only when something came back: the common case pays nothing.
    let positions: HashMap<(&str, &str), usize> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.report.user_id.as_str(), r.report.report_id.as_str()), i))
        .collect();
    unprocessed
        .iter()
        .map(|request| {
            let item = &request.put_request.as_ref()?.item;
            positions.get(&key_parts(item)?).copied()
        })
        .collect()
}

#[async_trait]
impl ScoreStore for DynamoScoreStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        let mut requests = Vec::with_capacity(reports.len());
        for report in reports {
            let put = PutRequest::builder()
                .set_item(Some(report_item(report)))
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
        if unprocessed.is_empty() {
            return Ok(Vec::new());
        }
        // An unprocessed item we cannot place: retry the whole request, never assume it landed.
        Ok(positions_of(reports, &unprocessed).unwrap_or_else(|| (0..reports.len()).collect()))
    }
}
