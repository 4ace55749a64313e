//! Workloads for the fault, crash and spike tests: many valid messages, and the check that a
//! table holds each of them exactly once, and that the bureau index would serve the right
//! "latest" per user and bureau.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use contract::message::ScoreMessageV1;
use contract::rfc3339::format_utc_millis;
use platform::item::{read_report, LSI2_SK, SK};
use time::OffsetDateTime;

use crate::Emulator;

const BUREAUS: [(&str, u64); 3] = [("experian", 999), ("equifax", 1000), ("transunion", 710)];

/// `count` distinct valid v1 messages over `users` users (ids start with `prefix`), bureaus in
/// turn. Their `reportedAt` values are shuffled against send order, so "latest" only comes
/// out right if it follows `reportedAt`, never the order of arrival.
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
    /// (user, bureau) pairs whose first item in `byBureauReportedAt` order (the highest
    /// `lsi2sk`, what `/latest` reads) is not the newest report sent.
    pub wrong_latest: Vec<String>,
    /// Items that are not reports (the write path writes nothing else).
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
/// nothing else, and for each pair the report that sorts first in the bureau index being the
/// newest one sent.
pub async fn check_table(emulator: &Emulator, table: &str, sent: &[ScoreMessageV1]) -> TableCheck {
    let items = emulator.scan(table).await;
    let mut reports = Vec::with_capacity(items.len());
    // Per (user, bureau): the highest lsi2sk seen and its report id.
    let mut index_first: HashMap<(String, String), (String, String)> = HashMap::new();
    let mut stray_items = 0;
    for item in &items {
        let is_report =
            matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk.starts_with("REPORT#"));
        let stored = is_report.then(|| read_report(item).ok()).flatten();
        let (Some(stored), Some(AttributeValue::S(lsi2))) = (stored, item.get(LSI2_SK)) else {
            stray_items += 1;
            continue;
        };
        let pair = (
            stored.report.user_id.to_string(),
            stored.report.bureau.to_string(),
        );
        let id = stored.report.report_id.to_string();
        let first = index_first
            .entry(pair)
            .or_insert_with(|| (lsi2.clone(), id.clone()));
        if *lsi2 > first.0 {
            *first = (lsi2.clone(), id);
        }
        reports.push(stored);
    }

    let expected: HashMap<&str, &ScoreMessageV1> =
        sent.iter().map(|m| (m.report_id.as_str(), m)).collect();
    let mut check = TableCheck {
        reports: reports.len(),
        stray_items,
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

    // The newest report per pair: reportedAt first, reportId breaking ties.
    let mut newest: BTreeMap<(String, String), (&str, &str)> = BTreeMap::new();
    for m in sent {
        let entry = newest
            .entry((m.user_id.clone(), m.bureau.clone()))
            .or_insert((&m.reported_at, &m.report_id));
        if (m.reported_at.as_str(), m.report_id.as_str()) > *entry {
            *entry = (&m.reported_at, &m.report_id);
        }
    }
    for (pair, (_, report_id)) in &newest {
        match index_first.get(pair) {
            Some((_, id)) if id == report_id => {}
            other => check.wrong_latest.push(format!(
                "{}/{}: want {report_id}, have {:?}",
                pair.0,
                pair.1,
                other.map(|(_, id)| id)
            )),
        }
    }
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

/// Message `i` of a run of `count` over `users` users, made on demand (the same fields as
/// [`score_messages`] makes, from a `base` time the caller fixes for the run): a spike of a
/// million writes never holds them all. `reportedAt` is `base` plus a permutation of
/// 0..count seconds, so `base` must be at least `count` seconds in the past for ingest to
/// accept every write.
pub fn score_message(
    prefix: &str,
    i: usize,
    count: usize,
    users: usize,
    base: OffsetDateTime,
) -> ScoreMessageV1 {
    let (bureau, max) = BUREAUS[i % BUREAUS.len()];
    let offset = (i * 7919) % count.max(1);
    ScoreMessageV1 {
        version: 1,
        report_id: format!("{prefix}-r{i:07}"),
        user_id: format!("{prefix}-u{:05}", i % users.max(1)),
        bureau: bureau.to_owned(),
        score: (i as u64 * 37) % (max + 1),
        reported_at: format_utc_millis(base + time::Duration::seconds(offset as i64)),
        source: "batch:fault-tests".to_owned(),
        received_at: None,
    }
}

/// The `i` of a report id [`score_message`] made with `prefix`, or `None` for any other id.
pub fn message_index(prefix: &str, report_id: &str) -> Option<usize> {
    let digits = report_id.strip_prefix(prefix)?.strip_prefix("-r")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_made_on_demand_carries_its_index_in_its_report_id() {
        let base = OffsetDateTime::now_utc() - time::Duration::days(30);
        for i in [0, 1, 7, 99_999, 1_234_567] {
            let m = score_message("soak", i, 2_000_000, 10_000, base);
            assert_eq!(message_index("soak", &m.report_id), Some(i));
            assert_eq!(m.user_id, format!("soak-u{:05}", i % 10_000));
        }
        for id in [
            "soak-r",
            "soak-rx1",
            "other-r0000001",
            "soak-r+1",
            "01JD0000",
        ] {
            assert_eq!(message_index("soak", id), None, "{id}");
        }
    }

    #[test]
    fn on_demand_messages_are_distinct_with_distinct_times_per_run() {
        let base = OffsetDateTime::now_utc() - time::Duration::days(30);
        let times: std::collections::HashSet<String> = (0..3_000)
            .map(|i| score_message("s", i, 3_000, 50, base).reported_at)
            .collect();
        assert_eq!(times.len(), 3_000);
    }
}
