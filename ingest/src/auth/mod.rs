//! Authentication and authorization, exactly as docs/architecture.md and docs/auth.md say.
//! How a token is checked depends on `AUTH_MODE` ([`TokenCheck`]):
//!
//! * `user-service` (default): no or malformed `Authorization: Bearer` header: 401, the User
//!   Service is not called; it answers 200/204: valid; 401/403: passed back as they are;
//!   anything else, a timeout or a refused connection: 503. Fail closed, never open. The user
//!   id comes from the token's claims (validated upstream, so decoding suffices); positive
//!   validations may be cached briefly, never past `exp`; negatives never.
//! * `jwks`: the token is verified here against the issuer's key set ([`JwksVerifier`]):
//!   signature, `iss`, `exp`/`nbf`/`iat`, audience or client id, `token_use`; each failure a
//!   401 naming the check; keys unavailable: 503.
//!
//! Either way callers act only for themselves unless their token carries the service scope
//! (or, when configured, belongs to the service group in `cognito:groups`).
//!
//! Tokens never reach a log: [`BearerToken`]'s `Debug` hides it and nothing formats it.
//!
//! This port knows no HTTP: the API edge reads the bearer token and the gateway's claims
//! from the request (`api/extract.rs`) and maps each [`AuthError`] to a status
//! (`api/error.rs`).

use std::sync::Arc;

use contract::UserId;

mod cache;
mod https;
mod jwks;
pub mod jwks_settings;
mod ring_verify;
mod token;
mod user_service;

pub use cache::ValidationCache;
pub use jwks::{JwksConfig, JwksVerifier, TokenVerifier};
pub use ring_verify::RING_VERIFY_ONLY;
pub use token::{
    claims_from, decode_claims, AuthError, BearerToken, Claims, Rejection, TokenValidator,
};
pub use user_service::UserServiceValidator;

/// Who the caller is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub is_service: bool,
}

impl Principal {
    /// A user may act only for their own id; a service-scope caller for anyone.
    pub fn authorize_for(&self, user: &UserId) -> Result<(), AuthError> {
        if self.is_service || self.subject == user.as_str() {
            Ok(())
        } else {
            Err(AuthError::NotThisUser)
        }
    }

    pub fn require_service(&self) -> Result<(), AuthError> {
        if self.is_service {
            Ok(())
        } else {
            Err(AuthError::NotAService)
        }
    }
}

/// How a token is checked (`AUTH_MODE`).
pub enum TokenCheck {
    /// Asked of the User Service, positive answers cached per `cache`.
    UserService {
        validator: Arc<dyn TokenValidator>,
        cache: ValidationCache,
    },
    /// Verified locally (`jwks`).
    Local(Arc<dyn TokenVerifier>),
    /// Verified by API Gateway's JWT authorizer (`apigateway-jwt`): the claims it passed in
    /// the request context ([`GatewayClaims`]) are trusted.
    Gateway,
}

/// The claims API Gateway's JWT authorizer verified, from the Lambda event's request
/// context (`requestContext.authorizer.jwt.claims`). Only the Lambda front end sets it,
/// from the event; no request header can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayClaims(pub serde_json::Map<String, serde_json::Value>);

impl GatewayClaims {
    /// API Gateway passes every claim as a string: numbers as digits, lists as `[a b]`.
    /// They are read back into the JSON types the claim rules expect.
    pub fn from_authorizer(claims: &std::collections::HashMap<String, String>) -> Self {
        let value = |name: &str, text: &str| -> serde_json::Value {
            match name {
                "exp" | "iat" | "nbf" | "auth_time" => text
                    .parse::<i64>()
                    .map_or_else(|_| text.into(), serde_json::Value::from),
                "scp" | "cognito:groups" | "aud"
                    if text.starts_with('[') && text.ends_with(']') =>
                {
                    let inner = &text[1..text.len() - 1];
                    inner
                        .split_whitespace()
                        .map(serde_json::Value::from)
                        .collect()
                }
                _ => text.into(),
            }
        };
        Self(
            claims
                .iter()
                .map(|(name, text)| (name.clone(), value(name, text)))
                .collect(),
        )
    }
}

