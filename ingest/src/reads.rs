//! The port reads go through, and its DynamoDB adapter. Reads need no queue: they query the
//! table the worker writes, through the indexes of [`platform::item`].

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use contract::report::ReportKey;
use contract::{Bureau, ReportId, ReportedAt, UserId};
use platform::item::{
    bureau_prefix, by_bureau_reported_at_sk, by_reported_at_sk, key_item, read_report, report_sk,
    user_pk, Item, ItemError, INDEX_BY_BUREAU_REPORTED_AT, INDEX_BY_REPORTED_AT, LSI1_SK, LSI2_SK,
    PK, SK,
};

/// What the port answers with: a report as stored, with where and when it was received.
pub use contract::report::StoredReport;

/// Where a listing stands: the last report served. Lists are ordered by (`reportedAt`,
/// `reportId`) descending, which is unique per report, so a position is never ambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub reported_at: ReportedAt,
    pub report_id: ReportId,
}

impl Position {
    pub fn of(report: &StoredReport) -> Self {
        Self {
            reported_at: report.report.reported_at,
            report_id: report.report.report_id.clone(),
        }
    }
}

/// Page sizes a client may ask for.
pub const MAX_PAGE_SIZE: u16 = 100;
pub const DEFAULT_PAGE_SIZE: u16 = 20;

/// One page of a user's reports, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub user: UserId,
    pub bureau: Option<Bureau>,
    /// Continue after this report; `None` starts at the newest.
    pub after: Option<Position>,
    /// 1..=[`MAX_PAGE_SIZE`].
    pub limit: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPage {
    pub items: Vec<StoredReport>,
    /// Set only when more reports follow: the last page never ends in an empty one.
    pub next: Option<Position>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the score table failed")]
    Unavailable(#[source] anyhow::Error),
    /// An item that does not read back: edited by hand, never by our writers.
    #[error(transparent)]
    Corrupt(#[from] ItemError),
}

#[async_trait]
pub trait ScoreReader: Send + Sync {
    /// Reports of one user (optionally one bureau), newest `reportedAt` first.
    async fn list(&self, query: &ListQuery) -> Result<ReportPage, ReadError>;

    /// The latest report per bureau, in [`Bureau`] order; bureaus without one are absent.
    async fn latest(&self, user: &UserId) -> Result<Vec<StoredReport>, ReadError>;

    /// One report, or `None` until the worker has written it.
    async fn get(
        &self,
        user: &UserId,
        report: &ReportId,
    ) -> Result<Option<StoredReport>, ReadError>;
}

/// [`ScoreReader`] on the DynamoDB table.
pub struct DynamoScoreReader {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

fn unavailable<E: std::error::Error>(error: E) -> ReadError {
    ReadError::Unavailable(anyhow::anyhow!("{}", DisplayErrorContext(error)))
}

/// The `ExclusiveStartKey` that resumes a list after `position`: the table key plus the sort
/// key of the index being read, built by the same functions as the item's.
pub fn start_key(user: &UserId, bureau: Option<Bureau>, position: &Position) -> Item {
    let order = by_reported_at_sk(&position.reported_at, &position.report_id);
    let (attribute, value) = match bureau {
        None => (LSI1_SK, order),
        Some(b) => (LSI2_SK, by_bureau_reported_at_sk(b, &order)),
    };
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(user_pk(user))),
        (
            SK.to_owned(),
            AttributeValue::S(report_sk(&position.report_id)),
        ),
        (attribute.to_owned(), AttributeValue::S(value)),
    ])
}

impl DynamoScoreReader {
    async fn newest_of_bureau(
        &self,
        pk: &str,
        bureau: Bureau,
    ) -> Result<Option<StoredReport>, ReadError> {
        let out = self
            .client
            .query()
            .table_name(&self.table_name)
            .index_name(INDEX_BY_BUREAU_REPORTED_AT)
            .scan_index_forward(false)
            .limit(1)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", LSI2_SK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(bureau_prefix(bureau)))
            .send()
            .await
            .map_err(unavailable)?;
        out.items
            .unwrap_or_default()
            .first()
            .map(read_report)
            .transpose()
            .map_err(ReadError::from)
    }
}

