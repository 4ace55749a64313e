//! Ingest configuration: every variable ingest reads, declared once ([`IngestEnv`]), and the
//! rules that make [`IngestSettings`] of them.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use http::HeaderValue;

use platform::settings::{trimmed, CommonEnv, SettingsError, Source};

use crate::auth::jwks_settings::JwksEnv;
use crate::auth::JwksConfig;
use crate::cursor::CursorKey;

/// Ingest's variables: name (the field's, in capitals), default, help. `--help`, the README
/// check below and [`IngestSettings::from_source`] all read this one declaration.
#[derive(Debug, Clone, Args)]
pub struct IngestEnv {
    /// the score queue (required)
    #[arg(long, env)]
    pub queue_url: Option<String>,
    /// the DynamoDB table (required)
    #[arg(long, env)]
    pub table_name: Option<String>,
    /// listening port (server mode)
    #[arg(long, env, default_value_t = 4112, value_parser = trimmed::<u16>)]
    pub port: u16,
    /// IP address to listen on (server mode; `make dev` uses 127.0.0.1)
    #[arg(long, env, default_value = "0.0.0.0", value_parser = trimmed::<IpAddr>)]
    pub bind_address: IpAddr,
    /// comma-separated browser origins allowed to call the API (server mode; unset: no CORS
    /// headers)
    #[arg(long, env)]
    pub cors_allowed_origins: Option<String>,
    /// how bearer tokens are checked: user-service, jwks or apigateway-jwt (Lambda only)
    #[arg(long, env, default_value = "user-service")]
    pub auth_mode: String,
    /// base URL of the User Service (required in user-service mode)
    #[arg(long, env)]
    pub user_service_url: Option<String>,
    /// path called with the caller's Authorization header
    #[arg(long, env, default_value = "/validate")]
    pub user_service_validate_path: String,
    /// timeout of that call (then 503)
    #[arg(long, env, default_value_t = 2000, value_parser = trimmed::<u64>)]
    pub user_service_timeout_ms: u64,
    /// reuse a positive validation this long, never past the token's exp; 0: off
    #[arg(long, env, default_value_t = 0, value_parser = trimmed::<u64>)]
    pub auth_cache_ttl_seconds: u64,
    /// the claim holding the caller's user id
    #[arg(long, env, default_value = "sub")]
    pub auth_user_claim: String,
    /// the scope (in scope or scp) that may act for any user
    #[arg(long, env, default_value = "credit-scores:service")]
    pub auth_service_scope: String,
    /// a cognito:groups entry that counts as the service scope
    #[arg(long, env)]
    pub auth_service_group: Option<String>,
    /// bound on enqueueing, retries included (then 503)
    #[arg(long, env, default_value_t = 3000, value_parser = trimmed::<u64>)]
    pub sqs_send_timeout_ms: u64,
    /// bound on a read (then 503)
    #[arg(long, env, default_value_t = 3000, value_parser = trimmed::<u64>)]
    pub dynamodb_read_timeout_ms: u64,
    /// HMAC key (32+ bytes) signing list cursors (unset: random per process; required under
    /// Lambda)
    #[arg(long, env)]
    pub cursor_signing_key: Option<String>,
    /// Set by the Lambda runtime; apigateway-jwt mode runs only where it is set.
    #[arg(long, env, hide = true)]
    pub aws_lambda_runtime_api: Option<String>,
    #[command(flatten)]
    pub jwks: JwksEnv,
}

impl IngestEnv {
    /// Every variable ingest reads, its own and the logging and metrics ones.
    pub fn variables() -> Vec<clap::Arg> {
        let mut all = platform::settings::declared::<IngestEnv>();
        all.extend(platform::settings::declared::<CommonEnv>());
        all
    }
}

/// The `Environment:` part of `ingest --help`.
pub fn environment_help() -> String {
    platform::settings::environment_help(&IngestEnv::variables(), platform::settings::AWS_FOOTER)
}

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
    /// The settings from `source` (the process environment, or pairs in tests) and the
    /// declared defaults.
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        platform::settings::parse::<IngestEnv>(source).and_then(Self::try_from)
    }

    pub fn user_service_endpoint(&self) -> String {
        format!(
            "{}{}",
            self.user_service_url, self.user_service_validate_path
        )
    }
}

