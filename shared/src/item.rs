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
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{
    format_utc_millis, push_utc_millis, Bureau, ReportId, ReportedAt, Score, ScoreReport, UserId,
    UTC_MILLIS_LEN,
};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const LSI1_SK: &str = "lsi1sk";
pub const LSI2_SK: &str = "lsi2sk";
pub const INDEX_BY_REPORTED_AT: &str = "byReportedAt";
pub const INDEX_BY_BUREAU_REPORTED_AT: &str = "byBureauReportedAt";

pub type Item = HashMap<String, AttributeValue>;

pub fn user_pk(user: &UserId) -> String {
    prefixed("USER#", user.as_str())
}

pub fn report_sk(report: &ReportId) -> String {
    prefixed("REPORT#", report.as_str())
}

fn prefixed(prefix: &str, value: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + value.len());
    key.push_str(prefix);
    key.push_str(value);
    key
}

/// The `lsi2sk` prefix under which one bureau's reports sort by time.
pub fn bureau_prefix(bureau: Bureau) -> String {
    let mut prefix = String::with_capacity(bureau.as_str().len() + 1);
    prefix.push_str(bureau.as_str());
    prefix.push('#');
    prefix
}

/// The primary key of one report item; two messages with the same key are the same report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportKey {
    pub user_id: UserId,
    pub report_id: ReportId,
}

impl ReportKey {
    pub fn of(report: &ScoreReport) -> Self {
        Self {
            user_id: report.user_id.clone(),
            report_id: report.report_id.clone(),
        }
    }

    pub fn to_item_key(&self) -> Item {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(user_pk(&self.user_id))),
            (SK.to_owned(), AttributeValue::S(report_sk(&self.report_id))),
        ])
    }
}

/// A report as stored: the validated score plus where and when it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub report: ScoreReport,
    pub source: String,
    pub received_at: OffsetDateTime,
}

impl StoredReport {
    pub fn key(&self) -> ReportKey {
        ReportKey::of(&self.report)
    }

    /// The report item, with the sort keys of both list indexes. This runs once per record
    /// in the worker, so every string is built at its final size and the map holds exactly
    /// its eleven attributes.
    pub fn report_item(&self) -> Item {
        let r = &self.report;
        let user = r.user_id.as_str();
        let report_id = r.report_id.as_str();
        let bureau = r.bureau.as_str();

        let mut reported_at = String::with_capacity(UTC_MILLIS_LEN);
        push_utc_millis(&mut reported_at, r.reported_at.datetime());
        let mut lsi1 = String::with_capacity(UTC_MILLIS_LEN + 1 + report_id.len());
        lsi1.push_str(&reported_at);
        lsi1.push('#');
        lsi1.push_str(report_id);
        let mut lsi2 = String::with_capacity(bureau.len() + 1 + lsi1.len());
        lsi2.push_str(bureau);
        lsi2.push('#');
        lsi2.push_str(&lsi1);

        let mut item = HashMap::with_capacity(11);
        item.insert(PK.to_owned(), AttributeValue::S(prefixed("USER#", user)));
        item.insert(
            SK.to_owned(),
            AttributeValue::S(prefixed("REPORT#", report_id)),
        );
        item.insert(LSI1_SK.to_owned(), AttributeValue::S(lsi1));
        item.insert(LSI2_SK.to_owned(), AttributeValue::S(lsi2));
        item.insert("userId".to_owned(), AttributeValue::S(user.to_owned()));
        item.insert(
            "reportId".to_owned(),
            AttributeValue::S(report_id.to_owned()),
        );
        item.insert("bureau".to_owned(), AttributeValue::S(bureau.to_owned()));
        item.insert(
            "score".to_owned(),
            AttributeValue::N(r.score.value().to_string()),
        );
        item.insert("reportedAt".to_owned(), AttributeValue::S(reported_at));
        item.insert("source".to_owned(), AttributeValue::S(self.source.clone()));
        item.insert(
            "receivedAt".to_owned(),
            AttributeValue::S(format_utc_millis(self.received_at)),
        );
        item
    }

    /// Reads a report item back. Items are only ever written by this module, so a mismatch
    /// means the table was edited by hand: it is reported, never panicked on.
    pub fn from_item(item: &Item) -> Result<Self, ItemError> {
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
        let bureau = Bureau::parse(s("bureau")?).map_err(|_| ItemError("bureau"))?;
        Ok(Self {
            report: ScoreReport {
                report_id: ReportId::parse(s("reportId")?).map_err(|_| ItemError("reportId"))?,
                user_id: UserId::parse(s("userId")?).map_err(|_| ItemError("userId"))?,
                bureau,
                score: Score::parse(bureau, n("score")?).map_err(|_| ItemError("score"))?,
                reported_at: ReportedAt::parse_stored(s("reportedAt")?)
                    .ok_or(ItemError("reportedAt"))?,
            },
            source: s("source")?.to_owned(),
            received_at: OffsetDateTime::parse(s("receivedAt")?, &Rfc3339)
                .map_err(|_| ItemError("receivedAt"))?,
        })
    }
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
        let item = stored().report_item();
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
        let item = stored().report_item();
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
        let AttributeValue::S(lsi2) = &s.report_item()[LSI2_SK] else {
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
        let read_back = StoredReport::from_item(&shifted.report_item()).map(|r| r.report);
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
        assert_eq!(StoredReport::from_item(&s.report_item()), Ok(s));
    }

    #[test]
    fn names_the_attribute_of_a_hand_edited_item() {
        let mut item = stored().report_item();
        item.insert("score".into(), AttributeValue::S("high".into()));
        assert_eq!(StoredReport::from_item(&item), Err(ItemError("score")));
    }
}
