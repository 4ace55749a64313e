//! Reuse of an `Idempotency-Key`: a keyed write whose report is already stored is answered
//! from the table, without enqueueing again. The same write (the stored report equals the
//! incoming one: userId, reportId, bureau, score and reportedAt in UTC milliseconds; not
//! `source` or `receivedAt`, which a retry may change): `202` with the same reportId. Another
//! write under the same key: `422` naming `Idempotency-Key` (as the IETF Idempotency-Key draft
//! asks), instead of silently replacing the stored score.
//!
//! This is a read before the enqueue, not a lock: two different bodies under one key that are
//! both queued before either is written still end as the later one (docs/api.md says why).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use backon::{BackoffBuilder, ExponentialBuilder};
use contract::report::ReportKey;
use contract::ScoreReport;
use platform::item::{key_item, read_report, Item};

use crate::coalesce::Coalescer;

/// The port ingest asks before enqueueing a keyed write: the report stored under a key, if
/// any. It knows nothing of HTTP.
#[async_trait]
pub trait StoredWrites: Send + Sync {
    async fn stored_report(&self, key: &ReportKey) -> anyhow::Result<Option<ScoreReport>>;
}

/// [`StoredWrites`] on the DynamoDB table, read back through the one item mapping
/// (`platform::item`), so the comparison needs nothing on the item but the report. Lookups made
/// at the same moment share BatchGetItem calls ([`crate::coalesce`]), as the writes they come
/// with share SendMessageBatch calls.
pub struct DynamoStoredWrites {
    lookups: Coalescer<ReportKey, Lookup>,
}

type Lookup = Result<Option<ScoreReport>, String>;

/// Keys in one BatchGetItem call: writes queued at once share a lookup call as they share a
/// SendMessageBatch call, ten at a time (BatchGetItem itself takes up to 100).
const LOOKUPS_PER_CALL: usize = 10;
/// BatchGetItem calls of fewer than 10 keys in flight at once (as
/// [`crate::queue::PARTIAL_SENDS_IN_FLIGHT`]).
const PARTIAL_LOOKUPS_IN_FLIGHT: usize = 1;
/// Tries for keys DynamoDB returns unprocessed (throttled): the first call and two more.
const UNPROCESSED_RETRIES: usize = 2;

impl DynamoStoredWrites {
    /// Spawns the batching task: call inside the tokio runtime that serves the requests.
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<Arc<str>>) -> Self {
        let table_name: Arc<str> = table_name.into();
        let lookups = Coalescer::spawn(
            LOOKUPS_PER_CALL,
            PARTIAL_LOOKUPS_IN_FLIGHT,
            move |keys: Vec<ReportKey>| {
                let (client, table_name) = (client.clone(), table_name.clone());
                async move { batch_lookup(&client, &table_name, &keys).await }
            },
        );
        Self { lookups }
    }
}

/// One result per key, in order. BatchGetItem refuses a call that names one key twice, and
/// two retries of one write can arrive together: each key is asked for once.
async fn batch_lookup(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    keys: &[ReportKey],
) -> Vec<Lookup> {
    let mut wanted: Vec<&ReportKey> = keys.iter().collect();
    wanted.sort();
    wanted.dedup();
    let mut found: HashMap<ReportKey, ScoreReport> = HashMap::with_capacity(wanted.len());
    let mut pending: Vec<Item> = wanted.iter().map(|k| key_item(k)).collect();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_times(UNPROCESSED_RETRIES)
        .with_jitter()
        .build();
    let failure = loop {
        let asked = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut pending)))
            .build()
            .map_err(|e| format!("BatchGetItem: {e}"));
        let out = match asked {
            Ok(asked) => client
                .batch_get_item()
                .request_items(table_name, asked)
                .send()
                .await
                .map_err(|e| format!("BatchGetItem: {}", DisplayErrorContext(e))),
            Err(e) => Err(e),
        };
        let mut out = match out {
            Ok(out) => out,
            Err(e) => break Some(e),
        };
        for item in out
            .responses
            .as_mut()
            .and_then(|tables| tables.remove(table_name))
            .unwrap_or_default()
        {
            // An item that does not read back is reported against no key: its key then
            // counts as not stored, and the write is enqueued (as for a failed lookup).
            if let Ok(stored) = read_report(&item) {
                found.insert(stored.key(), stored.report);
            }
        }
        pending = out
            .unprocessed_keys
            .and_then(|mut tables| tables.remove(table_name))
            .map(|unprocessed| unprocessed.keys)
            .unwrap_or_default();
        if pending.is_empty() {
            break None;
        }
        match delays.next() {
            Some(delay) => tokio::time::sleep(delay).await,
            None => {
                break Some(format!(
                    "BatchGetItem left {} key(s) unprocessed after {} tries",
                    pending.len(),
                    UNPROCESSED_RETRIES + 1
                ))
            }
        }
    };
    // A key DynamoDB returned no item for is not stored, unless the lookup failed before
    // every key was answered: then it gets the failure.
    keys.iter()
        .map(|key| match (found.get(key), &failure) {
            (Some(report), _) => Ok(Some(report.clone())),
            (None, Some(failure)) => Err(failure.clone()),
            (None, None) => Ok(None),
        })
        .collect()
}

#[async_trait]
impl StoredWrites for DynamoStoredWrites {
    async fn stored_report(&self, key: &ReportKey) -> anyhow::Result<Option<ScoreReport>> {
        self.lookups
            .call(key.clone())
            .await?
            .map_err(anyhow::Error::msg)
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