impl TryFrom<IngestEnv> for IngestSettings {
    type Error = SettingsError;

    fn try_from(env: IngestEnv) -> Result<Self, SettingsError> {
        // Where the writes go first: a bare start names QUEUE_URL before any auth setting.
        let queue_url = env.queue_url.ok_or(SettingsError::Missing("QUEUE_URL"))?;
        let table_name = env.table_name.ok_or(SettingsError::Missing("TABLE_NAME"))?;
        if !env.user_service_validate_path.starts_with('/') {
            return Err(SettingsError::invalid(
                "USER_SERVICE_VALIDATE_PATH",
                "must start with /",
            ));
        }
        let auth_mode = auth_mode(
            &env.auth_mode,
            env.aws_lambda_runtime_api.is_some(),
            env.jwks,
        )?;
        let user_service_url = match auth_mode {
            AuthMode::UserService => user_service_url(env.user_service_url)?,
            AuthMode::Jwks(_) | AuthMode::GatewayJwt => env.user_service_url.unwrap_or_default(),
        };
        Ok(Self {
            queue_url,
            table_name,
            port: env.port,
            bind_address: env.bind_address,
            cors_allowed_origins: cors_origins(env.cors_allowed_origins.as_deref())?,
            auth_mode,
            user_service_url,
            user_service_validate_path: env.user_service_validate_path,
            user_service_timeout: Duration::from_millis(env.user_service_timeout_ms),
            auth_cache_ttl: Duration::from_secs(env.auth_cache_ttl_seconds),
            user_claim: env.auth_user_claim,
            service_scope: env.auth_service_scope,
            service_group: env.auth_service_group,
            sqs_send_timeout: Duration::from_millis(env.sqs_send_timeout_ms),
            dynamodb_read_timeout: Duration::from_millis(env.dynamodb_read_timeout_ms),
            cursor_signing_key: env
                .cursor_signing_key
                .map(|secret| CursorKey::from_secret(&secret))
                .transpose()
                .map_err(|reason| SettingsError::invalid("CURSOR_SIGNING_KEY", reason))?,
        })
    }
}

/// `AUTH_MODE` and, for `jwks`, its `AUTH_*` settings.
fn auth_mode(mode: &str, under_lambda: bool, jwks: JwksEnv) -> Result<AuthMode, SettingsError> {
    match mode.trim() {
        "user-service" => Ok(AuthMode::UserService),
        "jwks" => JwksConfig::try_from(jwks).map(|c| AuthMode::Jwks(Box::new(c))),
        "apigateway-jwt" if !under_lambda => Err(SettingsError::invalid(
            "AUTH_MODE",
            "apigateway-jwt trusts the claims API Gateway's JWT authorizer verified, so it \
             runs only under Lambda behind that authorizer (AWS_LAMBDA_RUNTIME_API is not \
             set); use jwks or user-service here",
        )),
        "apigateway-jwt" => Ok(AuthMode::GatewayJwt),
        other => Err(SettingsError::invalid(
            "AUTH_MODE",
            format!("{other:?} is not one of user-service, jwks, apigateway-jwt"),
        )),
    }
}

