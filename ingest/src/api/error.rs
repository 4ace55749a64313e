//! The one place errors become HTTP: RFC 9457 problem details, logged once, here. The
//! errors of the ports (auth, reads) are mapped to statuses here too, so they know nothing
//! of HTTP.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use contract::{FieldError, ValidationErrors};
use platform::metrics::{self, names};
use platform::telemetry::ErrorChain;
use serde::Serialize;

use crate::auth::{AuthError, Rejection};
use crate::reads::ReadError;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request as a whole is unreadable (not JSON, a bad path or header value).
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The body is JSON but its fields break the contract.
    #[error("validation failed: {0}")]
    Validation(#[from] ValidationErrors),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// A dependency (User Service, SQS, DynamoDB) failed; the client may retry.
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: anyhow::Error,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        Self::BadRequest {
            detail: error.to_string(),
            errors: vec![error],
        }
    }

    /// A 400 naming every field in `errors`.
    pub fn bad_fields(errors: Vec<FieldError>) -> Self {
        Self::BadRequest {
            detail: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            errors,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's kind (the last segment of its `type` URI) and its title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => ("bad-request", "The request is malformed"),
            Self::Validation(_) => ("validation-error", "The request failed validation"),
            Self::Unauthorized(_) => ("unauthorized", "Authentication is required"),
            Self::Forbidden(_) => ("forbidden", "Not allowed"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "The body is too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Unavailable { .. } => ("service-unavailable", "Temporarily unavailable"),
            Self::Internal(_) => ("internal-error", "Internal error"),
        }
    }

    /// What the client reads. 5xx never carry internals.
    fn public_detail(&self) -> String {
        match self {
            Self::Unavailable { what, .. } => {
                format!("{what} is unavailable; retry later (a write retried with the same Idempotency-Key is stored once)")
            }
            Self::Internal(_) => "an unexpected error occurred".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The `Rejections` reason of a failed authentication (`auth:<kind>`); None when the request
/// was not rejected but could not be judged (the User Service is down: a 503).
fn auth_reason(error: &AuthError) -> Option<&'static str> {
    Some(match error {
        AuthError::Missing => "auth:missing",
        AuthError::Malformed => "auth:malformed",
        AuthError::Undecodable => "auth:undecodable",
        AuthError::Refused => "auth:refused",
        AuthError::NotAccepted => "auth:invalid",
        AuthError::Unavailable(_) | AuthError::KeysUnavailable(_) => return None,
        AuthError::Invalid(rejection) => rejection_reason(*rejection),
        AuthError::NoGatewayClaims => "auth:no-gateway-claims",
        AuthError::NotThisUser => "auth:not-this-user",
        AuthError::NotAService => "auth:not-a-service",
    })
}

/// `auth:<check>` for a token that local verification (`AUTH_MODE=jwks`) refused.
fn rejection_reason(rejection: Rejection) -> &'static str {
    match rejection {
        Rejection::Expired => "auth:expired",
        Rejection::NotYetValid => "auth:not-yet-valid",
        Rejection::IssuedInTheFuture => "auth:issued-in-the-future",
        Rejection::WrongIssuer => "auth:wrong-issuer",
        Rejection::WrongAudience => "auth:wrong-audience",
        Rejection::WrongTokenUse => "auth:wrong-token-use",
        Rejection::AlgorithmNotAllowed => "auth:algorithm-not-allowed",
        Rejection::NoKeyId => "auth:no-key-id",
        Rejection::UnknownKey => "auth:unknown-key",
        Rejection::BadSignature => "auth:bad-signature",
        Rejection::MissingClaim => "auth:missing-claim",
        Rejection::MalformedClaim => "auth:malformed-claim",
        Rejection::Unreadable => "auth:unreadable",
    }
}

/// The `Rejections` reasons of a 4xx, one per problem: `validation:<field>` for each bad
/// field (indexes dropped, so `entries[7].score` counts as `entries[].score`; unknown members
/// as `validation:unknown-field`, since clients choose their names), else the problem kind.
/// Authentication failures are counted where they are known ([`auth_reason`]).
fn rejection_reasons(error: &ApiError) -> Vec<String> {
    match error {
        ApiError::Validation(v) => v.0.iter().map(field_reason).collect(),
        ApiError::Unauthorized(_) | ApiError::Forbidden(_) => Vec::new(),
        other if other.status().is_client_error() => vec![other.kind().0.to_owned()],
        _ => Vec::new(),
    }
}

fn field_reason(error: &FieldError) -> String {
    if error.message == "is not a known field" {
        return "validation:unknown-field".to_owned();
    }
    let mut field = String::with_capacity(error.field.len());
    let mut in_index = false;
    for c in error.field.chars() {
        match c {
            '[' => {
                in_index = true;
                field.push('[');
            }
            ']' => {
                in_index = false;
                field.push(']');
            }
            _ if in_index => {}
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') => field.push(c),
            _ => return "validation:other".to_owned(),
        }
    }
    if field.is_empty() || field.len() > 64 {
        return "validation:other".to_owned();
    }
    format!("validation:{field}")
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let Some(reason) = auth_reason(&error) {
            metrics::count_by(names::REJECTIONS, "Reason", reason.to_owned(), 1);
        }
        match error {
            AuthError::Missing => ApiError::Unauthorized("a Bearer token is required"),
            AuthError::Malformed => ApiError::Unauthorized("the Authorization header is malformed"),
            AuthError::Undecodable => ApiError::Unauthorized("the token cannot be decoded"),
            AuthError::Refused => ApiError::Forbidden("the User Service refused this token"),
            AuthError::NotAccepted => ApiError::Unauthorized("the token is not valid"),
            AuthError::Unavailable(source) => ApiError::Unavailable {
                what: "the User Service",
                source,
            },
            AuthError::Invalid(rejection) => ApiError::Unauthorized(rejection.detail()),
            AuthError::NoGatewayClaims => {
                ApiError::Unauthorized("the request did not pass API Gateway's JWT authorizer")
            }
            AuthError::KeysUnavailable(source) => ApiError::Unavailable {
                what: "the token issuer's key set",
                source,
            },
            AuthError::NotThisUser => ApiError::Forbidden("the token does not belong to this user"),
            AuthError::NotAService => ApiError::Forbidden("this endpoint needs the service scope"),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Unavailable(source) => ApiError::Unavailable {
                what: "the score table",
                source,
            },
            ReadError::Corrupt(e) => ApiError::Internal(e.into()),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[schema(example = "urn:credit-scores:problem:validation-error")]
    #[serde(rename = "type")]
    pub problem_type: String,
    #[schema(example = "The request failed validation")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "score: must be between 0 and 999 for bureau experian")]
    pub detail: String,
    /// For validation problems: each failing field and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %ErrorChain(&self), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request rejected");
            for reason in rejection_reasons(&self) {
                metrics::count_by(names::REJECTIONS, "Reason", reason, 1);
            }
        }
        let errors = match &self {
            Self::Validation(v) => v.0.clone(),
            Self::BadRequest { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let (slug, title) = self.kind();
        let problem = Problem {
            problem_type: format!("urn:credit-scores:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.public_detail(),
            errors,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        response
    }
}
