//! Reuse of an `Idempotency-Key`: a keyed write whose report is already stored is answered
//! from the table, without enqueueing again. The same write (the stored report equals the
//! incoming one: userId, reportId, bureau, score and reportedAt in UTC milliseconds; not
//! `source` or `receivedAt`, which a retry may change): `202` with the same reportId. Another
//! write under the same key: `422` naming `Idempotency-Key` (as the IETF Idempotency-Key draft
//! asks), instead of silently replacing the stored score.
//!
//! This is a read before the enqueue, not a lock: two different bodies under one key that are
//! both queued before either is written still end as the later one (docs/api.md says why).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use shared::item::{ReportKey, StoredReport};
use shared::ScoreReport;

/// The port ingest asks before enqueueing a keyed write: the report stored under a key, if
/// any. It knows nothing of HTTP.
#[async_trait]
pub trait StoredWrites: Send + Sync {
    async fn stored_report(&self, key: &ReportKey) -> anyhow::Result<Option<ScoreReport>>;
}

/// [`StoredWrites`] on the DynamoDB table: one GetItem, read back through the one item
/// mapping (`shared::item`), so the comparison needs nothing on the item but the report.
pub struct DynamoStoredWrites {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

#[async_trait]
impl StoredWrites for DynamoStoredWrites {
    async fn stored_report(&self, key: &ReportKey) -> anyhow::Result<Option<ScoreReport>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(key.to_item_key()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetItem: {}", DisplayErrorContext(e)))?;
        out.item
            .map(|item| StoredReport::from_item(&item).map(|stored| stored.report))
            .transpose()
            .map_err(anyhow::Error::from)
    }
}

/// What to do with a keyed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedWrite {
    /// Not stored yet (or not comparable): enqueue it.
    Enqueue,
    /// Already stored, same write: answer 202 again, enqueue nothing.
    AlreadyStored,
    /// Another write is stored under this key: refuse it (the API answers 422).
    UsedForAnotherWrite,
}

/// Compares `report` with what is stored under its key. A failed lookup enqueues as before
/// (writes must not depend on the table being readable; the worst case is the old "later
/// write wins").
pub async fn check(store: &dyn StoredWrites, report: &ScoreReport) -> KeyedWrite {
    match store.stored_report(&ReportKey::of(report)).await {
        Ok(None) => KeyedWrite::Enqueue,
        Ok(Some(stored)) if stored == *report => KeyedWrite::AlreadyStored,
        Ok(Some(_)) => KeyedWrite::UsedForAnotherWrite,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not read the stored report for an Idempotency-Key; enqueueing without the reuse check");
            KeyedWrite::Enqueue
        }
    }
}

/// For tests and fuzzing: nothing is ever stored.
pub struct NothingStored;

#[async_trait]
impl StoredWrites for NothingStored {
    async fn stored_report(&self, _key: &ReportKey) -> anyhow::Result<Option<ScoreReport>> {
        Ok(None)
    }
}
