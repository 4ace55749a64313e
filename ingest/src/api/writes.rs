//! `POST /v1/users/{userId}/credit-scores`: validate, authorize and enqueue one score.

use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contract::{MessageSource, ScoreMessage, ValidationErrors};
use serde::Serialize;

use super::bodies::{idempotency_key, parse_score_body};
use super::error::ApiError;
use super::extract::{AuthorizedUser, JsonBody};
use super::observe::CorrelationId;
use crate::idempotency::KeyedWrite;
use crate::state::AppState;

/// The answer to an accepted write: queued, not yet in the table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(example = "01JDQ6W8ZK3M5N7P9R1S3T5V7X")]
    pub report_id: String,
    #[schema(example = "accepted")]
    pub status: &'static str,
}

/// Validate, authorize and enqueue one score. 202 only once SQS has acknowledged it.
#[utoipa::path(post, path = "/v1/users/{userId}/credit-scores", tag = "scores",
    params(
        ("userId" = String, Path, description = "1..128 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,128}$", example = "alice"),
        ("Idempotency-Key" = Option<String>, Header, description = "Becomes the reportId (1..64 of [A-Za-z0-9_-]; `latest` is reserved); retry with the same key after a 503 and the score is stored once", pattern = "^[A-Za-z0-9_-]{1,64}$", example = "bureau-file-2026-11-28-000042"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Echoed back and carried through the queue"),
    ),
    request_body(content = super::bodies::ScoreWriteBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; the worker writes it shortly", body = Accepted,
            headers(("Location" = String, description = "Where the report can be read once written"))),
        (status = 400, description = "Malformed body, path or header", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed or rejected token", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token belongs to another user, or the User Service refused it", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not JSON", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the contract; each is named. Also an Idempotency-Key already used for a different stored write", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "User Service or queue unavailable; retry with the same Idempotency-Key", body = crate::api::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(userId, reportId))]
pub async fn submit_score(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation)): Extension<CorrelationId>,
    AuthorizedUser(user_id): AuthorizedUser,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let now = (state.now)();
    let key = idempotency_key(&headers)?;
    let keyed = key.is_some();
    let report = parse_score_body(user_id, key, &body, now)?;
    let span = tracing::Span::current();
    span.record("userId", tracing::field::display(&report.user_id));
    span.record("reportId", tracing::field::display(&report.report_id));

    let location = format!(
        "/v1/users/{}/credit-scores/{}",
        report.user_id, report.report_id
    );
    // A reused key: same write already stored is answered again, another write is a 422.
    let keyed_write = if keyed {
        crate::idempotency::check(state.stored_writes.as_ref(), &report).await
    } else {
        KeyedWrite::Enqueue
    };
    let already_stored = match keyed_write {
        KeyedWrite::Enqueue => false,
        KeyedWrite::AlreadyStored => true,
        KeyedWrite::UsedForAnotherWrite => {
            return Err(ApiError::Validation(ValidationErrors::single(
                "Idempotency-Key",
                "was already used for a different write (bureau, score or reportedAt differ); \
                 use a new key for a new write",
            )))
        }
    };
    let message = ScoreMessage {
        report,
        source: MessageSource::Api,
        received_at: Some(now),
    };
    if already_stored {
        tracing::info!("score already stored under this Idempotency-Key; not enqueued again");
    } else {
        let message_id = state
            .queue
            .enqueue(&message, &correlation)
            .await
            .map_err(|source| ApiError::Unavailable {
                what: "the score queue",
                source,
            })?;
        tracing::info!(messageId = %message_id, "score accepted");
        platform::metrics::count(platform::metrics::names::ACCEPTED_WRITES, 1);
    }

    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            report_id: message.report.report_id.to_string(),
            status: "accepted",
        }),
    )
        .into_response();
    let h = response.headers_mut();
    // Both values are made of validated [A-Za-z0-9_-] ids and visible ASCII.
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    Ok(response)
}
