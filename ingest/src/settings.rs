//! Ingest configuration, from the environment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::HeaderValue;

use shared::settings::{http_url, millis, optional, parsed, required, SettingsError, Source};

use crate::auth::JwksConfig;
use crate::cursor::CursorKey;

/// How bearer tokens are checked (`AUTH_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// `user-service` (default): each token is validated by the User Service.
    UserService,
    /// `jwks`: verified locally against the issuer's key set; the User Service is never called.
    Jwks(Box<JwksConfig>),
    /// `apigateway-jwt`: API Gateway's JWT authorizer verified the token; its claims, from the
    /// Lambda event's request context, are trusted. Only under Lambda: a plain HTTP server has
    /// no authorizer in front, and nothing there could tell verified claims from forged ones.
    GatewayJwt,
}

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
    pub auth_mode: AuthMode,
    /// Required in `user-service` mode only; empty in the others.
    pub user_service_url: String,
    pub user_service_validate_path: String,
    pub user_service_timeout: Duration,
    /// How long a positive validation is reused; 0 turns the cache off. Never past `exp`.
    pub auth_cache_ttl: Duration,
    /// The claim holding the caller's user id.
    pub user_claim: String,
    /// The scope that lets a caller act for any user and use the batch endpoint.
    pub service_scope: String,
    /// A `cognito:groups` entry that counts as the service scope (`AUTH_SERVICE_GROUP`).
    pub service_group: Option<String>,
    pub sqs_send_timeout: Duration,
    /// Bounds every table read, SDK retries included; past it the client gets a 503.
    pub dynamodb_read_timeout: Duration,
    /// Signs list cursors (`CURSOR_SIGNING_KEY`, at least 32 bytes). Every instance behind
    /// one API must share it; unset, a random per-process key is used (local runs only).
    pub cursor_signing_key: Option<CursorKey>,
}

