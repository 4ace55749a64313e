//! Property tests of deduplication and of the batch outcome: whatever mix of valid,
//! duplicate and poison messages arrives, and however the store misbehaves, every message
//! ends up accounted for exactly once (written, dead-lettered or reported for redelivery).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use contract::report::{ReportKey, StoredReport};
use contract::{Bureau, ReportId, ReportedAt, Score, ScoreReport, UserId};
use proptest::prelude::*;

use super::dedupe::dedupe;
use super::*;
use crate::dlq::DeadLetter;
use crate::record::process_record;
use crate::store::{StoreError, MAX_BATCH_WRITE_ITEMS};

use test_support::{bureau, config};

/// A few users, reports and timestamps, so keys and timestamps collide often.
fn stored(user: u8, report: u8, bureau: Bureau, minute: u8, score: u16) -> StoredReport {
    StoredReport {
        report: ScoreReport {
            report_id: ReportId::parse(&format!("r{report}")).expect("valid"),
            user_id: UserId::parse(&format!("u{user}")).expect("valid"),
            bureau,
            score: Score::parse(bureau, u64::from(score % (bureau.max_score() + 1)))
                .expect("in range"),
            reported_at: ReportedAt::parse_stored(&format!("2026-01-01T00:{minute:02}:00Z"))
                .expect("valid"),
        },
        source: "api".into(),
        received_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn reports() -> impl Strategy<Value = Vec<StoredReport>> {
    prop::collection::vec(
        (0u8..3, 0u8..4, bureau(), 0u8..3, any::<u16>())
            .prop_map(|(u, r, b, m, s)| stored(u, r, b, m, s)),
        0..60,
    )
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn dedupe_keeps_every_message_once_and_the_newest_report_per_key(reports in reports()) {
        let input: Vec<(usize, StoredReport)> = reports.iter().cloned().enumerate().collect();
        let groups = dedupe(input.clone());

        // Every message lands in exactly one group, each group's positions in batch order.
        let mut positions: Vec<usize> = groups.iter().flat_map(KeyGroup::positions).collect();
        for group in &groups {
            let own: Vec<usize> = group.positions().collect();
            prop_assert!(own.windows(2).all(|w| w[0] < w[1]), "{:?}", own);
        }
        positions.sort_unstable();
        prop_assert_eq!(positions, (0..input.len()).collect::<Vec<_>>());

        // One group per distinct key, in order of first appearance.
        let mut first_seen: Vec<ReportKey> = Vec::new();
        for (_, r) in &input {
            if !first_seen.contains(&r.key()) {
                first_seen.push(r.key());
            }
        }
        let group_keys: Vec<ReportKey> = groups.iter().map(|g| g.report.key()).collect();
        prop_assert_eq!(group_keys, first_seen);

        for group in &groups {
            // Every member carried this key.
            let members: Vec<&StoredReport> = input
                .iter()
                .filter(|(i, _)| group.positions().any(|p| p == *i))
                .map(|(_, r)| r)
                .collect();
            prop_assert!(members.iter().all(|r| r.key() == group.report.key()));
            // The kept report is the newest; of equally new ones, the last to arrive.
            let newest = members.iter().map(|r| r.report.reported_at).max().expect("non-empty group");
            let winner = members.iter().rev().find(|r| r.report.reported_at == newest).expect("exists");
            prop_assert_eq!(&group.report, *winner);
        }
    }
}

/// A store that leaves items unprocessed or fails whole calls for its first few calls, then
/// behaves; it records what it finally stored, by key.
struct FlakyStore {
    misbehaving_calls: Mutex<Vec<Fault>>,
    stored: Mutex<BTreeMap<ReportKey, StoredReport>>,
    down: bool,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Throttle,
    /// Leave every n-th item of the request unprocessed.
    LeaveEvery(usize),
}

#[async_trait]
impl ScoreStore for FlakyStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        if self.down {
            return Err(StoreError::TimedOut);
        }
        assert!(
            reports.len() <= MAX_BATCH_WRITE_ITEMS,
            "request of {}",
            reports.len()
        );
        let keys: BTreeSet<ReportKey> = reports.iter().map(|r| r.key()).collect();
        assert_eq!(keys.len(), reports.len(), "duplicate keys in one request");
        let fault = self.misbehaving_calls.lock().expect("lock").pop();
        let mut left = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            match fault {
                Some(Fault::Throttle) => return Err(StoreError::Throttled("test".into())),
                Some(Fault::LeaveEvery(n)) if i % n == 0 => left.push(i),
                _ => {
                    self.stored
                        .lock()
                        .expect("lock")
                        .insert(r.key(), (*r).clone());
                }
            }
        }
        Ok(left)
    }
}

