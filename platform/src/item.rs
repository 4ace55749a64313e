//! The DynamoDB item mapping: one table, keys derived only from validated values.
//!
//! | item | pk | sk | lsi1sk (`byReportedAt`) | lsi2sk (`byBureauReportedAt`) |
//! | --- | --- | --- | --- | --- |
//! | a report | `USER#<userId>` | `REPORT#<reportId>` | `<reportedAt>#<reportId>` | `<bureau>#<reportedAt>#<reportId>` |
//!
//! A report is fetched by id with GetItem and listed newest first through the local secondary
//! indexes; the latest report of a bureau is the first item of `byBureauReportedAt` under
//! `<bureau>#`, so there is nothing to keep up to date on the write path. Tables written by
//! earlier versions may also hold `LATEST#<bureau>` items: they carry no index keys, so no
//! read lists them, and they can be left alone or deleted. The same reportId always yields
//! the same key, so redelivery rewrites one item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use contract::domain::{Bureau, ReportId, ReportedAt, Score, ScoreReport, UserId};
use contract::report::{ReportKey, StoredReport};
use contract::rfc3339::format_utc_millis;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const LSI1_SK: &str = "lsi1sk";
pub const LSI2_SK: &str = "lsi2sk";
pub const INDEX_BY_REPORTED_AT: &str = "byReportedAt";
pub const INDEX_BY_BUREAU_REPORTED_AT: &str = "byBureauReportedAt";

/// The report's own attributes, written and read by these names only.
pub mod attribute {
    pub const USER_ID: &str = "userId";
    pub const REPORT_ID: &str = "reportId";
    pub const BUREAU: &str = "bureau";
    pub const SCORE: &str = "score";
    pub const REPORTED_AT: &str = "reportedAt";
    pub const SOURCE: &str = "source";
    pub const RECEIVED_AT: &str = "receivedAt";
}

const USER_PREFIX: &str = "USER#";
const REPORT_PREFIX: &str = "REPORT#";
/// Between the parts of an index sort key.
const SEPARATOR: char = '#';

pub type Item = HashMap<String, AttributeValue>;

pub fn user_pk(user: &UserId) -> String {
    prefixed(USER_PREFIX, user.as_str())
}

pub fn report_sk(report: &ReportId) -> String {
    prefixed(REPORT_PREFIX, report.as_str())
}

fn prefixed(prefix: &str, value: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + value.len());
    key.push_str(prefix);
    key.push_str(value);
    key
}

/// The (userId, reportId) text an item's table keys were built from.
pub fn key_parts(item: &Item) -> Option<(&str, &str)> {
    match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some((
            pk.strip_prefix(USER_PREFIX)?,
            sk.strip_prefix(REPORT_PREFIX)?,
        )),
        _ => None,
    }
}

/// The `lsi2sk` prefix under which one bureau's reports sort by time.
pub fn bureau_prefix(bureau: Bureau) -> String {
    let mut prefix = String::with_capacity(bureau.as_str().len() + 1);
    prefix.push_str(bureau.as_str());
    prefix.push(SEPARATOR);
    prefix
}

/// `lsi1sk` (`byReportedAt`): `<reportedAt>#<reportId>`, time-ordered text.
pub fn by_reported_at_sk(reported_at: &ReportedAt, report_id: &ReportId) -> String {
    order_key(&format_utc_millis(reported_at.datetime()), report_id)
}

/// `<reportedAt text>#<reportId>`: [`by_reported_at_sk`] from the timestamp already written.
fn order_key(reported_at: &str, report_id: &ReportId) -> String {
    let report_id = report_id.as_str();
    let mut key = String::with_capacity(reported_at.len() + 1 + report_id.len());
    key.push_str(reported_at);
    key.push(SEPARATOR);
    key.push_str(report_id);
    key
}

/// `lsi2sk` (`byBureauReportedAt`): `<bureau>#` and the `lsi1sk` of the same report.
pub fn by_bureau_reported_at_sk(bureau: Bureau, by_reported_at: &str) -> String {
    let mut key = String::with_capacity(bureau.as_str().len() + 1 + by_reported_at.len());
    key.push_str(bureau.as_str());
    key.push(SEPARATOR);
    key.push_str(by_reported_at);
    key
}

/// The table key of one report.
pub fn key_item(key: &ReportKey) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(user_pk(&key.user_id))),
        (SK.to_owned(), AttributeValue::S(report_sk(&key.report_id))),
    ])
}

/// The report item, with the sort keys of both list indexes. This runs once per record in
/// the worker, so every string is built at its final size and the map holds exactly its
/// eleven attributes.
pub fn report_item(stored: &StoredReport) -> Item {
    use attribute::*;
    let r = &stored.report;
    // The timestamp is written once: it is an attribute and the start of both sort keys.
    let reported_at = format_utc_millis(r.reported_at.datetime());
    let lsi1 = order_key(&reported_at, &r.report_id);
    let lsi2 = by_bureau_reported_at_sk(r.bureau, &lsi1);
    let mut item = HashMap::with_capacity(11);
    item.insert(PK.to_owned(), AttributeValue::S(user_pk(&r.user_id)));
    item.insert(SK.to_owned(), AttributeValue::S(report_sk(&r.report_id)));
    item.insert(LSI1_SK.to_owned(), AttributeValue::S(lsi1));
    item.insert(LSI2_SK.to_owned(), AttributeValue::S(lsi2));
    let text = |value: &str| AttributeValue::S(value.to_owned());
    item.insert(USER_ID.to_owned(), text(r.user_id.as_str()));
    item.insert(REPORT_ID.to_owned(), text(r.report_id.as_str()));
    item.insert(BUREAU.to_owned(), text(r.bureau.as_str()));
    item.insert(
        SCORE.to_owned(),
        AttributeValue::N(r.score.value().to_string()),
    );
    item.insert(REPORTED_AT.to_owned(), AttributeValue::S(reported_at));
    item.insert(SOURCE.to_owned(), text(&stored.source));
    item.insert(
        RECEIVED_AT.to_owned(),
        AttributeValue::S(format_utc_millis(stored.received_at)),
    );
    item
}