impl IngestSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        // Where the writes go first: a bare start names QUEUE_URL before any auth setting.
        let queue_url = required(source, "QUEUE_URL")?;
        let table_name = required(source, "TABLE_NAME")?;
        let path = optional(source, "USER_SERVICE_VALIDATE_PATH", "/validate");
        if !path.starts_with('/') {
            return Err(SettingsError::Invalid {
                name: "USER_SERVICE_VALIDATE_PATH",
                reason: "must start with /".into(),
            });
        }
        let auth_mode = auth_mode(source)?;
        let user_service_url = match auth_mode {
            AuthMode::UserService => http_url(source, "USER_SERVICE_URL")?,
            AuthMode::Jwks(_) | AuthMode::GatewayJwt => optional(source, "USER_SERVICE_URL", ""),
        };
        Ok(Self {
            queue_url,
            table_name,
            port: parsed(source, "PORT", 4112u16)?,
            bind_address: parsed(source, "BIND_ADDRESS", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
            cors_allowed_origins: cors_origins(source)?,
            auth_mode,
            user_service_url,
            user_service_validate_path: path,
            user_service_timeout: millis(
                source,
                "USER_SERVICE_TIMEOUT_MS",
                Duration::from_secs(2),
            )?,
            auth_cache_ttl: Duration::from_secs(parsed(source, "AUTH_CACHE_TTL_SECONDS", 0u64)?),
            user_claim: optional(source, "AUTH_USER_CLAIM", "sub"),
            service_scope: optional(source, "AUTH_SERVICE_SCOPE", "credit-scores:service"),
            service_group: source.get("AUTH_SERVICE_GROUP").filter(|g| !g.is_empty()),
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

/// `AUTH_MODE` and, for `jwks`, its `AUTH_*` settings.
fn auth_mode(source: &dyn Source) -> Result<AuthMode, SettingsError> {
    match optional(source, "AUTH_MODE", "user-service").as_str() {
        "user-service" => Ok(AuthMode::UserService),
        "jwks" => jwks_config(source).map(|c| AuthMode::Jwks(Box::new(c))),
        "apigateway-jwt" if source.get(shared::telemetry::LAMBDA_RUNTIME_API).is_none() => {
            Err(SettingsError::Invalid {
                name: "AUTH_MODE",
                reason: "apigateway-jwt trusts the claims API Gateway's JWT authorizer \
                         verified, so it runs only under Lambda behind that authorizer \
                         (AWS_LAMBDA_RUNTIME_API is not set); use jwks or user-service here"
                    .into(),
            })
        }
        "apigateway-jwt" => Ok(AuthMode::GatewayJwt),
        other => Err(SettingsError::Invalid {
            name: "AUTH_MODE",
            reason: format!("{other:?} is not one of user-service, jwks, apigateway-jwt"),
        }),
    }
}

fn jwks_config(source: &dyn Source) -> Result<JwksConfig, SettingsError> {
    let issuer = required(source, "AUTH_ISSUER")?;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(SettingsError::Invalid {
            name: "AUTH_ISSUER",
            reason: "must be the issuer's URL exactly as tokens carry it in iss".into(),
        });
    }
    let jwks_url = match source.get("AUTH_JWKS_URL") {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => url,
        Some(_) => {
            return Err(SettingsError::Invalid {
                name: "AUTH_JWKS_URL",
                reason: "must be an http(s) URL".into(),
            })
        }
        None => format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
    };
    let list = |name: &'static str| -> Vec<String> {
        source
            .get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let audiences = list("AUTH_AUDIENCE");
    let client_ids = list("AUTH_CLIENT_IDS");
    if audiences.is_empty() && client_ids.is_empty() {
        return Err(SettingsError::Invalid {
            name: "AUTH_AUDIENCE",
            reason: "AUTH_MODE=jwks needs AUTH_AUDIENCE or AUTH_CLIENT_IDS (or both): without \
                     one, any token of the issuer, for any application, would pass"
                .into(),
        });
    }
    let token_use = match optional(source, "AUTH_TOKEN_USE", "access").as_str() {
        "any" => None,
        use_ @ ("access" | "id") => Some(use_.to_owned()),
        other => {
            return Err(SettingsError::Invalid {
                name: "AUTH_TOKEN_USE",
                reason: format!("{other:?} is not one of access, id, any"),
            })
        }
    };
    let algorithms = list("AUTH_ALGORITHMS")
        .iter()
        .map(|name| asymmetric_algorithm(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| SettingsError::Invalid {
            name: "AUTH_ALGORITHMS",
            reason,
        })?;
    let seconds =
        |name: &'static str, default: u64| parsed(source, name, default).map(Duration::from_secs);
    Ok(JwksConfig {
        issuer,
        jwks_url,
        audiences,
        client_ids,
        token_use,
        algorithms: if algorithms.is_empty() {
            vec![jsonwebtoken::Algorithm::RS256]
        } else {
            algorithms
        },
        leeway: seconds("AUTH_LEEWAY_SECONDS", 60)?,
        refresh_interval: seconds("AUTH_JWKS_REFRESH_SECONDS", 3600)?,
        min_refetch_interval: seconds("AUTH_JWKS_MIN_REFETCH_SECONDS", 30)?,
        fetch_timeout: millis(source, "AUTH_JWKS_TIMEOUT_MS", Duration::from_secs(2))?,
    })
}

/// An algorithm a public key can verify: RS*, PS*, ES256, ES384. Never `none`, never HMAC
/// (an HMAC "verified" with a public key is the algorithm-confusion attack).
fn asymmetric_algorithm(name: &str) -> Result<jsonwebtoken::Algorithm, String> {
    use jsonwebtoken::Algorithm::*;
    match name.parse::<jsonwebtoken::Algorithm>() {
        Ok(alg @ (RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384)) => Ok(alg),
        _ => Err(format!(
            "{name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 \
             (none and HMAC algorithms are never accepted)"
        )),
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
    fn apigateway_jwt_runs_only_under_lambda() {
        let base = [
            ("QUEUE_URL", "q"),
            ("TABLE_NAME", "t"),
            ("AUTH_MODE", "apigateway-jwt"),
        ];
        let err = IngestSettings::from_source(&base).expect_err("no Lambda runtime");
        assert!(err.to_string().contains("AUTH_MODE"), "{err}");
        assert!(err.to_string().contains("only under Lambda"), "{err}");
        let under_lambda = [
            ("QUEUE_URL", "q"),
            ("TABLE_NAME", "t"),
            ("AUTH_MODE", "apigateway-jwt"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ];
        let settings = IngestSettings::from_source(&under_lambda).expect("valid under Lambda");
        assert_eq!(settings.auth_mode, AuthMode::GatewayJwt);
        assert_eq!(settings.user_service_url, "");
    }

    fn jwks_env(extra: &[(&'static str, &'static str)]) -> Result<IngestSettings, SettingsError> {
        let env: std::collections::HashMap<String, String> = [
            ("QUEUE_URL", "q"),
            ("TABLE_NAME", "t"),
            ("AUTH_MODE", "jwks"),
            (
                "AUTH_ISSUER",
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
            ),
            ("AUTH_CLIENT_IDS", "app1, app2"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        IngestSettings::from_source(&env)
    }

    #[test]
    fn jwks_mode_has_strict_defaults_and_needs_no_user_service() {
        let s = jwks_env(&[]).unwrap();
        let AuthMode::Jwks(config) = s.auth_mode else {
            panic!("not jwks: {:?}", s.auth_mode)
        };
        assert_eq!(
            config.jwks_url,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json"
        );
        assert_eq!(config.client_ids, ["app1", "app2"]);
        assert!(config.audiences.is_empty());
        assert_eq!(config.token_use.as_deref(), Some("access"));
        assert_eq!(config.algorithms, [jsonwebtoken::Algorithm::RS256]);
        assert_eq!(config.leeway, Duration::from_secs(60));
        assert_eq!(config.refresh_interval, Duration::from_secs(3600));
        assert_eq!(config.min_refetch_interval, Duration::from_secs(30));
        assert_eq!(
            IngestSettings::from_source(&BASE).unwrap().auth_mode,
            AuthMode::UserService
        );
    }

    #[test]
    fn jwks_mode_names_each_missing_or_bad_setting() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[("AUTH_MODE", "cognito")], "AUTH_MODE"),
            (&[("AUTH_ISSUER", "cognito-idp.example")], "AUTH_ISSUER"),
            (&[("AUTH_JWKS_URL", "file:///etc/keys")], "AUTH_JWKS_URL"),
            (&[("AUTH_CLIENT_IDS", " , ")], "AUTH_AUDIENCE"),
            (&[("AUTH_TOKEN_USE", "refresh")], "AUTH_TOKEN_USE"),
            (&[("AUTH_ALGORITHMS", "none")], "AUTH_ALGORITHMS"),
            (&[("AUTH_ALGORITHMS", "RS256,HS256")], "AUTH_ALGORITHMS"),
            (&[("AUTH_LEEWAY_SECONDS", "-1")], "AUTH_LEEWAY_SECONDS"),
            (
                &[("AUTH_JWKS_MIN_REFETCH_SECONDS", "soon")],
                "AUTH_JWKS_MIN_REFETCH_SECONDS",
            ),
        ];
        for (extra, name) in cases {
            let err = jwks_env(extra).unwrap_err();
            assert!(err.to_string().contains(name), "{extra:?}: {err}");
        }
        let no_issuer = [
            ("QUEUE_URL", "q"),
            ("TABLE_NAME", "t"),
            ("AUTH_MODE", "jwks"),
        ];
        assert_eq!(
            IngestSettings::from_source(&no_issuer).unwrap_err(),
            SettingsError::Missing("AUTH_ISSUER")
        );
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
