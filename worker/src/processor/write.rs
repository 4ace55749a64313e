//! The writes: groups in BatchWriteItem requests of at most 25, a few in flight, what is left
//! retried with backoff until the deadline.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use backon::{BackoffBuilder, ExponentialBuilder};
use contract::report::StoredReport;
use futures::stream::{self, StreamExt};
use platform::telemetry::ErrorChain;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::config::ProcessorConfig;
use super::dedupe::KeyGroup;
use crate::store::{ScoreStore, StoreError, MAX_BATCH_WRITE_ITEMS};

/// The processor's store and settings, lent to one batch's writes.
pub(super) struct Writer<'a> {
    pub store: &'a dyn ScoreStore,
    pub config: &'a ProcessorConfig,
}

impl Writer<'_> {
    /// Writes every group; returns, per group, when it was written (`None`: not by the
    /// deadline).
    pub(super) async fn write_groups(
        &self,
        groups: &[KeyGroup],
        deadline: Instant,
        counters: &WriteCounters,
    ) -> Vec<Option<OffsetDateTime>> {
        // Owned chunks: borrowed stream items trip up `Send` inference in spawned tasks.
        let indexes: Vec<usize> = (0..groups.len()).collect();
        let chunks: Vec<Vec<usize>> = indexes
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(<[usize]>::to_vec)
            .collect();
        let mut written_at = vec![None; groups.len()];
        let written: Vec<(usize, OffsetDateTime)> = stream::iter(chunks)
            .map(|chunk| self.write_chunk(groups, chunk, deadline, counters))
            .buffer_unordered(self.config.write_concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        for (group, at) in written {
            written_at[group] = Some(at);
        }
        written_at
    }

    /// Writes one chunk of at most 25 groups, retrying what is left; returns the groups
    /// written, each with the time its write was acknowledged.
    async fn write_chunk(
        &self,
        groups: &[KeyGroup],
        chunk: Vec<usize>,
        deadline: Instant,
        counters: &WriteCounters,
    ) -> Vec<(usize, OffsetDateTime)> {
        let mut written = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        let mut backoff = self.backoff(deadline);
        loop {
            let reports: Vec<&StoredReport> = pending.iter().map(|&i| &groups[i].report).collect();
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match within(deadline, self.store.put_reports(&reports)).await {
                Ok(left) => {
                    let now = OffsetDateTime::now_utc();
                    if left.is_empty() {
                        written.extend(pending.iter().map(|&i| (i, now)));
                        return written;
                    }
                    tracing::debug!(
                        unprocessed = left.len(),
                        "BatchWriteItem left items unprocessed"
                    );
                    let mut kept = vec![false; pending.len()];
                    for &p in &left {
                        if let Some(k) = kept.get_mut(p) {
                            *k = true;
                        }
                    }
                    let mut still = Vec::with_capacity(left.len());
                    for (&group, kept) in pending.iter().zip(kept) {
                        if kept {
                            still.push(group);
                        } else {
                            written.push((group, now));
                        }
                    }
                    pending = still;
                }
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), items = pending.len(), "BatchWriteItem failed")
                }
            }
            if !backoff.wait().await {
                return written;
            }
            counters.retried.fetch_add(pending.len(), Ordering::Relaxed);
        }
    }

    fn backoff(&self, deadline: Instant) -> Backoff {
        Backoff {
            delays: ExponentialBuilder::default()
                .with_min_delay(self.config.retry_base_delay)
                .with_max_delay(self.config.retry_max_delay)
                .without_max_times()
                .build(),
            deadline,
        }
    }
}

/// What the writes of one batch cost.
#[derive(Default)]
pub(super) struct WriteCounters {
    /// BatchWriteItem requests sent, retries included.
    pub requests: AtomicUsize,
    /// Items sent again.
    pub retried: AtomicUsize,
}

/// Exponential delays with full jitter (a uniform pick in `[0, cap)`), bounded by a deadline.
struct Backoff {
    delays: backon::ExponentialBackoff,
    deadline: Instant,
}

impl Backoff {
    /// Sleeps before the next attempt; false when no attempt fits before the deadline.
    async fn wait(&mut self) -> bool {
        let Some(cap) = self.delays.next() else {
            return false;
        };
        let delay = cap.mul_f64(fastrand::f64());
        if Instant::now() + delay >= self.deadline {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

/// Runs a store call, giving up at the deadline. A call cut short may still have landed;
/// that is safe because every write is idempotent.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::TimedOut),
    }
}