#[async_trait]
impl ScoreReader for DynamoScoreReader {
    #[tracing::instrument(skip_all, fields(limit = query.limit))]
    async fn list(&self, query: &ListQuery) -> Result<ReportPage, ReadError> {
        let limit = usize::from(query.limit.clamp(1, MAX_PAGE_SIZE));
        // One more than asked: it tells whether a next page exists without a wasted request.
        let wanted = limit + 1;
        let (index, condition, prefix) = match query.bureau {
            None => (INDEX_BY_REPORTED_AT, "#pk = :pk", None),
            Some(b) => (
                INDEX_BY_BUREAU_REPORTED_AT,
                "#pk = :pk AND begins_with(#sk, :prefix)",
                Some(bureau_prefix(b)),
            ),
        };
        let sort_attribute = if query.bureau.is_some() {
            LSI2_SK
        } else {
            LSI1_SK
        };
        let mut start = query
            .after
            .as_ref()
            .map(|p| start_key(&query.user, query.bureau, p));
        let mut items = Vec::with_capacity(wanted);
        loop {
            let page_size = i32::try_from(wanted - items.len()).unwrap_or(i32::MAX);
            let mut request = self
                .client
                .query()
                .table_name(&self.table_name)
                .index_name(index)
                .scan_index_forward(false)
                .limit(page_size)
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(user_pk(&query.user)))
                .set_exclusive_start_key(start.take());
            if let Some(prefix) = &prefix {
                request = request
                    .expression_attribute_names("#sk", sort_attribute)
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()));
            }
            let out = request.send().await.map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                items.push(read_report(&item)?);
            }
            start = out.last_evaluated_key;
            // DynamoDB stops at 1 MB per request; keep going until the page is full.
            if items.len() >= wanted || start.is_none() {
                break;
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(Position::of)
        } else {
            None
        };
        Ok(ReportPage { items, next })
    }

    /// One Query per bureau on `byBureauReportedAt` (newest first, one item), sent
    /// together. "Latest" is then the newest report by construction, whatever order the
    /// worker wrote them in, and the write path keeps no per-user item up to date.
    #[tracing::instrument(skip_all)]
    async fn latest(&self, user: &UserId) -> Result<Vec<StoredReport>, ReadError> {
        let pk = user_pk(user);
        let [first, second, third] = Bureau::ALL;
        let found = tokio::try_join!(
            self.newest_of_bureau(&pk, first),
            self.newest_of_bureau(&pk, second),
            self.newest_of_bureau(&pk, third),
        )?;
        // `Bureau::ALL` is in `Bureau` order, and so is what comes back.
        Ok([found.0, found.1, found.2].into_iter().flatten().collect())
    }

    #[tracing::instrument(skip_all)]
    async fn get(
        &self,
        user: &UserId,
        report: &ReportId,
    ) -> Result<Option<StoredReport>, ReadError> {
        let key = ReportKey {
            user_id: user.clone(),
            report_id: report.clone(),
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(key_item(&key)))
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| read_report(&item))
            .transpose()
            .map_err(ReadError::from)
    }
}

/// For tests and fuzzing: a table with nothing in it.
pub struct NoReports;

#[async_trait]
impl ScoreReader for NoReports {
    async fn list(&self, _query: &ListQuery) -> Result<ReportPage, ReadError> {
        Ok(ReportPage {
            items: Vec::new(),
            next: None,
        })
    }

    async fn latest(&self, _user: &UserId) -> Result<Vec<StoredReport>, ReadError> {
        Ok(Vec::new())
    }

    async fn get(
        &self,
        _user: &UserId,
        _report: &ReportId,
    ) -> Result<Option<StoredReport>, ReadError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{Score, ScoreReport};
    use time::macros::datetime;

    fn stored(bureau: Bureau) -> StoredReport {
        let now = datetime!(2026-11-28 10:00:00 UTC);
        StoredReport {
            report: ScoreReport {
                report_id: ReportId::parse("r-42").unwrap(),
                user_id: UserId::parse("alice").unwrap(),
                bureau,
                score: Score::parse(bureau, 700).unwrap(),
                reported_at: ReportedAt::parse("2026-11-28T09:30:00.5Z", now).unwrap(),
            },
            source: "api".into(),
            received_at: now,
        }
    }

    /// The resume key must equal the key attributes of the item it points at, index by index,
    /// or DynamoDB would resume somewhere else.
    #[test]
    fn start_key_matches_the_item_written_for_that_report() {
        for bureau in Bureau::ALL {
            let report = stored(bureau);
            let item = platform::item::report_item(&report);
            let position = Position::of(&report);
            let user = &report.report.user_id;
            let unfiltered = start_key(user, None, &position);
            for attribute in [PK, SK, LSI1_SK] {
                assert_eq!(unfiltered[attribute], item[attribute], "{attribute}");
            }
            assert_eq!(unfiltered.len(), 3);
            let filtered = start_key(user, Some(bureau), &position);
            for attribute in [PK, SK, LSI2_SK] {
                assert_eq!(filtered[attribute], item[attribute], "{attribute}");
            }
            assert_eq!(filtered.len(), 3);
        }
    }
}