/// Reads a report item back. Items are only ever written by [`report_item`], so a mismatch
/// means the table was edited by hand: it is reported, never panicked on.
pub fn read_report(item: &Item) -> Result<StoredReport, ItemError> {
    use attribute::*;
    let s = |name: &'static str| -> Result<&str, ItemError> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.as_str()),
            _ => Err(ItemError(name)),
        }
    };
    let n = |name: &'static str| -> Result<u64, ItemError> {
        match item.get(name) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| ItemError(name)),
            _ => Err(ItemError(name)),
        }
    };
    let bureau = Bureau::parse(s(BUREAU)?).map_err(|_| ItemError(BUREAU))?;
    Ok(StoredReport {
        report: ScoreReport {
            report_id: ReportId::parse(s(REPORT_ID)?).map_err(|_| ItemError(REPORT_ID))?,
            user_id: UserId::parse(s(USER_ID)?).map_err(|_| ItemError(USER_ID))?,
            bureau,
            score: Score::parse(bureau, n(SCORE)?).map_err(|_| ItemError(SCORE))?,
            reported_at: ReportedAt::parse_stored(s(REPORTED_AT)?).ok_or(ItemError(REPORTED_AT))?,
        },
        source: s(SOURCE)?.to_owned(),
        received_at: OffsetDateTime::parse(s(RECEIVED_AT)?, &Rfc3339)
            .map_err(|_| ItemError(RECEIVED_AT))?,
    })
}

/// A stored item lacks an attribute or holds one of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item has a missing or malformed attribute `{0}`")]
pub struct ItemError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn stored() -> StoredReport {
        let now = datetime!(2026-11-28 10:00:00 UTC);
        StoredReport {
            report: ScoreReport {
                report_id: ReportId::parse("01JD0000000000000000000000").unwrap(),
                user_id: UserId::parse("alice").unwrap(),
                bureau: Bureau::Equifax,
                score: Score::parse(Bureau::Equifax, 1000).unwrap(),
                reported_at: ReportedAt::parse("2026-11-28T09:30:00Z", now).unwrap(),
            },
            source: "api".into(),
            received_at: now,
        }
    }

    #[test]
    fn report_item_keys_are_derived_from_user_and_report_id() {
        let item = report_item(&stored());
        assert_eq!(item[PK], AttributeValue::S("USER#alice".into()));
        assert_eq!(
            item[SK],
            AttributeValue::S("REPORT#01JD0000000000000000000000".into())
        );
        assert_eq!(
            item[LSI1_SK],
            AttributeValue::S("2026-11-28T09:30:00.000Z#01JD0000000000000000000000".into())
        );
        assert_eq!(
            item[LSI2_SK],
            AttributeValue::S("equifax#2026-11-28T09:30:00.000Z#01JD0000000000000000000000".into())
        );
    }

    #[test]
    fn report_item_holds_exactly_the_eleven_documented_attributes() {
        let item = report_item(&stored());
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "bureau",
                "lsi1sk",
                "lsi2sk",
                "pk",
                "receivedAt",
                "reportId",
                "reportedAt",
                "score",
                "sk",
                "source",
                "userId"
            ]
        );
        assert_eq!(item["score"], AttributeValue::N("1000".into()));
        assert_eq!(
            item["receivedAt"],
            AttributeValue::S("2026-11-28T10:00:00.000Z".into())
        );
    }

    #[test]
    fn a_bureau_prefix_selects_exactly_that_bureaus_reports_in_the_index() {
        let s = stored();
        let AttributeValue::S(lsi2) = &report_item(&s)[LSI2_SK] else {
            panic!("lsi2sk is a string");
        };
        for bureau in Bureau::ALL {
            assert_eq!(
                lsi2.starts_with(&bureau_prefix(bureau)),
                bureau == s.report.bureau,
                "{bureau}"
            );
        }
    }

    #[test]
    fn an_item_reads_back_to_the_same_write_whatever_offset_reported_at_came_in() {
        // Ingest's Idempotency-Key check compares the report read back from the table with
        // the incoming one, so equality must ignore the offset the timestamp was given in.
        let s = stored();
        let mut shifted = s.clone();
        shifted.report.reported_at = ReportedAt::from_datetime(
            s.report
                .reported_at
                .datetime()
                .to_offset(time::macros::offset!(+05:30)),
        );
        let read_back = read_report(&report_item(&shifted)).map(|r| r.report);
        assert_eq!(read_back, Ok(s.report.clone()));
        assert_eq!(shifted.report, s.report);

        let mut later = s.report.clone();
        later.reported_at = ReportedAt::from_datetime(
            later.reported_at.datetime() + time::Duration::milliseconds(1),
        );
        assert_ne!(later, s.report);
    }

    #[test]
    fn items_read_back_to_the_same_report() {
        let s = stored();
        assert_eq!(read_report(&report_item(&s)), Ok(s));
    }

    #[test]
    fn names_the_attribute_of_a_hand_edited_item() {
        let mut item = report_item(&stored());
        item.insert("score".into(), AttributeValue::S("high".into()));
        assert_eq!(read_report(&item), Err(ItemError("score")));
    }
}
