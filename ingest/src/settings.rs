//! Ingest configuration, from the environment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::HeaderValue;

use shared::settings::{http_url, millis, optional, parsed, required, SettingsError, Source};

use crate::cursor::CursorKey;

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub queue_url: String,
    pub table_name: String,
    pub port: u16,
    /// Address to listen on in server mode: all interfaces by default (containers), loopback
    /// for a laptop (`make dev` sets 127.0.0.1).
    pub bind_address: IpAddr,
    /// Browser origins allowed to call the API cross-origin (server mode); empty means no CORS
    /// headers at all. Under API Gateway the HTTP API's CorsConfiguration does this instead.
    pub cors_allowed_origins: Vec<HeaderValue>,
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
            bind_address: parsed(source, "BIND_ADDRESS", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
            cors_allowed_origins: cors_origins(source)?,
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

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins, each `scheme://host[:port]` exactly as a
/// browser sends it in `Origin` (no path, no trailing slash, no wildcard).
fn cors_origins(source: &dyn Source) -> Result<Vec<HeaderValue>, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        name: "CORS_ALLOWED_ORIGINS",
        reason,
    };
    let Some(raw) = source.get("CORS_ALLOWED_ORIGINS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| {
                    invalid(format!("{origin:?} must start with https:// or http://"))
                })?;
            if rest.is_empty() || rest.contains(['/', '*', ' ', '?', '#']) {
                return Err(invalid(format!(
                    "{origin:?} must be an origin: scheme://host[:port], no path or wildcard"
                )));
            }
            HeaderValue::from_str(origin).map_err(|e| invalid(format!("{origin:?}: {e}")))
        })
        .collect()
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
        assert_eq!(s.bind_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(s.cors_allowed_origins.is_empty());
    }

    fn with(name: &'static str, value: &'static str) -> Result<IngestSettings, SettingsError> {
        let mut env: Vec<(&str, &str)> = BASE.to_vec();
        env.push((name, value));
        let env: [(&str, &str); 4] = env.try_into().unwrap();
        IngestSettings::from_source(&env)
    }

    #[test]
    fn reads_the_bind_address_and_names_a_bad_one() {
        assert_eq!(
            with("BIND_ADDRESS", "127.0.0.1").unwrap().bind_address,
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            with("BIND_ADDRESS", "::").unwrap().bind_address.to_string(),
            "::"
        );
        for bad in ["localhost", "127.0.0.1:80", "0.0.0.256"] {
            let err = with("BIND_ADDRESS", bad).unwrap_err();
            assert!(err.to_string().contains("BIND_ADDRESS"), "{err}");
        }
    }

    #[test]
    fn reads_cors_origins_and_refuses_what_is_not_an_origin() {
        let s = with(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://127.0.0.1:3000,",
        )
        .unwrap();
        assert_eq!(
            s.cors_allowed_origins,
            ["https://app.example.com", "http://127.0.0.1:3000"]
        );
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://*.example.com",
        ] {
            let err = with("CORS_ALLOWED_ORIGINS", bad).unwrap_err();
            assert!(
                err.to_string().contains("CORS_ALLOWED_ORIGINS"),
                "{bad}: {err}"
            );
        }
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
