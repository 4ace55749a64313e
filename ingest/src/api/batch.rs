//! `POST /v1/credit-scores/batch`: up to 500 scores for any users from a service caller,
//! each validated on its own and the valid ones enqueued with SendMessageBatch. The answer
//! says, entry by entry, what was accepted, what was rejected and why, and what the queue did
//! not take (in the queue port's terms, never SQS's codes).

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use contract::{FieldError, MessageSource, ScoreMessage, ScoreReport, ValidationErrors};
use serde::Serialize;

use super::bodies::{parse_batch_body, RejectedEntry};
use super::error::ApiError;
use super::extract::{JsonBody, ServiceCaller};
use super::observe::CorrelationId;
use crate::queue::NotEnqueued;
use crate::state::AppState;

/// This route's body limit: 500 entries need more than the API's usual 64 KiB.
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

/// What became of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchItemStatus {
    /// Queued; the worker writes it shortly.
    Accepted,
    /// Breaks the contract; fix the named fields before sending it again.
    Rejected,
    /// Valid, but the queue did not take it; send it again (same reportId) when `retryable`.
    Failed,
}

/// The verdict on one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    /// The entry's position in `items`, from 0.
    #[schema(example = 3)]
    pub index: usize,
    /// The entry's reportId (generated when it gave none and was valid); retry with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "bureau-file-2026-11-28-000042")]
    pub report_id: Option<String>,
    pub status: BatchItemStatus,
    /// For `rejected`: each failing field and why. For `failed`: `queue`, and what to do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `failed`: `QueueUnavailable` (the queue failed or did not answer: send the entry
    /// again) or `QueueRefused` (the queue refused it: sending it again fails the same way).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "QueueUnavailable")]
    pub code: Option<String>,
    /// For `failed`: whether sending the entry again may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// The answer to a batch: counts, then one result per entry in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    #[schema(example = 493)]
    pub accepted: usize,
    #[schema(example = 7)]
    pub rejected: usize,
    #[schema(example = 0)]
    pub failed: usize,
    pub items: Vec<BatchItemResult>,
}

impl BatchResponse {
    /// 202 when every entry was accepted, else 207 (read each entry's status).
    pub fn status(&self) -> StatusCode {
        if self.rejected == 0 && self.failed == 0 {
            StatusCode::ACCEPTED
        } else {
            StatusCode::MULTI_STATUS
        }
    }
}

/// When no entry is valid the request as a whole is invalid: a 422 naming each entry's
/// fields as `items[i].field`, rather than a 207 that accepted nothing.
fn all_rejected(verdicts: &[Result<ScoreReport, RejectedEntry>]) -> ApiError {
    let errors =
        verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().err().map(|rejected| (i, rejected)))
            .flat_map(|(i, rejected)| {
                rejected.errors.0.iter().map(move |e| {
                    FieldError::new(format!("items[{i}].{}", e.field), e.message.clone())
                })
            })
            .collect();
    ApiError::Validation(ValidationErrors(errors))
}

/// Joins the parse verdicts with the queue's answers for the valid entries (in order).
pub fn assemble(
    verdicts: Vec<Result<ScoreReport, RejectedEntry>>,
    sent: &[Result<(), NotEnqueued>],
) -> BatchResponse {
    let mut sent = sent.iter();
    let items: Vec<BatchItemResult> = verdicts
        .into_iter()
        .enumerate()
        .map(|(index, verdict)| match verdict {
            Ok(report) => {
                let report_id = Some(report.report_id.to_string());
                match sent.next() {
                    Some(Ok(())) => BatchItemResult {
                        index,
                        report_id,
                        status: BatchItemStatus::Accepted,
                        errors: Vec::new(),
                        code: None,
                        retryable: None,
                    },
                    Some(Err(failure)) => failed(index, report_id, failure),
                    // The queue answered for fewer entries than it was given: never claim
                    // an entry was accepted without its acknowledgement.
                    None => failed(
                        index,
                        report_id,
                        &NotEnqueued::Unavailable("the queue gave no answer for this entry".into()),
                    ),
                }
            }
            Err(rejected) => BatchItemResult {
                index,
                report_id: rejected.report_id.map(|r| r.to_string()),
                status: BatchItemStatus::Rejected,
                errors: rejected.errors.0,
                code: None,
                retryable: None,
            },
        })
        .collect();
    let count = |s: BatchItemStatus| items.iter().filter(|i| i.status == s).count();
    BatchResponse {
        accepted: count(BatchItemStatus::Accepted),
        rejected: count(BatchItemStatus::Rejected),
        failed: count(BatchItemStatus::Failed),
        items,
    }
}

