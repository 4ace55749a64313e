//! The bearer token, what it claims, the [`AuthError`] of this boundary and the
//! [`TokenValidator`] port. Knows headers (where the token comes from), not HTTP statuses.

use std::fmt;

use async_trait::async_trait;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The raw bearer token of a request.
#[derive(Clone)]
pub struct BearerToken(pub(super) String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// Reads `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 token chars).
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        let well_formed = scheme.eq_ignore_ascii_case("bearer")
            && !token.is_empty()
            && token.len() <= 8192
            && token
                .trim_end_matches('=')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if well_formed {
            Ok(Self(token.to_owned()))
        } else {
            Err(AuthError::Malformed)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization: Bearer header")]
    Missing,
    #[error("the Authorization header is not a well-formed Bearer token")]
    Malformed,
    #[error("the token's claims cannot be decoded")]
    Undecodable,
    #[error("the User Service rejected the token with {0}")]
    Rejected(StatusCode),
    #[error("the User Service could not validate the token")]
    Unavailable(#[source] anyhow::Error),
    #[error("the token does not belong to this user")]
    NotThisUser,
    #[error("this endpoint needs the service scope")]
    NotAService,
}

/// The claims we use. Other claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    pub scopes: Vec<String>,
    /// Seconds since the epoch.
    pub expires_at: Option<i64>,
}

/// Decodes a JWT's payload without checking its signature: the User Service validated it.
pub fn decode_claims(token: &BearerToken, user_claim: &str) -> Result<Claims, AuthError> {
    let mut parts = token.0.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Undecodable);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| AuthError::Undecodable)?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Undecodable)?;
    let subject = claims
        .get(user_claim)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Undecodable)?
        .to_owned();
    // OAuth puts scopes in `scope` (space separated); some issuers use `scp` (a list).
    let mut scopes: Vec<String> = claims
        .get("scope")
        .and_then(|v| v.as_str())
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(list) = claims.get("scp").and_then(|v| v.as_array()) {
        scopes.extend(list.iter().filter_map(|s| s.as_str().map(str::to_owned)));
    }
    let expires_at = claims.get("exp").and_then(|v| v.as_i64());
    Ok(Claims {
        subject,
        scopes,
        expires_at,
    })
}

/// The port to whatever validates tokens.
#[async_trait]
pub trait TokenValidator: Send + Sync {
    async fn validate(&self, token: &BearerToken) -> Result<(), AuthError>;
}
