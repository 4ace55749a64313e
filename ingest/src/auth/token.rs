//! The bearer token, what it claims, the [`AuthError`] of this boundary and the
//! [`TokenValidator`] port. Knows neither headers nor statuses: the API edge reads the token
//! from the request and maps each [`AuthError`] to a status (`api/error.rs`).

use std::fmt;

use async_trait::async_trait;
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
    /// The longest token accepted (Cognito's are under 2 kB).
    pub const MAX_CHARS: usize = 8192;

    /// A token as the credentials of `Authorization: Bearer` carry it: RFC 6750's token
    /// characters (trailing `=` padding allowed), at most [`Self::MAX_CHARS`].
    pub fn parse(token: &str) -> Result<Self, AuthError> {
        let well_formed = !token.is_empty()
            && token.len() <= Self::MAX_CHARS
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
    /// The request presented no bearer token.
    #[error("no bearer token was presented")]
    Missing,
    /// What was presented is not a well-formed bearer token.
    #[error("the credentials are not a well-formed bearer token")]
    Malformed,
    #[error("the token's claims cannot be decoded")]
    Undecodable,
    /// The User Service does not accept the token (it answered 401).
    #[error("the User Service does not accept the token")]
    NotAccepted,
    /// The User Service accepts the token but refuses its bearer (it answered 403).
    #[error("the User Service refuses the token's bearer")]
    Refused,
    #[error("the User Service could not validate the token")]
    Unavailable(#[source] anyhow::Error),
    /// Local verification (`AUTH_MODE=jwks`) refused the token: which check failed.
    #[error("{0}")]
    Invalid(Rejection),
    /// `AUTH_MODE=apigateway-jwt`, and the event carries no claims from API Gateway's JWT
    /// authorizer: the route has no authorizer in front.
    #[error("no claims verified by API Gateway's JWT authorizer came with the request")]
    NoGatewayClaims,
    /// The issuer's key set could not be fetched and no cached key fits the token.
    #[error("the token issuer's keys are unavailable")]
    KeysUnavailable(#[source] anyhow::Error),
    #[error("the token does not belong to this user")]
    NotThisUser,
    #[error("this endpoint needs the service scope")]
    NotAService,
}

/// Why a locally verified token was refused, in words a client can act on. Never carries
/// any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    NotYetValid,
    IssuedInTheFuture,
    WrongIssuer,
    WrongAudience,
    WrongTokenUse,
    AlgorithmNotAllowed,
    NoKeyId,
    UnknownKey,
    BadSignature,
    MissingClaim,
    MalformedClaim,
    Unreadable,
}

impl Rejection {
    /// The problem document's `detail`.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Expired => "the token has expired: get a new one",
            Self::NotYetValid => "the token is not valid yet (its nbf is in the future)",
            Self::IssuedInTheFuture => "the token's iat is in the future: check the issuer's clock",
            Self::WrongIssuer => "the token was not issued by the issuer this API trusts",
            Self::WrongAudience => "the token was issued for another audience or client",
            Self::WrongTokenUse => "the token's token_use is not the kind this API accepts",
            Self::AlgorithmNotAllowed => "the token's signing algorithm is not accepted",
            Self::NoKeyId => "the token's header names no signing key (kid)",
            Self::UnknownKey => "the token is signed with a key the issuer does not publish",
            Self::BadSignature => "the token's signature does not verify",
            Self::MissingClaim => "the token lacks a valid exp or iss claim",
            Self::MalformedClaim => "one of the token's registered claims has the wrong type",
            Self::Unreadable => "the token cannot be decoded",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

/// The claims we use. Other claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    pub scopes: Vec<String>,
    /// Cognito's `cognito:groups`, empty when absent.
    pub groups: Vec<String>,
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
    claims_from(&claims, user_claim)
}

/// The claims we use from a decoded payload: the user claim, the scopes (`scope` or `scp`),
/// Cognito's `cognito:groups` and `exp`.
pub fn claims_from(
    claims: &serde_json::Map<String, serde_json::Value>,
    user_claim: &str,
) -> Result<Claims, AuthError> {
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
    let groups = claims
        .get("cognito:groups")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let expires_at = claims.get("exp").and_then(|v| v.as_i64());
    Ok(Claims {
        subject,
        scopes,
        groups,
        expires_at,
    })
}

/// The port to whatever validates tokens.
#[async_trait]
pub trait TokenValidator: Send + Sync {
    async fn validate(&self, token: &BearerToken) -> Result<(), AuthError>;
}