/// Everything needed to turn a bearer token into a [`Principal`].
pub struct Authenticator {
    pub check: TokenCheck,
    pub user_claim: String,
    pub service_scope: String,
    /// A `cognito:groups` entry that counts as the service scope (`AUTH_SERVICE_GROUP`).
    pub service_group: Option<String>,
}

impl Authenticator {
    /// In `jwks` mode, fetches the key set before the first request (Lambda init, server
    /// start). A failure is logged, not fatal: requests then get 503 until the issuer answers.
    pub async fn warm_up(&self) {
        if let TokenCheck::Local(verifier) = &self.check {
            if let Err(error) = verifier.warm_up().await {
                tracing::warn!(error = %format!("{error:#}"), "could not load the token issuer's keys at start; requests get 503 until it answers");
            }
        }
    }

    /// `gateway` is what API Gateway's authorizer verified, when there is one; only the
    /// `apigateway-jwt` check reads it.
    pub async fn authenticate(
        &self,
        token: &BearerToken,
        gateway: Option<&GatewayClaims>,
    ) -> Result<Principal, AuthError> {
        let claims = match &self.check {
            TokenCheck::UserService { validator, cache } => {
                // Claims first: a token we cannot read can never be authorized, so the
                // User Service is spared the call.
                let claims = decode_claims(token, &self.user_claim)?;
                if !cache.is_valid(token) {
                    validator.validate(token).await?;
                    cache.remember(token, claims.expires_at);
                }
                claims
            }
            TokenCheck::Local(verifier) => verifier.verify(token, &self.user_claim).await?,
            // The authorizer refuses a request without a valid token before it reaches us;
            // no claims here means no authorizer is in front, which must never pass.
            TokenCheck::Gateway => match gateway {
                Some(GatewayClaims(claims)) => claims_from(claims, &self.user_claim)?,
                None => return Err(AuthError::NoGatewayClaims),
            },
        };
        let in_service_group = self
            .service_group
            .as_ref()
            .is_some_and(|group| claims.groups.contains(group));
        Ok(Principal {
            is_service: in_service_group || claims.scopes.contains(&self.service_scope),
            subject: claims.subject,
        })
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn api_gateways_string_claims_are_read_back_as_the_types_the_rules_expect() {
        let passed: HashMap<String, String> = [
            ("sub", "alice"),
            ("exp", "1795860000"),
            ("scope", "credit-scores:service openid"),
            ("cognito:groups", "[ops admins]"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let GatewayClaims(claims) = GatewayClaims::from_authorizer(&passed);
        let read = claims_from(&claims, "sub").expect("readable");
        assert_eq!(read.subject, "alice");
        assert_eq!(read.expires_at, Some(1_795_860_000));
        assert!(read.scopes.contains(&"credit-scores:service".to_owned()));
        assert_eq!(read.groups, ["ops", "admins"]);
    }

    #[tokio::test]
    async fn the_gateway_check_refuses_a_request_that_brought_no_verified_claims() {
        let auth = Authenticator {
            check: TokenCheck::Gateway,
            user_claim: "sub".into(),
            service_scope: "credit-scores:service".into(),
            service_group: None,
        };
        let token = BearerToken::parse("a.b.c").expect("well formed");
        assert!(matches!(
            auth.authenticate(&token, None).await,
            Err(AuthError::NoGatewayClaims)
        ));
        let claims = GatewayClaims(
            serde_json::json!({"sub": "bob"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let principal = auth
            .authenticate(&token, Some(&claims))
            .await
            .expect("trusted");
        assert_eq!(principal.subject, "bob");
        assert!(!principal.is_service);
    }
}

#[cfg(test)]
mod tests {
    use super::cache::time_left_until;
    use super::*;
    use base64::Engine;
    use std::time::{Duration, Instant};

    fn jwt(payload: serde_json::Value) -> String {
        let enc = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            enc(&serde_json::json!({"alg":"HS256"})),
            enc(&payload)
        )
    }

    #[test]
    fn a_token_of_other_than_rfc_6750_characters_is_malformed() {
        for bad in ["", "a b", "ab\"c", "a,b", "=abc"] {
            assert!(
                matches!(BearerToken::parse(bad), Err(AuthError::Malformed)),
                "{bad}"
            );
        }
        assert!(BearerToken::parse(&"a".repeat(BearerToken::MAX_CHARS + 1)).is_err());
        assert!(BearerToken::parse("abc.def-_~+/.ghi==").is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = BearerToken::parse("secret-token").unwrap();
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn decodes_subject_scopes_and_expiry() {
        let token = BearerToken(jwt(
            serde_json::json!({"sub":"alice","scope":"a credit-scores:service","exp":42}),
        ));
        let claims = decode_claims(&token, "sub").unwrap();
        assert_eq!(claims.subject, "alice");
        assert_eq!(claims.scopes, ["a", "credit-scores:service"]);
        assert_eq!(claims.expires_at, Some(42));
    }

    #[test]
    fn reads_the_configured_user_claim() {
        let token = BearerToken(jwt(serde_json::json!({"sub":"x","uid":"bob"})));
        assert_eq!(decode_claims(&token, "uid").unwrap().subject, "bob");
    }

    #[test]
    fn undecodable_payloads_are_rejected() {
        for bad in ["abc", "a.b", "a.!!!.c", "a.b.c.d"] {
            assert!(
                decode_claims(&BearerToken(bad.into()), "sub").is_err(),
                "{bad}"
            );
        }
        let no_sub = BearerToken(jwt(serde_json::json!({"name":"x"})));
        assert!(decode_claims(&no_sub, "sub").is_err());
    }

    #[test]
    fn users_act_only_for_themselves_unless_service() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let user = Principal {
            subject: "alice".into(),
            is_service: false,
        };
        assert!(user.authorize_for(&alice).is_ok());
        assert!(user.authorize_for(&bob).is_err());
        let service = Principal {
            subject: "importer".into(),
            is_service: true,
        };
        assert!(service.authorize_for(&bob).is_ok());
    }

    #[test]
    fn cache_never_outlives_the_token() {
        let cache = ValidationCache::new(Duration::from_secs(300));
        let token = BearerToken("t".into());
        let past = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
        cache.remember(&token, Some(past));
        assert!(!cache.is_valid(&token));
        cache.remember(&token, None);
        assert!(cache.is_valid(&token));
    }

    /// Found while testing the outage cache: the lifetime was counted from the current whole
    /// second, so a cached token could be served for up to a second past its `exp`.
    #[test]
    fn cache_ends_at_exp_to_the_subsecond() {
        let cache = ValidationCache::new(Duration::from_secs(300));
        let token = BearerToken("t".into());
        let now = time::OffsetDateTime::now_utc();
        let exp = now.unix_timestamp() + 1;
        cache.remember(&token, Some(exp));
        let exact = time::OffsetDateTime::from_unix_timestamp(exp).unwrap() - now;
        let until = cache.entries.lock().unwrap()[&token.fingerprint()];
        let cached_for = until.saturating_duration_since(Instant::now());
        assert!(
            cached_for <= Duration::try_from(exact).unwrap(),
            "cached for {cached_for:?}, exp in {exact}"
        );
    }

    #[test]
    fn expiry_arithmetic_never_overflows() {
        assert_eq!(time_left_until(i64::MIN), Duration::ZERO);
        assert!(time_left_until(i64::MAX) > Duration::from_secs(100 * 365 * 24 * 3600));
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = ValidationCache::new(Duration::ZERO);
        let token = BearerToken("t".into());
        cache.remember(&token, None);
        assert!(!cache.is_valid(&token));
    }
}
