//! Workloads for the fault, crash and spike tests: many valid messages, and the check that a
//! table holds each of them exactly once with the right "latest" per user and bureau.

use std::collections::{BTreeMap, HashMap};

use shared::domain::format_utc_millis;
use shared::message::ScoreMessageV1;
use time::OffsetDateTime;

use crate::Emulator;

const BUREAUS: [(&str, u64); 3] = [("experian", 999), ("equifax", 1000), ("transunion", 710)];

/// `count` distinct valid v1 messages over `users` users (ids start with `prefix`), bureaus in
/// turn. Their `reportedAt` values are shuffled against send order, so "latest" only comes
/// out right if the worker's forward-only update does its job.
pub fn score_messages(prefix: &str, count: usize, users: usize) -> Vec<ScoreMessageV1> {
    let base = OffsetDateTime::now_utc() - time::Duration::days(1);
    let users = users.max(1);
    (0..count)
        .map(|i| {
            let (bureau, max) = BUREAUS[i % BUREAUS.len()];
            // A permutation of 0..count (7919 is prime), so no two reports of a pair share a time.
            let offset = (i * 7919) % count.max(1);
            ScoreMessageV1 {
                version: 1,
                report_id: format!("{prefix}-r{i:06}"),
                user_id: format!("{prefix}-u{:04}", i % users),
                bureau: bureau.to_owned(),
                score: (i as u64 * 37) % (max + 1),
                reported_at: format_utc_millis(base + time::Duration::seconds(offset as i64)),
                source: "batch:fault-tests".to_owned(),
                received_at: None,
            }
        })
        .collect()
}

/// The JSON bodies of `messages`, as a producer would send them.
pub fn bodies(messages: &[ScoreMessageV1]) -> Vec<String> {
    messages
        .iter()
        .map(|m| serde_json::to_string(m).expect("messages serialise"))
        .collect()
}

/// What a table holds compared with what was sent.
#[derive(Debug, Default)]
pub struct TableCheck {
    pub reports: usize,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub wrong_content: Vec<String>,
    /// (user, bureau) pairs whose latest item is not the newest report sent.
    pub wrong_latest: Vec<String>,
    /// Items that are neither a report nor a latest item of a sent pair.
    pub stray_items: usize,
}

impl TableCheck {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_content.is_empty()
            && self.wrong_latest.is_empty()
            && self.stray_items == 0
    }
}

/// Compares the table with the messages sent: every report exactly once with its content,
/// nothing else, and each latest item pointing at the newest report of its pair.
pub async fn check_table(emulator: &Emulator, table: &str, sent: &[ScoreMessageV1]) -> TableCheck {
    let reports = emulator.reports(table).await;
    let latest = emulator.latest_items(table).await;
    let total_items = emulator.scan(table).await.len();

    let expected: HashMap<&str, &ScoreMessageV1> =
        sent.iter().map(|m| (m.report_id.as_str(), m)).collect();
    let mut check = TableCheck {
        reports: reports.len(),
        ..TableCheck::default()
    };
    let mut seen = HashMap::new();
    for stored in &reports {
        let id = stored.report.report_id.as_str();
        *seen.entry(id.to_owned()).or_insert(0usize) += 1;
        match expected.get(id) {
            None => check.unexpected.push(id.to_owned()),
            Some(m) => {
                let same = stored.report.user_id.as_str() == m.user_id
                    && stored.report.bureau.as_str() == m.bureau
                    && u64::from(stored.report.score.value()) == m.score
                    && format_utc_millis(stored.report.reported_at.datetime()) == m.reported_at;
                if !same {
                    check.wrong_content.push(id.to_owned());
                }
            }
        }
    }
    check.missing = expected
        .keys()
        .filter(|id| !seen.contains_key(**id))
        .map(|id| (*id).to_owned())
        .collect();
    check.missing.sort();

    // The newest report per pair: reportedAt first, reportId breaking ties (the order key).
    let mut newest: BTreeMap<(String, String), (&str, &str)> = BTreeMap::new();
    for m in sent {
        let entry = newest
            .entry((m.user_id.clone(), m.bureau.clone()))
            .or_insert((&m.reported_at, &m.report_id));
        if (m.reported_at.as_str(), m.report_id.as_str()) > *entry {
            *entry = (&m.reported_at, &m.report_id);
        }
    }
    let mut latest_by_pair = HashMap::new();
    for item in &latest {
        latest_by_pair.insert(
            (
                item.report.user_id.as_str().to_owned(),
                item.report.bureau.as_str().to_owned(),
            ),
            item.report.report_id.as_str().to_owned(),
        );
    }
    for ((user, bureau), (_, report_id)) in &newest {
        match latest_by_pair.get(&(user.clone(), bureau.clone())) {
            Some(id) if id == report_id => {}
            other => check
                .wrong_latest
                .push(format!("{user}/{bureau}: want {report_id}, have {other:?}")),
        }
    }
    let latest_of_unsent_pairs = latest_by_pair
        .keys()
        .filter(|pair| !newest.contains_key(*pair))
        .count();
    check.stray_items =
        total_items.saturating_sub(reports.len() + latest.len()) + latest_of_unsent_pairs;
    check
}

/// Panics with a readable summary unless the table holds exactly what was sent.
pub async fn assert_exactly_once(emulator: &Emulator, table: &str, sent: &[ScoreMessageV1]) {
    let check = check_table(emulator, table, sent).await;
    assert!(
        check.is_exact(),
        "table {table}: {} reports for {} sent; missing {} (first {:?}), unexpected {:?}, \
         wrong content {:?}, wrong latest {:?}, stray items {}",
        check.reports,
        sent.len(),
        check.missing.len(),
        check.missing.iter().take(5).collect::<Vec<_>>(),
        check.unexpected,
        check.wrong_content,
        check.wrong_latest.iter().take(5).collect::<Vec<_>>(),
        check.stray_items,
    );
    assert_eq!(check.reports, sent.len());
}
