//! The DynamoDB item mapping: one table, keys derived only from validated values.
//!
//! | item | pk | sk | lsi1sk (`byReportedAt`) | lsi2sk (`byBureauReportedAt`) |
//! | --- | --- | --- | --- | --- |
//! | a report | `USER#<userId>` | `REPORT#<reportId>` | `<reportedAt>#<reportId>` | `<bureau>#<reportedAt>#<reportId>` |
//! | latest per bureau | `USER#<userId>` | `LATEST#<bureau>` | (absent) | (absent) |
//!
//! A report is fetched by id with GetItem and listed newest first through the sparse local
//! secondary indexes; the `LATEST#` items carry no index keys, so they never show up in lists.
//! The same reportId always yields the same key, so redelivery rewrites one item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{format_utc_millis, Bureau, ReportId, ReportedAt, Score, ScoreReport, UserId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const LSI1_SK: &str = "lsi1sk";
pub const LSI2_SK: &str = "lsi2sk";
pub const INDEX_BY_REPORTED_AT: &str = "byReportedAt";
pub const INDEX_BY_BUREAU_REPORTED_AT: &str = "byBureauReportedAt";
/// On `LATEST#` items: the order key of the report they hold, for the forward-only condition.
pub const ORDER_KEY: &str = "orderKey";

pub type Item = HashMap<String, AttributeValue>;

pub fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

pub fn report_sk(report: &ReportId) -> String {
    format!("REPORT#{report}")
}

pub fn latest_sk(bureau: Bureau) -> String {
    format!("LATEST#{bureau}")
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

    fn common_attributes(&self) -> Item {
        let r = &self.report;
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(user_pk(&r.user_id))),
            (
                "userId".to_owned(),
                AttributeValue::S(r.user_id.to_string()),
            ),
            (
                "reportId".to_owned(),
                AttributeValue::S(r.report_id.to_string()),
            ),
            ("bureau".to_owned(), AttributeValue::S(r.bureau.to_string())),
            (
                "score".to_owned(),
                AttributeValue::N(r.score.value().to_string()),
            ),
            (
                "reportedAt".to_owned(),
                AttributeValue::S(r.reported_at.to_string()),
            ),
            ("source".to_owned(), AttributeValue::S(self.source.clone())),
            (
                "receivedAt".to_owned(),
                AttributeValue::S(format_utc_millis(self.received_at)),
            ),
        ])
    }

    /// The report item, with the sort keys of both list indexes.
    pub fn report_item(&self) -> Item {
        let r = &self.report;
        let order = r.order_key();
        let mut item = self.common_attributes();
        item.insert(SK.to_owned(), AttributeValue::S(report_sk(&r.report_id)));
        item.insert(
            LSI2_SK.to_owned(),
            AttributeValue::S(format!("{}#{order}", r.bureau)),
        );
        item.insert(LSI1_SK.to_owned(), AttributeValue::S(order));
        item
    }

    /// The `LATEST#<bureau>` item this report would become if it is the newest.
    pub fn latest_item(&self) -> Item {
        let mut item = self.common_attributes();
        item.insert(
            SK.to_owned(),
            AttributeValue::S(latest_sk(self.report.bureau)),
        );
        item.insert(
            ORDER_KEY.to_owned(),
            AttributeValue::S(self.report.order_key()),
        );
        item
    }

    /// Reads a report or latest item back. Items are only ever written by this module, so a
    /// mismatch means the table was edited by hand: it is reported, never panicked on.
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
    fn latest_item_stays_out_of_the_list_indexes() {
        let item = stored().latest_item();
        assert_eq!(item[SK], AttributeValue::S("LATEST#equifax".into()));
        assert!(!item.contains_key(LSI1_SK) && !item.contains_key(LSI2_SK));
        assert!(item.contains_key(ORDER_KEY));
    }

    #[test]
    fn items_read_back_to_the_same_report() {
        let s = stored();
        assert_eq!(StoredReport::from_item(&s.report_item()), Ok(s.clone()));
        assert_eq!(StoredReport::from_item(&s.latest_item()), Ok(s));
    }

    #[test]
    fn names_the_attribute_of_a_hand_edited_item() {
        let mut item = stored().report_item();
        item.insert("score".into(), AttributeValue::S("high".into()));
        assert_eq!(StoredReport::from_item(&item), Err(ItemError("score")));
    }
}
