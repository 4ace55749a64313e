//! Ingest configuration, from the environment.

use std::time::Duration;

use shared::settings::{http_url, millis, optional, parsed, required, SettingsError, Source};

use crate::cursor::CursorKey;

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub queue_url: String,
    pub table_name: String,
    pub port: u16,
    pub user_service_url: String,
    pub user_service_validate_path: String,
    pub user_service_timeout: Duration,
    /// How long a positive validation is reused; 0 turns the cache off. Never past `exp`.
    pub auth_cache_ttl: Duration,
    /// The claim holding the caller's user id.
    pub user_claim: String,
    /// The scope that lets a caller act for any user and use the batch endpoint.
    pub service_scope: String,
    pub sqs_send_timeout: Duration,
    /// Bounds every table read, SDK retries included; past it the client gets a 503.
    pub dynamodb_read_timeout: Duration,
    /// Signs list cursors (`CURSOR_SIGNING_KEY`, at least 32 bytes). Every instance behind
    /// one API must share it; unset, a random per-process key is used (local runs only).
    pub cursor_signing_key: Option<CursorKey>,
}

impl IngestSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        let path = optional(source, "USER_SERVICE_VALIDATE_PATH", "/validate");
        if !path.starts_with('/') {
            return Err(SettingsError::Invalid {
                name: "USER_SERVICE_VALIDATE_PATH",
                reason: "must start with /".into(),
            });
        }
        Ok(Self {
            queue_url: required(source, "QUEUE_URL")?,
            table_name: required(source, "TABLE_NAME")?,
            port: parsed(source, "PORT", 4112u16)?,
            user_service_url: http_url(source, "USER_SERVICE_URL")?,
            user_service_validate_path: path,
            user_service_timeout: millis(
                source,
                "USER_SERVICE_TIMEOUT_MS",
                Duration::from_secs(2),
            )?,
            auth_cache_ttl: Duration::from_secs(parsed(source, "AUTH_CACHE_TTL_SECONDS", 0u64)?),
            user_claim: optional(source, "AUTH_USER_CLAIM", "sub"),
            service_scope: optional(source, "AUTH_SERVICE_SCOPE", "credit-scores:service"),
            sqs_send_timeout: millis(source, "SQS_SEND_TIMEOUT_MS", Duration::from_secs(3))?,
            dynamodb_read_timeout: millis(
                source,
                "DYNAMODB_READ_TIMEOUT_MS",
                Duration::from_secs(3),
            )?,
            cursor_signing_key: source
                .get("CURSOR_SIGNING_KEY")
                .map(|secret| CursorKey::from_secret(&secret))
                .transpose()
                .map_err(|reason| SettingsError::Invalid {
                    name: "CURSOR_SIGNING_KEY",
                    reason,
                })?,
        })
    }

    pub fn user_service_endpoint(&self) -> String {
        format!(
            "{}{}",
            self.user_service_url, self.user_service_validate_path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 3] = [
        ("QUEUE_URL", "http://127.0.0.1:4566/000000000000/q"),
        ("TABLE_NAME", "t"),
        ("USER_SERVICE_URL", "http://127.0.0.1:4113"),
    ];

    #[test]
    fn defaults_are_sensible() {
        let s = IngestSettings::from_source(&BASE).unwrap();
        assert_eq!(s.port, 4112);
        assert_eq!(s.user_service_timeout, Duration::from_secs(2));
        assert_eq!(s.auth_cache_ttl, Duration::ZERO);
        assert_eq!(s.user_claim, "sub");
        assert_eq!(s.user_service_endpoint(), "http://127.0.0.1:4113/validate");
    }

    #[test]
    fn a_short_cursor_signing_key_is_refused_without_echoing_it() {
        let mut env = BASE.to_vec();
        env.push(("CURSOR_SIGNING_KEY", "hunter2"));
        let env: [(&str, &str); 4] = env.try_into().unwrap();
        let err = IngestSettings::from_source(&env).unwrap_err();
        assert!(matches!(
            err,
            SettingsError::Invalid {
                name: "CURSOR_SIGNING_KEY",
                ..
            }
        ));
        assert!(!err.to_string().contains("hunter2"));
        assert!(IngestSettings::from_source(&BASE)
            .unwrap()
            .cursor_signing_key
            .is_none());
    }

    #[test]
    fn names_the_missing_user_service_url() {
        let env = [("QUEUE_URL", "q"), ("TABLE_NAME", "t")];
        assert_eq!(
            IngestSettings::from_source(&env).unwrap_err(),
            SettingsError::Missing("USER_SERVICE_URL")
        );
    }
}