/// `USER_SERVICE_URL` must be http(s): checked here so a typo fails at start-up, not per
/// request.
fn user_service_url(url: Option<String>) -> Result<String, SettingsError> {
    let url = url.ok_or(SettingsError::Missing("USER_SERVICE_URL"))?;
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(SettingsError::invalid(
            "USER_SERVICE_URL",
            "must start with http:// or https://",
        ))
    }
}

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins, each `scheme://host[:port]` exactly as a
/// browser sends it in `Origin` (no path, no trailing slash, no wildcard).
fn cors_origins(raw: Option<&str>) -> Result<Vec<HeaderValue>, SettingsError> {
    let invalid = |reason: String| SettingsError::invalid("CORS_ALLOWED_ORIGINS", reason);
    let Some(raw) = raw else {
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
    use std::net::Ipv4Addr;

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
        assert_eq!(err.variable(), "CURSOR_SIGNING_KEY");
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

    /// Variables the docs list that no settings struct declares: the AWS SDK reads them.
    const READ_BY_THE_AWS_SDK: [&str; 2] = ["AWS_REGION", "AWS_ENDPOINT_URL"];

    #[test]
    fn the_readme_and_docs_auth_list_exactly_the_declared_variables() {
        let in_readme = platform::settings::documented_variables(include_str!("../../README.md"))
            .into_iter()
            .filter(|(_, used_by)| used_by.contains("ingest") || used_by.contains("both"));
        // docs/auth.md's settings table is ingest's alone (its second column is the default).
        let in_auth_doc =
            platform::settings::documented_variables(include_str!("../../docs/auth.md"));
        // Hidden: set by the Lambda runtime, not by an operator.
        let declared: Vec<clap::Arg> = IngestEnv::variables()
            .into_iter()
            .filter(|arg| !arg.is_hide_set())
            .collect();
        let (undocumented, undeclared) = platform::settings::disagreement(
            &declared,
            in_readme.chain(in_auth_doc).map(|(name, _)| name),
            &[],
            &READ_BY_THE_AWS_SDK,
        );
        assert!(
            undocumented.is_empty(),
            "declared but in no table of README.md or docs/auth.md: {undocumented:?}"
        );
        assert!(
            undeclared.is_empty(),
            "documented for ingest but not declared in IngestEnv: {undeclared:?}"
        );
    }

    /// Declared variables the template leaves to their defaults, on purpose.
    const NOT_IN_THE_TEMPLATE: [&str; 17] = [
        // Server mode only: under Lambda API Gateway listens and answers CORS.
        "PORT",
        "BIND_ADDRESS",
        "CORS_ALLOWED_ORIGINS",
        "METRICS_FLUSH_SECONDS",
        // Their defaults are what the stack wants.
        "USER_SERVICE_TIMEOUT_MS",
        "AUTH_CACHE_TTL_SECONDS",
        "SQS_SEND_TIMEOUT_MS",
        "DYNAMODB_READ_TIMEOUT_MS",
        "AUTH_ALGORITHMS",
        "AUTH_LEEWAY_SECONDS",
        "AUTH_JWKS_REFRESH_SECONDS",
        "AUTH_JWKS_MIN_REFETCH_SECONDS",
        "AUTH_JWKS_TIMEOUT_MS",
        // Lambda's own logging controls set these, and JSON is the default under Lambda.
        "AWS_LAMBDA_LOG_LEVEL",
        "AWS_LAMBDA_LOG_FORMAT",
        "LOG_FORMAT",
        // Set by the Lambda runtime itself.
        "AWS_LAMBDA_RUNTIME_API",
    ];

    /// Template variables for libraries rather than ingest's settings.
    const FOR_LIBRARIES: [&str; 2] = [
        // rustls-native-certs: one CA bundle instead of a scan of /etc/ssl/certs.
        "SSL_CERT_FILE",
        // lambda_http: routes stay right under a named stage.
        "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
    ];

    #[test]
    fn the_template_sets_every_declared_variable_it_does_not_leave_to_its_default() {
        let in_template = platform::settings::template_variables(
            include_str!("../../infra/template.yaml"),
            "IngestFunction",
        );
        assert!(
            in_template.iter().any(|name| name == "QUEUE_URL"),
            "{in_template:?}"
        );
        let (missing, unknown) = platform::settings::disagreement(
            &IngestEnv::variables(),
            in_template,
            &NOT_IN_THE_TEMPLATE,
            &FOR_LIBRARIES,
        );
        assert!(
            missing.is_empty(),
            "declared, not in IngestFunction's environment nor NOT_IN_THE_TEMPLATE: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "IngestFunction sets variables ingest does not declare: {unknown:?}"
        );
    }

    #[test]
    fn help_lists_the_declared_variables_with_their_defaults() {
        let help = environment_help();
        assert!(help.contains("QUEUE_URL"), "{help}");
        assert!(help.contains("[default: 4112]"), "{help}");
        assert!(help.contains("AUTH_JWKS_TIMEOUT_MS"), "{help}");
        assert!(help.contains("RUST_LOG"), "{help}");
        assert!(!help.contains("AWS_LAMBDA_RUNTIME_API"), "{help}");
    }
}
