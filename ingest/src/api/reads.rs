//! The read operations: extract, parse, call the [`ScoreReader`](crate::reads::ScoreReader)
//! port, respond.
//! Same auth as writes: a user reads only their own scores; service-scope tokens read anyone's.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contract::{Bureau, FieldError};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::{AuthorizedReport, AuthorizedUser, QueryPairs, ReportPath};
use crate::cursor::{ListScope, MAX_CURSOR_CHARS};
use crate::reads::{ListQuery, StoredReport, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::state::AppState;

/// One stored credit score report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreReportView {
    /// The report's id: the `Idempotency-Key` it was written with, or a generated ULID.
    #[schema(
        example = "01JDQ6W8ZK3M5N7P9R1S3T5V7X",
        pattern = "^[A-Za-z0-9_-]{1,64}$"
    )]
    pub report_id: String,
    #[schema(example = "alice", pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub user_id: String,
    pub bureau: Bureau,
    /// Within the bureau's scale: experian 0..=999, equifax 0..=1000, transunion 0..=710.
    #[schema(example = 742, minimum = 0, maximum = 1000)]
    pub score: u16,
    /// When the bureau produced the score, in UTC with milliseconds.
    #[schema(example = "2026-11-28T10:00:00.000Z", format = DateTime)]
    pub reported_at: String,
    /// When the pipeline accepted it (API call or queue message), in UTC with milliseconds.
    #[schema(example = "2026-11-28T10:00:01.250Z", format = DateTime)]
    pub received_at: String,
    /// Who produced it: `api`, or `batch:<producer>` for batch producers.
    #[schema(example = "api")]
    pub source: String,
}

impl From<&StoredReport> for ScoreReportView {
    fn from(stored: &StoredReport) -> Self {
        let r = &stored.report;
        Self {
            report_id: r.report_id.to_string(),
            user_id: r.user_id.to_string(),
            bureau: r.bureau,
            score: r.score.value(),
            reported_at: r.reported_at.to_string(),
            received_at: contract::rfc3339::format_utc_millis(stored.received_at),
            source: stored.source.clone(),
        }
    }
}

/// A page of a user's reports, newest `reportedAt` first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreReportPage {
    /// At most `limit` reports, newest `reportedAt` first (ties broken by `reportId`).
    pub items: Vec<ScoreReportView>,
    /// Pass it back as `cursor` (with the same `bureau`) for the next page; `null` on the
    /// last page. Opaque and signed: an altered cursor is refused.
    #[schema(
        required = true,
        example = "eyJ2IjoxLCJ1IjoiYWxpY2UiLCJiIjpudWxsLCJ0IjoiMjAyNi0xMS0yOFQxMDowMDowMC4wMDBaIiwiciI6IjAxSkRRNlc4WkszTTVON1A5UjFTM1Q1VjdYIn0.kH3o0n2m6qR9JQ0Hc8u2bJ4xvO6yJx9lqB1vC3dE5fA"
    )]
    pub next_cursor: Option<String>,
}

/// The latest score of each bureau for one user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestScores {
    #[schema(example = "alice")]
    pub user_id: String,
    /// At most one report per bureau, in the order experian, equifax, transunion. A bureau
    /// with no score yet is absent. "Latest" is by `reportedAt`, never by arrival order.
    pub items: Vec<ScoreReportView>,
}

/// The query of `GET /v1/users/{userId}/credit-scores`: what [`ListScoresQuery::parse`]
/// returns (naming every bad parameter) and what the document lists.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListScoresQuery {
    /// Only this bureau's reports.
    #[param(inline)]
    pub bureau: Option<Bureau>,
    /// Page size.
    #[param(
        required = false,
        minimum = 1,
        maximum = 100,
        default = 20,
        example = 20
    )]
    pub limit: u16,
    /// `nextCursor` of the previous page, exactly as returned, with the same `bureau`.
    #[param(min_length = 1, max_length = 1024)]
    pub cursor: Option<String>,
}

/// Unknown names are echoed back in the problem; long ones are cut.
fn shown_name(name: &str) -> String {
    name.chars().take(64).collect()
}

impl ListScoresQuery {
    /// Parses the query pairs; every bad, unknown or repeated parameter is named.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut params = Self {
            bureau: None,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        };
        for (name, value) in pairs {
            if !seen.insert(name.as_str()) {
                errors.push(FieldError::new(shown_name(name), "is given more than once"));
                continue;
            }
            match name.as_str() {
                "bureau" => match Bureau::parse(value) {
                    Ok(b) => params.bureau = Some(b),
                    Err(e) => errors.push(e),
                },
                "limit" => match value.parse::<u16>() {
                    Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) && !value.starts_with('+') => {
                        params.limit = n;
                    }
                    _ => errors.push(FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )),
                },
                "cursor" if value.is_empty() || value.len() > MAX_CURSOR_CHARS => {
                    errors.push(FieldError::new(
                        "cursor",
                        "must be a nextCursor value exactly as returned",
                    ));
                }
                "cursor" => params.cursor = Some(value.clone()),
                other => errors.push(FieldError::new(
                    shown_name(other),
                    "is not a query parameter of this endpoint (bureau, limit, cursor)",
                )),
            }
        }
        match errors.len() {
            0 => Ok(params),
            _ => Err(ApiError::bad_fields(errors)),
        }
    }
}

