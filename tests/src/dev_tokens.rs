//! Development tokens: HS256 JWTs signed with a local secret. Used by the test stub and the
//! dev-only User Service stand-in; never deployed.

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SECRET: &str = "dev-only-secret-do-not-deploy";

/// Appends `token` to `MINTED_TOKENS_FILE` when it is set (`make test` sets it): after the
/// suite, scripts/scan-test-logs.py fails the run if any captured log holds one of them.
pub fn record_minted_token(token: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("MINTED_TOKENS_FILE") else {
        return;
    };
    // One short append per token: concurrent tests' lines do not interleave.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{token}\n").as_bytes()));
    if let Err(e) = appended {
        panic!(
            "recording a minted token in {}: {e}",
            path.to_string_lossy()
        );
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevClaims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
}

#[derive(Clone)]
pub struct DevTokens {
    secret: Vec<u8>,
}

impl Default for DevTokens {
    /// The secret in `DEV_TOKEN_SECRET`, or a fixed development one.
    fn default() -> Self {
        let secret =
            std::env::var("DEV_TOKEN_SECRET").unwrap_or_else(|_| DEFAULT_SECRET.to_owned());
        Self::new(secret.as_bytes())
    }
}

impl DevTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    pub fn mint(&self, sub: &str, scopes: &[&str], ttl: Duration) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = DevClaims {
            sub: sub.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iss: "dev-user-service".into(),
        };
        let key = EncodingKey::from_secret(&self.secret).expect("any byte string is an HS256 key");
        let token = encode(&Header::new(Algorithm::HS256), &claims, &key)
            .expect("HS256 signing of a small claims set cannot fail");
        record_minted_token(&token);
        token
    }

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Result<DevClaims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_issuer(&["dev-user-service"]);
        let key = DecodingKey::from_secret(&self.secret)?;
        decode::<DevClaims>(token, &key, &validation).map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_carry_scopes() {
        let tokens = DevTokens::new(b"s");
        let claims = tokens
            .verify(&tokens.mint("alice", &["a", "b"], Duration::from_secs(60)))
            .unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.scope, "a b");
    }

    #[test]
    fn tokens_signed_with_another_secret_fail() {
        let token = DevTokens::new(b"one").mint("alice", &[], Duration::from_secs(60));
        assert!(DevTokens::new(b"two").verify(&token).is_err());
    }
}
