use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use contract::report::StoredReport;
use contract::{Bureau, ReportId, ReportedAt, Score, ScoreReport, UserId};

use super::dedupe::dedupe;
use super::*;
use crate::dlq::DeadLetter;
use crate::store::{StoreError, MAX_BATCH_WRITE_ITEMS};

/// A store that records every request and can leave items unprocessed or fail outright.
#[derive(Default)]
struct FakeStore {
    requests: Mutex<Vec<Vec<StoredReport>>>,
    /// For this many calls, the second half of each request comes back unprocessed.
    unprocessed_calls: AtomicUsize,
    always_fail: bool,
}

#[async_trait]
impl ScoreStore for FakeStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        if self.always_fail {
            return Err(StoreError::Throttled(
                "ProvisionedThroughputExceededException".into(),
            ));
        }
        let leave = self
            .unprocessed_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let cut = if leave {
            reports.len() / 2
        } else {
            reports.len()
        };
        let cut = if leave && cut == 0 { 0 } else { cut };
        self.requests
            .lock()
            .unwrap()
            .push(reports[..cut].iter().map(|r| (*r).clone()).collect());
        Ok((cut..reports.len()).collect())
    }
}

#[derive(Default)]
struct FakeDlq {
    sent: Mutex<Vec<DeadLetter>>,
    fail: bool,
}

#[async_trait]
impl DeadLetterQueue for FakeDlq {
    async fn send(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        if self.fail {
            anyhow::bail!("DLQ unavailable");
        }
        self.sent.lock().unwrap().push(letter.clone());
        Ok(())
    }
}

fn body(user: &str, report: &str, score: u16, reported_at: &str) -> String {
    serde_json::json!({"version":1,"reportId":report,"userId":user,"bureau":"experian",
        "score":score,"reportedAt":reported_at,"source":"api"})
    .to_string()
}