/// A `failed` entry says what the sender can act on; the queue's own account of it is for
/// the operator's log, not for clients.
fn failed(index: usize, report_id: Option<String>, failure: &NotEnqueued) -> BatchItemResult {
    let (code, message, retryable) = match failure {
        NotEnqueued::Unavailable(_) => (
            "QueueUnavailable",
            "the queue did not take this entry; send it again with the same reportId",
            true,
        ),
        NotEnqueued::Refused(_) => (
            "QueueRefused",
            "the queue refused this entry; sending it again fails the same way",
            false,
        ),
    };
    BatchItemResult {
        index,
        report_id,
        status: BatchItemStatus::Failed,
        errors: vec![FieldError::new("queue", message)],
        code: Some(code.to_owned()),
        retryable: Some(retryable),
    }
}

/// `batch:<token subject>` when the subject is a valid producer name, else `batch:http`.
pub fn batch_source(subject: &str) -> MessageSource {
    MessageSource::parse(&format!("batch:{subject}"))
        .unwrap_or_else(|_| MessageSource::Batch("http".into()))
}

/// Validate every entry, enqueue the valid ones with SendMessageBatch (groups of 10), and
/// answer entry by entry. Service callers only.
#[utoipa::path(post, path = "/v1/credit-scores/batch", tag = "scores",
    params(
        ("X-Correlation-Id" = Option<String>, Header, description = "Echoed back and carried on every message of the batch"),
    ),
    request_body(content = super::bodies::BatchRequestBody, content_type = "application/json",
        description = "1..500 entries; body at most 1 MiB"),
    responses(
        (status = 202, description = "Every entry was queued", body = BatchResponse),
        (status = 207, description = "Some entries were rejected (fields named) or not taken by the queue (code, retryable); the rest were queued. Read each entry's status", body = BatchResponse),
        (status = 400, description = "The body is not a JSON object", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed or rejected token", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the service scope", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not JSON", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`items` is missing, empty or holds more than 500 entries, every entry is invalid (each named as `items[i].field`), or the body has unknown fields", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The User Service is unavailable", body = crate::api::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(entries, accepted, rejected, failed))]
pub async fn submit_batch(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation)): Extension<CorrelationId>,
    ServiceCaller(principal): ServiceCaller,
    JsonBody(body): JsonBody<MAX_BATCH_BODY_BYTES>,
) -> Result<Response, ApiError> {
    let now = (state.now)();
    let verdicts = parse_batch_body(&body, now)?;
    if verdicts.iter().all(Result::is_err) {
        return Err(all_rejected(&verdicts));
    }
    let source = batch_source(&principal.subject);
    let messages: Vec<ScoreMessage> = verdicts
        .iter()
        .filter_map(|v| v.as_ref().ok())
        .map(|report| ScoreMessage {
            report: report.clone(),
            source: source.clone(),
            received_at: Some(now),
        })
        .collect();
    let sent = if messages.is_empty() {
        Vec::new()
    } else {
        state.queue.enqueue_batch(&messages, &correlation).await
    };
    let reasons: Vec<String> = sent
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    let result = assemble(verdicts, &sent);
    let span = tracing::Span::current();
    span.record("entries", result.items.len());
    span.record("accepted", result.accepted);
    span.record("rejected", result.rejected);
    span.record("failed", result.failed);
    if result.failed > 0 {
        let codes: Vec<&str> = result
            .items
            .iter()
            .filter_map(|i| i.code.as_deref())
            .collect();
        tracing::warn!(failed = result.failed, codes = ?codes, reasons = ?reasons, "the queue did not take some entries");
    }
    tracing::info!("batch handled");
    platform::metrics::count(platform::metrics::names::ACCEPTED_WRITES, result.accepted);

    Ok((result.status(), Json(result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::bodies::parse_entry;
    use serde_json::{json, Value};
    use time::macros::datetime;
    use time::OffsetDateTime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    fn entry(user: &str, score: u64) -> Value {
        json!({"userId": user, "bureau": "experian", "score": score,
               "reportedAt": "2026-11-28T09:00:00Z"})
    }

    fn body(items: Vec<Value>) -> Vec<u8> {
        json!({ "items": items }).to_string().into_bytes()
    }

    fn validation_fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(v) => v.0.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn validates_each_entry_on_its_own() {
        let items = vec![
            entry("alice", 700),
            entry("bob", 1000),
            json!({"userId": "carol", "bureau": "equifax", "score": 1000,
                   "reportedAt": "2026-11-28T09:00:00Z", "reportId": "r-1"}),
        ];
        let verdicts = parse_batch_body(&body(items), NOW).unwrap();
        assert!(verdicts[0].is_ok());
        let rejected = verdicts[1].as_ref().unwrap_err();
        assert_eq!(rejected.errors.fields().collect::<Vec<_>>(), ["score"]);
        assert_eq!(verdicts[2].as_ref().unwrap().report_id.as_str(), "r-1");
    }

    #[test]
    fn names_every_bad_field_of_an_entry_and_keeps_its_report_id() {
        let item = json!({"userId": "a#b", "bureau": "fico", "score": "7",
                          "reportedAt": "soon", "reportId": "keep-me", "extra": 1});
        let rejected = parse_entry(item, NOW).unwrap_err();
        let mut fields: Vec<&str> = rejected.errors.fields().collect();
        fields.sort_unstable();
        assert_eq!(fields, ["bureau", "extra", "reportedAt", "score", "userId"]);
        assert_eq!(rejected.report_id.unwrap().as_str(), "keep-me");
    }

    #[test]
    fn rejects_an_entry_that_is_not_an_object() {
        let rejected = parse_entry(json!([1, 2]), NOW).unwrap_err();
        assert_eq!(rejected.errors.fields().collect::<Vec<_>>(), ["entry"]);
    }

    #[test]
    fn rejects_an_empty_batch() {
        let err = parse_batch_body(&body(vec![]), NOW).unwrap_err();
        assert_eq!(validation_fields(err), ["items"]);
    }

    #[test]
    fn rejects_more_than_500_entries() {
        let err = parse_batch_body(&body(vec![entry("u", 1); 501]), NOW).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(validation_fields(err), ["items"]);
        assert_eq!(
            parse_batch_body(&body(vec![entry("u", 1); 500]), NOW)
                .unwrap()
                .len(),
            500
        );
    }

    #[test]
    fn rejects_missing_items_and_unknown_top_level_fields() {
        let err = parse_batch_body(br#"{"itemz":[]}"#, NOW).unwrap_err();
        assert_eq!(validation_fields(err), ["itemz"]);
        let err = parse_batch_body(br#"{}"#, NOW).unwrap_err();
        assert_eq!(validation_fields(err), ["items"]);
        let err = parse_batch_body(br#"{"items":{}}"#, NOW).unwrap_err();
        assert_eq!(validation_fields(err), ["items"]);
        assert!(matches!(
            parse_batch_body(b"[]", NOW),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[test]
    fn assembles_accepted_rejected_and_failed_entries_in_order() {
        let verdicts = parse_batch_body(
            &body(vec![
                entry("a", 1),
                entry("b", 5000),
                entry("c", 2),
                entry("d", 3),
            ]),
            NOW,
        )
        .unwrap();
        let throttled = NotEnqueued::Unavailable("RequestThrottled: slow down".into());
        // The queue answered for a and c only; d must not be reported as accepted.
        let result = assemble(verdicts, &[Ok(()), Err(throttled)]);
        let statuses: Vec<BatchItemStatus> = result.items.iter().map(|i| i.status).collect();
        assert_eq!(
            statuses,
            [
                BatchItemStatus::Accepted,
                BatchItemStatus::Rejected,
                BatchItemStatus::Failed,
                BatchItemStatus::Failed
            ]
        );
        assert_eq!((result.accepted, result.rejected, result.failed), (1, 1, 2));
        assert_eq!(result.items[2].code.as_deref(), Some("QueueUnavailable"));
        assert_eq!(result.items[2].retryable, Some(true));
        assert_eq!(result.items[3].code.as_deref(), Some("QueueUnavailable"));
        let answered = serde_json::to_string(&result).unwrap();
        assert!(
            !answered.contains("RequestThrottled") && !answered.contains("slow down"),
            "the queue's own account reached the client: {answered}"
        );
        assert_eq!(result.status(), StatusCode::MULTI_STATUS);
    }

    #[test]
    fn all_accepted_is_202() {
        let verdicts = parse_batch_body(&body(vec![entry("a", 1)]), NOW).unwrap();
        assert_eq!(assemble(verdicts, &[Ok(())]).status(), StatusCode::ACCEPTED);
    }

    #[test]
    fn the_openapi_document_describes_the_batch_endpoint() {
        let doc = crate::api::docs::openapi_json();
        let post = &doc["paths"]["/v1/credit-scores/batch"]["post"];
        for status in ["202", "207", "403", "413", "422"] {
            assert!(
                post["responses"][status].is_object(),
                "no {status} in {post}"
            );
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["BatchRequestBody"]["properties"]["items"]["maxItems"],
            500
        );
        assert!(schemas["BatchResponse"].is_object());
    }

    #[test]
    fn names_the_source_after_the_calling_service() {
        assert_eq!(
            batch_source("bureau-importer"),
            MessageSource::Batch("bureau-importer".into())
        );
        assert_eq!(
            batch_source("has space"),
            MessageSource::Batch("http".into())
        );
    }
}
