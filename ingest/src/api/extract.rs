//! What handlers read from a request, each an extractor whose rejection is an [`ApiError`]
//! (axum's `customize-extractor-error` pattern): the authenticated caller, the path's ids, the
//! query pairs, the body within its limit and of a JSON type, the correlation id. The ports
//! get what these read, never the request: [`bearer_token`] is where the token leaves HTTP.
//!
//! Extractors run in the order a handler lists them and the body last, so the order of the
//! checks (401, 400 path, 403, 413, 415, ...) is the order of the parameters; the extractors
//! that authorize ([`AuthorizedUser`], [`AuthorizedReport`], [`ServiceCaller`]) do it before
//! the query or the body is read.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use contract::{ReportId, UserId};

use super::error::ApiError;
use crate::auth::{AuthError, BearerToken, GatewayClaims, Principal};
use crate::state::AppState;

/// Largest body accepted (413 above it); the batch route has its own, larger one.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), in the auth port's
/// terms: no header is [`AuthError::Missing`], anything else unreadable
/// [`AuthError::Malformed`].
pub fn bearer_token(headers: &HeaderMap) -> Result<BearerToken, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            BearerToken::parse(token.trim())
        }
        _ => Err(AuthError::Malformed),
    }
}

/// The caller, authenticated from the bearer token and, behind API Gateway's JWT authorizer,
/// the claims it verified (which only the Lambda front end sets).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        let gateway = parts.extensions.get::<GatewayClaims>();
        Ok(state.auth.authenticate(&token, gateway).await?)
    }
}

/// A caller with the service scope: 401 unauthenticated, 403 without the scope.
pub struct ServiceCaller(pub Principal);

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_service()?;
        Ok(Self(principal))
    }
}

/// The `{userId}` of the path, or a 400 naming it.
pub struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_field("userId", e.body_text()))?;
        UserId::parse(&raw)
            .map(Self)
            .map_err(|e| ApiError::bad_field(e.field, e.message))
    }
}

/// The path's user, whom the caller may act for: the caller authenticated (401), the path's
/// user (400), the caller allowed to act for them (403), in that order.
pub struct AuthorizedUser(pub UserId);

impl FromRequestParts<AppState> for AuthorizedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let UserPath(user) = UserPath::from_request_parts(parts, state).await?;
        principal.authorize_for(&user)?;
        Ok(Self(user))
    }
}

/// The `{userId}` and `{reportId}` of the path, a 400 naming each bad one.
pub struct ReportPath {
    pub user: UserId,
    pub report: ReportId,
}

impl ReportPath {
    fn parse(user: &str, report: &str) -> Result<Self, ApiError> {
        match (UserId::parse(user), ReportId::parse(report)) {
            (Ok(user), Ok(report)) => Ok(Self { user, report }),
            (user, report) => Err(ApiError::bad_fields(
                [user.err(), report.err()].into_iter().flatten().collect(),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReportPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((user, report)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_field("path", e.body_text()))?;
        Self::parse(&user, &report)
    }
}

/// The path's report, of a user the caller may act for: 401, then 400 naming each bad id,
/// then 403.
pub struct AuthorizedReport(pub ReportPath);

impl FromRequestParts<AppState> for AuthorizedReport {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let path = ReportPath::from_request_parts(parts, state).await?;
        principal.authorize_for(&path.user)?;
        Ok(Self(path))
    }
}

/// The query's name-value pairs as sent, in order, repeats included: each operation says
/// which it takes.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| Self(pairs))
            .map_err(|e| ApiError::bad_field("query", e.body_text()))
    }
}

/// The body, at most `LIMIT` bytes (the route's body limit, which the 413 names), sent with
/// a JSON content type (415). An over-limit body is a 413 problem rather than axum's plain
/// text, and it is reported before a wrong content type.
pub struct JsonBody<const LIMIT: usize = MAX_BODY_BYTES>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for JsonBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = require_json(request.headers());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit: LIMIT }
                } else {
                    ApiError::bad_field("body", rejection.body_text())
                }
            })?;
        json?;
        Ok(Self(body))
    }
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

    fn with_authorization(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_missing_or_malformed_authorization_header_is_no_bearer_token() {
        assert!(matches!(
            bearer_token(&HeaderMap::new()),
            Err(AuthError::Missing)
        ));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer ab\"c",
            "token",
        ] {
            assert!(
                matches!(
                    bearer_token(&with_authorization(bad)),
                    Err(AuthError::Malformed)
                ),
                "{bad}"
            );
        }
        assert!(bearer_token(&with_authorization("bearer abc.def.ghi")).is_ok());
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
    fn names_both_bad_path_ids() {
        let Err(ApiError::BadRequest { errors, .. }) = ReportPath::parse("a b", "r#1") else {
            panic!("expected a 400");
        };
        let fields: Vec<String> = errors.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["userId", "reportId"]);
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