fn message(id: usize, body: String) -> InboundMessage {
    InboundMessage {
        trace_header: None,
        message_id: format!("m-{id}"),
        body: Some(body),
        sent_at: None,
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

fn valid_messages(n: usize) -> Vec<InboundMessage> {
    distinct_records(n, 7)
}

fn test_config() -> ProcessorConfig {
    ProcessorConfig {
        write_concurrency: 3,
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(20),
    }
}

fn processor(store: Arc<FakeStore>, dlq: Arc<FakeDlq>) -> Processor {
    Processor::new(store, dlq, test_config())
}

fn far_deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn sixty_records_go_in_three_requests_of_at_most_twenty_five() {
    let store = Arc::new(FakeStore::default());
    let outcome = processor(store.clone(), Arc::default())
        .process_batch(&valid_messages(60), far_deadline())
        .await;
    let sizes: Vec<usize> = store
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [10, 25, 25], "request sizes {sizes:?}");
    assert_eq!(outcome.write_requests, 3);
    assert_eq!(outcome.written, 60);
    assert!(outcome.failed.is_empty());
}

#[tokio::test]
async fn a_request_never_carries_the_same_key_twice_and_the_newest_wins() {
    let store = Arc::new(FakeStore::default());
    let messages = vec![
        message(1, body("alice", "dup", 600, "2026-01-01T00:00:00Z")),
        message(2, body("alice", "dup", 650, "2026-01-03T00:00:00Z")),
        message(3, body("alice", "dup", 620, "2026-01-02T00:00:00Z")),
        message(4, body("bob", "dup", 500, "2026-01-01T00:00:00Z")),
    ];
    let outcome = processor(store.clone(), Arc::default())
        .process_batch(&messages, far_deadline())
        .await;
    let requests = store.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let written = &requests[0];
    assert_eq!(written.len(), 2, "one item per key");
    let alice = written
        .iter()
        .find(|r| r.report.user_id.as_str() == "alice")
        .unwrap();
    assert_eq!(alice.report.score.value(), 650);
    assert_eq!(outcome.deduplicated, 2);
    assert_eq!(
        outcome.written, 4,
        "every message sharing the key shares its success"
    );
}

#[tokio::test]
async fn unprocessed_items_are_retried_until_written() {
    let store = Arc::new(FakeStore {
        unprocessed_calls: AtomicUsize::new(4),
        ..FakeStore::default()
    });
    let outcome = processor(store.clone(), Arc::default())
        .process_batch(&valid_messages(40), far_deadline())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert!(
        outcome.write_requests > 2,
        "retries are requests too: {outcome:?}"
    );
    let mut ids: Vec<String> = store
        .requests
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .map(|r| r.report.report_id.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        40,
        "every report written exactly once in the end"
    );
}

#[tokio::test]
async fn what_cannot_be_written_before_the_deadline_is_reported_as_failed() {
    let store = Arc::new(FakeStore {
        always_fail: true,
        ..FakeStore::default()
    });
    let started = Instant::now();
    let outcome = processor(store, Arc::default())
        .process_batch(
            &valid_messages(30),
            Instant::now() + Duration::from_millis(300),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up in time"
    );
    assert_eq!(outcome.failed.len(), 30);
    assert_eq!(outcome.written, 0);
}

#[tokio::test]
async fn poison_goes_to_the_dlq_and_is_not_reported_as_a_failure() {
    let dlq = Arc::new(FakeDlq::default());
    let mut messages = valid_messages(3);
    messages.push(message(90, "not json".into()));
    messages.push(message(91, r#"{"version":7}"#.into()));
    messages.push(message(
        92,
        body("alice", "r", 5000, "2026-01-01T00:00:00Z"),
    ));
    let outcome = processor(Arc::default(), dlq.clone())
        .process_batch(&messages, far_deadline())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.dead_lettered, 3);
    let sent = dlq.sent.lock().unwrap();
    let mut reasons: Vec<&str> = sent.iter().map(|l| l.reason_code).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["contract_violation", "invalid_json", "unknown_version"]
    );
    let violation = sent
        .iter()
        .find(|l| l.reason_code == "contract_violation")
        .unwrap();
    assert!(violation.detail.contains("score"), "{}", violation.detail);
}

#[tokio::test]
async fn poison_that_cannot_reach_the_dlq_is_redelivered_not_dropped() {
    let dlq = Arc::new(FakeDlq {
        fail: true,
        ..FakeDlq::default()
    });
    let messages = vec![
        message(1, "{".into()),
        message(2, body("a", "r", 1, "2026-01-01T00:00:00Z")),
    ];
    let outcome = processor(Arc::default(), dlq)
        .process_batch(&messages, far_deadline())
        .await;
    assert_eq!(outcome.failed, ["m-1"]);
    assert_eq!(outcome.written, 1);
}

#[test]
fn dedupe_keeps_the_later_message_on_equal_timestamps() {
    let stored = |score: u16| StoredReport {
        report: ScoreReport {
            report_id: ReportId::parse("r").unwrap(),
            user_id: UserId::parse("u").unwrap(),
            bureau: Bureau::Experian,
            score: Score::parse(Bureau::Experian, u64::from(score)).unwrap(),
            reported_at: ReportedAt::parse_stored("2026-01-01T00:00:00Z").unwrap(),
        },
        source: "api".into(),
        received_at: OffsetDateTime::UNIX_EPOCH,
    };
    let groups = dedupe(vec![(0, stored(1)), (1, stored(2))]);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].report.report.score.value(), 2);
    assert_eq!(groups[0].positions().collect::<Vec<_>>(), [0, 1]);
}

/// Counts requests and nothing else: a store with no I/O.
#[derive(Default)]
struct CountingStore {
    requests: AtomicUsize,
    items: AtomicUsize,
}

#[async_trait]
impl ScoreStore for CountingStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        assert!(reports.len() <= MAX_BATCH_WRITE_ITEMS, "{}", reports.len());
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.items.fetch_add(reports.len(), Ordering::SeqCst);
        Ok(Vec::new())
    }
}

fn distinct_records(n: usize, users: usize) -> Vec<InboundMessage> {
    (0..n)
        .map(|i| {
            message(
                i,
                body(
                    &format!("user{}", i % users),
                    &format!("r{i}"),
                    700,
                    "2026-01-01T00:00:00Z",
                ),
            )
        })
        .collect()
}

/// The write path is BatchWriteItem alone: `ceil(n/25)` requests for n distinct keys, with
/// one user or n users alike (no write per user, bureau or record).
#[tokio::test]
async fn n_distinct_records_take_exactly_ceil_n_over_25_requests_whatever_the_user_mix() {
    for n in [1usize, 25, 26, 100, 10_000] {
        for users in [1, n] {
            let store = Arc::new(CountingStore::default());
            let outcome =
                Processor::new(store.clone(), Arc::new(FakeDlq::default()), test_config())
                    .process_batch(&distinct_records(n, users), far_deadline())
                    .await;
            assert_eq!(
                store.requests.load(Ordering::SeqCst),
                n.div_ceil(25),
                "{n} records, {users} users"
            );
            assert_eq!(store.items.load(Ordering::SeqCst), n);
            assert_eq!(outcome.write_requests, n.div_ceil(25));
            assert_eq!(outcome.written, n);
            assert!(outcome.failed.is_empty());
        }
    }
}
