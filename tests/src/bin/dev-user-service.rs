//! A development-only stand-in for the User Service. It validates HS256 tokens it mints
//! itself. Never deployed: it exists so `make dev` works with no outside system.
//!
//!   dev-user-service serve [--port N]     # GET /validate: 204 for a good token, else 401
//!
//! `serve` also stands in for a token issuer, for ingest's `AUTH_MODE=jwks`: it starts a
//! JWKS issuer on another loopback port with an RSA key made at start (never stored), whose
//! URL `GET /jwks-issuer` answers, and `GET /dev-jwt?sub=NAME[&scope=S]` mints an RS256
//! access token from it (client id `test-client`).
//!   dev-user-service mint --sub NAME [--scope credit-scores:service] [--ttl-seconds N]

use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use clap::{Parser, Subcommand};
use pipeline_tests::DevTokens;

/// A development-only stand-in for the User Service: it validates the HS256 tokens it mints
/// (secret DEV_TOKEN_SECRET, or a fixed dev secret). Never deploy it.
#[derive(Debug, Parser)]
#[command(name = "dev-user-service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// serve GET /validate on 127.0.0.1: 204 for a good dev token, else 401
    Serve {
        /// port on 127.0.0.1 (default DEV_USER_SERVICE_PORT, else 4113)
        #[arg(long, value_name = "N")]
        port: Option<u16>,
    },
    /// print a dev token for a user
    Mint {
        /// the user id (`sub` claim)
        #[arg(long, value_name = "NAME")]
        sub: String,
        /// a scope to grant, e.g. credit-scores:service (repeatable)
        #[arg(long, value_name = "SCOPE")]
        scope: Vec<String>,
        /// lifetime of the token
        #[arg(long, value_name = "N", default_value_t = 3600)]
        ttl_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints help (exit 0) or a usage error (exit 2) itself.
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dev-user-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { port } => {
            let port = match port {
                Some(port) => port,
                None => std::env::var("DEV_USER_SERVICE_PORT")
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map_or(Ok(4113), |v| v.trim().parse())
                    .map_err(|e| format!("DEV_USER_SERVICE_PORT is not a port: {e}"))?,
            };
            let issuer = Arc::new(pipeline_tests::JwksIssuer::start().await);
            let jwt_routes = Router::new()
                .route(
                    "/jwks-issuer",
                    get(
                        |State(issuer): State<Arc<pipeline_tests::JwksIssuer>>| async move {
                            issuer.url.clone()
                        },
                    ),
                )
                .route("/dev-jwt", get(dev_jwt))
                .with_state(issuer);
            let app = Router::new()
                .route("/validate", get(validate))
                .route("/health", get(|| async { "ok" }))
                .merge(jwt_routes);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
            eprintln!(
                "dev-user-service: validating dev tokens on http://127.0.0.1:{port}/validate"
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| e.to_string())
        }
        Command::Mint {
            sub,
            scope,
            ttl_seconds,
        } => {
            let scopes: Vec<&str> = scope.iter().map(String::as_str).collect();
            println!(
                "{}",
                DevTokens::default().mint(&sub, &scopes, Duration::from_secs(ttl_seconds))
            );
            Ok(())
        }
    }
}

async fn validate(headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match token.map(|t| DevTokens::default().verify(t)) {
        Some(Ok(_)) => StatusCode::NO_CONTENT,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[derive(serde::Deserialize)]
struct JwtRequest {
    sub: String,
    #[serde(default)]
    scope: String,
}

/// An RS256 access token from the stand-in issuer (for `AUTH_MODE=jwks`).
async fn dev_jwt(
    State(issuer): State<Arc<pipeline_tests::JwksIssuer>>,
    Query(request): Query<JwtRequest>,
) -> String {
    let mut claims = issuer.claims_for(&request.sub);
    if !request.scope.is_empty() {
        claims["scope"] = serde_json::json!(request.scope);
    }
    issuer.sign("key-1", &claims)
}