#[derive(Default)]
struct RecordingDlq(Mutex<Vec<DeadLetter>>);

#[async_trait]
impl DeadLetterQueue for RecordingDlq {
    async fn send(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        self.0.lock().expect("lock").push(letter.clone());
        Ok(())
    }
}

fn inbound(id: usize, body: Option<String>) -> InboundMessage {
    InboundMessage {
        trace_header: None,
        message_id: format!("m-{id}"),
        body,
        sent_at: None,
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

fn batch() -> impl Strategy<Value = Vec<Option<String>>> {
    let valid = (0u8..3, 0u8..5, 0u8..3, 0u16..700).prop_map(|(u, r, m, s)| {
        Some(serde_json::json!({"version":1,"reportId":format!("r{r}"),"userId":format!("u{u}"),
            "bureau":"transunion","score":s,"reportedAt":format!("2026-01-01T00:{m:02}:00Z"),"source":"api"})
        .to_string())
    });
    let poison = prop_oneof![
        Just(None),
        ".{0,40}".prop_map(Some),
        Just(Some(r#"{"version":2}"#.to_owned())),
        Just(Some(r#"{"version":1,"userId":"a b"}"#.to_owned())),
    ];
    prop::collection::vec(prop_oneof![3 => valid, 1 => poison], 0..40)
}

fn faults() -> impl Strategy<Value = Vec<Fault>> {
    prop::collection::vec(
        prop_oneof![
            Just(Fault::Throttle),
            (1usize..4).prop_map(Fault::LeaveEvery)
        ],
        0..6,
    )
}

proptest! {
    #![proptest_config(config(96))]

    /// Nothing lost, nothing doubled: each message is written, dead-lettered or failed,
    /// exactly once; with the store up, everything valid is written; with it down, everything
    /// valid is reported for redelivery.
    #[test]
    fn every_message_is_accounted_for_exactly_once(bodies in batch(), faults in faults(), down in prop::bool::weighted(0.2)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let messages: Vec<InboundMessage> = bodies.iter().cloned().enumerate().map(|(i, b)| inbound(i, b)).collect();
        let store = Arc::new(FlakyStore { misbehaving_calls: Mutex::new(faults), stored: Mutex::default(), down });
        let dlq = Arc::new(RecordingDlq::default());
        // Fields added later keep their defaults.
        #[allow(clippy::needless_update)]
        let config = ProcessorConfig {
            write_concurrency: 2,
            retry_base_delay: Duration::from_millis(1),
            retry_max_delay: Duration::from_millis(4),
            ..ProcessorConfig::default()
        };
        let processor = Processor::new(store.clone(), dlq.clone(), config);
        // Long enough for a few faults, short enough that a store that stays down costs little.
        let budget = if down { Duration::from_millis(40) } else { Duration::from_secs(10) };
        let outcome = runtime.block_on(async {
            processor.process_batch(&messages, Instant::now() + budget).await
        });

        let now = OffsetDateTime::now_utc();
        let poison: BTreeSet<String> = messages.iter()
            .filter(|m| process_record(m, now).is_err())
            .map(|m| m.message_id.clone())
            .collect();
        let dead: BTreeSet<String> = dlq.0.lock().expect("lock").iter().map(|l| l.original_message_id.clone()).collect();
        let failed: BTreeSet<String> = outcome.failed.iter().cloned().collect();

        prop_assert_eq!(failed.len(), outcome.failed.len(), "a message reported failed twice");
        prop_assert_eq!(&dead, &poison);
        prop_assert_eq!(outcome.dead_lettered, poison.len());
        prop_assert!(failed.is_disjoint(&dead));
        prop_assert_eq!(outcome.written + outcome.dead_lettered + outcome.failed.len(), messages.len());

        let valid_keys: BTreeSet<ReportKey> = messages.iter()
            .filter_map(|m| process_record(m, now).ok())
            .map(|r| r.key())
            .collect();
        let stored = store.stored.lock().expect("lock");
        if down {
            prop_assert!(stored.is_empty());
            prop_assert_eq!(failed.len(), messages.len() - poison.len());
        } else {
            prop_assert!(failed.is_empty(), "failed {:?}", failed);
            prop_assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), valid_keys);
        }
    }
}
