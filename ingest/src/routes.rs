//! Write and health handlers: extract, parse, call, respond.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use shared::{MessageSource, ScoreMessage, UserId};

use crate::error::ApiError;
use crate::idempotency::KeyedWrite;
use crate::write::{idempotency_key, parse_score_body};
use crate::{AppState, MAX_BODY_BYTES};

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// The answer to an accepted write: queued, not yet in the table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(example = "01JDQ6W8ZK3M5N7P9R1S3T5V7X")]
    pub report_id: String,
    #[schema(example = "accepted")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process serves requests. Dependencies are not called.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The service is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The path's user id, or a 400 naming it.
pub fn path_user(path: Result<Path<String>, PathRejection>) -> Result<UserId, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_field("userId", e.body_text()))?;
    UserId::parse(&raw).map_err(|e| ApiError::bad_field(e.field, e.message))
}

/// The body bytes, with an over-limit body as a 413 problem rather than axum's plain text.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body_bytes_within(body, MAX_BODY_BYTES)
}

/// [`body_bytes`] for a route with its own body limit (`limit` is what the 413 names).
pub fn body_bytes_within(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_field("body", rejection.body_text())
        }
    })
}

/// `application/json`, `application/*+json`, with or without parameters.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// The caller's correlation id when it is sane, else a fresh one.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

/// Validate, authorize and enqueue one score. 202 only once SQS has acknowledged it.
#[utoipa::path(post, path = "/v1/users/{userId}/credit-scores", tag = "scores",
    params(
        ("userId" = String, Path, description = "1..128 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,128}$", example = "alice"),
        ("Idempotency-Key" = Option<String>, Header, description = "Becomes the reportId (1..64 of [A-Za-z0-9_-]; `latest` is reserved); retry with the same key after a 503 and the score is stored once", pattern = "^[A-Za-z0-9_-]{1,64}$", example = "bureau-file-2026-11-28-000042"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Echoed back and carried through the queue"),
    ),
    request_body(content = crate::docs::ScoreWriteBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; the worker writes it shortly", body = Accepted,
            headers(("Location" = String, description = "Where the report can be read once written"))),
        (status = 400, description = "Malformed body, path or header", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed or rejected token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token belongs to another user, or the User Service refused it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the contract; each is named. Also an Idempotency-Key already used for a different stored write", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "User Service or queue unavailable; retry with the same Idempotency-Key", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user_id, report_id))]
pub async fn submit_score(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let user_id = path_user(path)?;
    principal.authorize_for(&user_id)?;
    let body = body_bytes(body)?;
    require_json(&headers)?;
    let now = (state.now)();
    let key = idempotency_key(&headers)?;
    let keyed = key.is_some();
    let report = parse_score_body(user_id, key, &body, now)?;
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(&report.user_id));
    span.record("report_id", tracing::field::display(&report.report_id));

    let location = format!(
        "/v1/users/{}/credit-scores/{}",
        report.user_id, report.report_id
    );
    let correlation = correlation_id(&headers);
    // A reused key: same write already stored is answered again, another write is a 422.
    let already_stored = keyed
        && crate::idempotency::check(state.stored_writes.as_ref(), &report).await?
            == KeyedWrite::AlreadyStored;
    let message = ScoreMessage {
        report,
        source: MessageSource::Api,
        received_at: Some(now),
    };
    if already_stored {
        tracing::info!("score already stored under this Idempotency-Key; not enqueued again");
    } else {
        state
            .queue
            .enqueue(&message, &correlation)
            .await
            .map_err(|source| ApiError::Unavailable {
                what: "the score queue",
                source,
            })?;
        tracing::info!("score accepted");
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
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        h.insert(CORRELATION_ID_HEADER, v);
    }
    Ok(response)
}

/// Unknown paths get a problem document too.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_content_type(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accepts_json_content_types_with_parameters() {
        assert!(require_json(&with_content_type("application/json")).is_ok());
        assert!(require_json(&with_content_type("Application/JSON; charset=utf-8")).is_ok());
        assert!(require_json(&with_content_type("application/merge-patch+json")).is_ok());
    }

    #[test]
    fn rejects_non_json_content_types() {
        assert!(require_json(&HeaderMap::new()).is_err());
        assert!(require_json(&with_content_type("text/plain")).is_err());
        assert!(require_json(&with_content_type("application/x-www-form-urlencoded")).is_err());
    }

    #[test]
    fn replaces_unsafe_correlation_ids() {
        let mut h = HeaderMap::new();
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(correlation_id(&h), "abc-123");
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("has space"));
        assert_ne!(correlation_id(&h), "has space");
    }
}