/// Endpoints that take no query parameters say so rather than ignore them.
fn no_query_parameters(pairs: &[(String, String)]) -> Result<(), ApiError> {
    if pairs.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_fields(
        pairs
            .iter()
            .map(|(name, _)| {
                FieldError::new(
                    shown_name(name),
                    "is not a query parameter of this endpoint (it takes none)",
                )
            })
            .collect(),
    ))
}

/// Scores are personal data: no shared cache may keep them.
fn private_json<T: Serialize>(body: T) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The failures every read documents alike, each a problem document: written once here.
#[derive(utoipa::IntoResponses)]
pub enum ReadFailures {
    #[response(status = 401, description = "Missing, malformed or rejected token", content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "Bearer")))]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The token belongs to another user, or the User Service refused it",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 500,
        description = "A stored item does not read back (the table was edited by hand); no internals are shown",
        content_type = "application/problem+json"
    )]
    Internal(Problem),
    #[response(status = 503, description = "User Service or table unavailable; retry later", content_type = "application/problem+json",
        headers(("Retry-After" = u32, description = "Seconds to wait")))]
    Unavailable(Problem),
}

/// A user's reports, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/users/{userId}/credit-scores", tag = "scores",
    params(
        ("userId" = String, Path, description = "1..128 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,128}$", example = "alice"),
        ListScoresQuery,
    ),
    responses(
        (status = 200, description = "A page of reports, newest `reportedAt` first. Follow `nextCursor` until it is null.",
            body = ScoreReportPage,
            headers(("Cache-Control" = String, description = "no-store")),
            example = json!({
                "items": [{
                    "reportId": "01JDQ6W8ZK3M5N7P9R1S3T5V7X", "userId": "alice", "bureau": "experian",
                    "score": 742, "reportedAt": "2026-11-28T10:00:00.000Z",
                    "receivedAt": "2026-11-28T10:00:01.250Z", "source": "api"
                }],
                "nextCursor": null
            })),
        (status = 400, description = "A bad, unknown or repeated query parameter (`limit`, `bureau`, `cursor`, ...), each named; or a cursor that was altered or issued for another user or bureau filter",
            body = crate::api::error::Problem, content_type = "application/problem+json",
            example = json!({
                "type": "urn:credit-scores:problem:bad-request", "title": "The request is malformed", "status": 400,
                "detail": "cursor: is not a cursor this API issued (malformed or altered); use nextCursor exactly as returned",
                "errors": [{"field": "cursor", "message": "is not a cursor this API issued (malformed or altered); use nextCursor exactly as returned"}]
            })),
        ReadFailures,
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn list_scores(
    State(state): State<AppState>,
    AuthorizedUser(user): AuthorizedUser,
    QueryPairs(query): QueryPairs,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("user_id", tracing::field::display(&user));
    let params = ListScoresQuery::parse(&query)?;
    let scope = ListScope {
        user,
        bureau: params.bureau,
    };
    let after = params
        .cursor
        .map(|c| state.cursors.decode(&c, &scope))
        .transpose()
        .map_err(|e| ApiError::bad_field("cursor", e.to_string()))?;
    let page = state
        .reader
        .list(&ListQuery {
            user: scope.user.clone(),
            bureau: scope.bureau,
            after,
            limit: params.limit,
        })
        .await?;
    Ok(private_json(ScoreReportPage {
        items: page.items.iter().map(ScoreReportView::from).collect(),
        next_cursor: page.next.map(|p| state.cursors.encode(&scope, &p)),
    }))
}

/// The latest score per bureau: one index Query per bureau, sent together.
#[utoipa::path(get, path = "/v1/users/{userId}/credit-scores/latest", tag = "scores",
    params(
        ("userId" = String, Path, description = "1..128 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,128}$", example = "alice"),
    ),
    responses(
        (status = 200, description = "The report with the newest `reportedAt` of each bureau that has one (empty `items` when the user has none yet). Out-of-order delivery never moves these backwards.",
            body = LatestScores,
            headers(("Cache-Control" = String, description = "no-store")),
            example = json!({
                "userId": "alice",
                "items": [
                    {"reportId": "01JDQ6W8ZK3M5N7P9R1S3T5V7X", "userId": "alice", "bureau": "experian", "score": 742,
                     "reportedAt": "2026-11-28T10:00:00.000Z", "receivedAt": "2026-11-28T10:00:01.250Z", "source": "api"},
                    {"reportId": "bureau-file-2026-11-27-000042", "userId": "alice", "bureau": "transunion", "score": 655,
                     "reportedAt": "2026-11-27T08:30:00.000Z", "receivedAt": "2026-11-27T08:31:12.004Z", "source": "batch:nightly-import"}
                ]
            })),
        (status = 400, description = "A malformed path, or a query parameter (this endpoint takes none)", body = crate::api::error::Problem, content_type = "application/problem+json"),
        ReadFailures,
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn latest_scores(
    State(state): State<AppState>,
    AuthorizedUser(user): AuthorizedUser,
    QueryPairs(query): QueryPairs,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("user_id", tracing::field::display(&user));
    no_query_parameters(&query)?;
    let latest = state.reader.latest(&user).await?;
    Ok(private_json(LatestScores {
        user_id: user.to_string(),
        items: latest.iter().map(ScoreReportView::from).collect(),
    }))
}

/// One report by its id.
#[utoipa::path(get, path = "/v1/users/{userId}/credit-scores/{reportId}", tag = "scores",
    params(
        ("userId" = String, Path, description = "1..128 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,128}$", example = "alice"),
        ("reportId" = String, Path, description = "1..64 of [A-Za-z0-9_-]: the id a write answered with (its `Location`). `latest` is not a report id: it names the endpoint above.", pattern = "^[A-Za-z0-9_-]{1,64}$", example = "01JDQ6W8ZK3M5N7P9R1S3T5V7X"),
    ),
    responses(
        (status = 200, description = "The report", body = ScoreReportView,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "A malformed user or report id (each named), or a query parameter (this endpoint takes none)", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such report for this user, or not written yet: writes are queued, so a report appears shortly after its 202", body = crate::api::error::Problem, content_type = "application/problem+json",
            example = json!({
                "type": "urn:credit-scores:problem:not-found", "title": "Not found", "status": 404,
                "detail": "not found: no report 01JDQ6W8ZK3M5N7P9R1S3T5V7X for this user (yet: writes are queued and appear shortly after their 202)"
            })),
        ReadFailures,
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user_id, report_id))]
pub async fn get_score(
    State(state): State<AppState>,
    AuthorizedReport(ReportPath { user, report }): AuthorizedReport,
    QueryPairs(query): QueryPairs,
) -> Result<Response, ApiError> {
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(&user));
    span.record("report_id", tracing::field::display(&report));
    no_query_parameters(&query)?;
    match state.reader.get(&user, &report).await? {
        Some(stored) => Ok(private_json(ScoreReportView::from(&stored))),
        None => Err(ApiError::NotFound(format!(
            "no report {report} for this user (yet: writes are queued and appear shortly after their 202)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn named(error: ApiError) -> Vec<String> {
        match error {
            ApiError::BadRequest { errors, .. } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_query_lists_twenty_of_every_bureau() {
        assert_eq!(
            ListScoresQuery::parse(&[]).unwrap(),
            ListScoresQuery {
                bureau: None,
                limit: 20,
                cursor: None
            }
        );
    }

    #[test]
    fn reads_bureau_limit_and_cursor() {
        let p = ListScoresQuery::parse(&pairs(&[
            ("bureau", "equifax"),
            ("limit", "100"),
            ("cursor", "abc.def"),
        ]))
        .unwrap();
        assert_eq!(p.bureau, Some(Bureau::Equifax));
        assert_eq!(p.limit, 100);
        assert_eq!(p.cursor.as_deref(), Some("abc.def"));
    }

    #[test]
    fn rejects_limits_outside_one_to_a_hundred() {
        for bad in [
            "0",
            "101",
            "-1",
            "",
            "ten",
            "1.5",
            "+5",
            "65536",
            "99999999999",
        ] {
            let err = ListScoresQuery::parse(&pairs(&[("limit", bad)])).unwrap_err();
            assert_eq!(named(err), ["limit"], "{bad}");
        }
        assert_eq!(
            ListScoresQuery::parse(&pairs(&[("limit", "1")]))
                .unwrap()
                .limit,
            1
        );
    }

    #[test]
    fn rejects_an_unknown_bureau() {
        let err = ListScoresQuery::parse(&pairs(&[("bureau", "fico")])).unwrap_err();
        assert_eq!(named(err), ["bureau"]);
    }

    #[test]
    fn names_every_unknown_repeated_or_empty_parameter_at_once() {
        let err = ListScoresQuery::parse(&pairs(&[
            ("page", "2"),
            ("limit", "5"),
            ("limit", "6"),
            ("cursor", ""),
        ]))
        .unwrap_err();
        assert_eq!(named(err), ["page", "limit", "cursor"]);
    }

    #[test]
    fn endpoints_without_parameters_name_what_was_sent() {
        assert!(no_query_parameters(&[]).is_ok());
        let err = no_query_parameters(&pairs(&[("x", "1")])).unwrap_err();
        assert_eq!(named(err), ["x"]);
    }
}
