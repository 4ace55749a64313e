//! What every handler reads from a request the same way: the path's user, the body within
//! its limit, a JSON content type, the correlation id. Each failure is an [`ApiError`].

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use contract::UserId;

use super::error::ApiError;

/// Largest body accepted (413 above it); the batch route has its own, larger one.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

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

/// The caller's correlation id when it is sane (1 to 128 visible ASCII characters), else
/// `fallback` (API Gateway's request id) when that is, else a fresh one.
pub fn correlation_id(headers: &HeaderMap, fallback: Option<&str>) -> String {
    let sane =
        |v: &&str| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(sane)
        .or(fallback.filter(sane))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
        assert_eq!(correlation_id(&h, Some("gw-1")), "abc-123");
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("has space"));
        assert_ne!(correlation_id(&h, None), "has space");
        assert_eq!(correlation_id(&h, Some("gw-1")), "gw-1");
        assert_eq!(correlation_id(&HeaderMap::new(), Some("gw-1")), "gw-1");
        assert_eq!(correlation_id(&HeaderMap::new(), None).len(), 26);
    }
}
