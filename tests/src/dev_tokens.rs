//! Development tokens: HS256 JWTs signed with a local secret. Used by the test stub and the
//! dev-only User Service stand-in; never deployed.
//!
//! Signed and checked with `hmac` directly rather than `jsonwebtoken`: the workspace builds
//! `jsonwebtoken` without a crypto backend, so ingest's verify-only ring provider (which
//! refuses HMAC) is the one every test exercises, as in production.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = Hmac<sha2::Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// HS256 over `message` with `secret`: the JWS signature, base64url.
pub fn hs256(secret: &[u8], message: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    b64().encode(mac.finalize().into_bytes())
}

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
        let claims = serde_json::to_string(&claims).expect("claims serialise");
        let message = format!("{}.{}", b64().encode(HEADER), b64().encode(claims));
        let signature = hs256(&self.secret, &message);
        let token = format!("{message}.{signature}");
        record_minted_token(&token);
        token
    }

    /// Checks the header, signature (constant time), issuer and expiry (5 s leeway).
    pub fn verify(&self, token: &str) -> Result<DevClaims, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let header: serde_json::Value = b64()
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or("unreadable header")?;
        if header["alg"] != "HS256" {
            return Err("not HS256".into());
        }
        let signature = b64()
            .decode(signature)
            .map_err(|_| "unreadable signature")?;
        let mut mac = HmacSha256::new_from_slice(&self.secret).map_err(|e| e.to_string())?;
        mac.update(format!("{}.{payload}", token.split('.').next().unwrap_or_default()).as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| "bad signature".to_owned())?;
        let claims: DevClaims = b64()
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or("unreadable claims")?;
        if claims.iss != "dev-user-service" {
            return Err("wrong issuer".into());
        }
        if claims.exp + 5 < time::OffsetDateTime::now_utc().unix_timestamp() {
            return Err("expired".into());
        }
        Ok(claims)
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
    fn expired_and_tampered_tokens_fail() {
        let tokens = DevTokens::new(b"s");
        let expired = tokens.mint("alice", &[], Duration::ZERO);
        std::thread::sleep(Duration::from_millis(10));
        assert!(tokens.verify(&expired).is_ok(), "within the 5 s leeway");
        let token = tokens.mint("alice", &[], Duration::from_secs(60));
        let mut parts: Vec<&str> = token.split('.').collect();
        let bob =
            b64().encode(r#"{"sub":"bob","exp":99999999999,"iat":0,"iss":"dev-user-service"}"#);
        parts[1] = &bob;
        assert!(tokens.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn tokens_signed_with_another_secret_fail() {
        let token = DevTokens::new(b"one").mint("alice", &[], Duration::from_secs(60));
        assert!(DevTokens::new(b"two").verify(&token).is_err());
    }
}
