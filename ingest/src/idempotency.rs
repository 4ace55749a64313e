//! Reuse of an `Idempotency-Key`: a keyed write whose report is already stored is answered
//! from the table, without enqueueing again. Same normalised write ([`write_hash`]): `202`
//! with the same reportId. Another write under the same key: `422` naming `Idempotency-Key`
//! (as the IETF Idempotency-Key draft asks), instead of silently replacing the stored score.
//!
//! This is a read before the enqueue, not a lock: two different bodies under one key that are
//! both queued before either is written still end as the later one (docs/api.md says why).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::item::{write_hash, ReportKey, WRITE_HASH};
use shared::{ScoreReport, ValidationErrors};

use crate::error::ApiError;

/// What the table holds under a report's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredWrite {
    /// Nothing yet: enqueue.
    Absent,
    /// A report written before items carried a hash: nothing to compare, enqueue as before.
    Unhashed,
    /// A report and its [`write_hash`].
    Hashed(String),
}

/// The port ingest asks before enqueueing a keyed write. It knows nothing of HTTP.
#[async_trait]
pub trait StoredWrites: Send + Sync {
    async fn stored_write(&self, key: &ReportKey) -> anyhow::Result<StoredWrite>;
}

/// [`StoredWrites`] on the DynamoDB table: one GetItem projecting only the hash.
pub struct DynamoStoredWrites {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

#[async_trait]
impl StoredWrites for DynamoStoredWrites {
    async fn stored_write(&self, key: &ReportKey) -> anyhow::Result<StoredWrite> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(key.to_item_key()))
            // `pk` always comes back, so an item without a hash is told from no item.
            .projection_expression("pk, #h")
            .expression_attribute_names("#h", WRITE_HASH)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetItem: {}", DisplayErrorContext(e)))?;
        Ok(match out.item {
            None => StoredWrite::Absent,
            Some(item) => match item.get(WRITE_HASH) {
                Some(AttributeValue::S(hash)) => StoredWrite::Hashed(hash.clone()),
                _ => StoredWrite::Unhashed,
            },
        })
    }
}

/// What to do with a keyed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedWrite {
    /// Not stored yet (or not comparable): enqueue it.
    Enqueue,
    /// Already stored, same write: answer 202 again, enqueue nothing.
    AlreadyStored,
}

/// Compares `report` with what is stored under its key. A failed lookup enqueues as before
/// (writes must not depend on the table being readable; the worst case is the old "later
/// write wins").
pub async fn check(store: &dyn StoredWrites, report: &ScoreReport) -> Result<KeyedWrite, ApiError> {
    match store.stored_write(&ReportKey::of(report)).await {
        Ok(StoredWrite::Absent | StoredWrite::Unhashed) => Ok(KeyedWrite::Enqueue),
        Ok(StoredWrite::Hashed(stored)) if stored == write_hash(report) => {
            Ok(KeyedWrite::AlreadyStored)
        }
        Ok(StoredWrite::Hashed(_)) => Err(ApiError::Validation(ValidationErrors::single(
            "Idempotency-Key",
            "was already used for a different write (bureau, score or reportedAt differ); \
             use a new key for a new write",
        ))),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not read the stored report for an Idempotency-Key; enqueueing without the reuse check");
            Ok(KeyedWrite::Enqueue)
        }
    }
}

/// For tests and fuzzing: nothing is ever stored.
pub struct NothingStored;

#[async_trait]
impl StoredWrites for NothingStored {
    async fn stored_write(&self, _key: &ReportKey) -> anyhow::Result<StoredWrite> {
        Ok(StoredWrite::Absent)
    }
}
