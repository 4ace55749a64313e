//! A development-only stand-in for the User Service. It validates HS256 tokens it mints
//! itself. Never deployed: it exists so `make dev` works with no outside system.
//!
//!   dev-user-service serve                 # GET /validate: 204 for a good token, else 401
//!   dev-user-service mint --sub alice [--scope credit-scores:service] [--ttl-seconds 3600]

use std::process::ExitCode;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use pipeline_tests::DevTokens;

const USAGE: &str = "usage: dev-user-service serve [--port N] | mint --sub USER [--scope SCOPE]... [--ttl-seconds N]
Port defaults to DEV_USER_SERVICE_PORT or 4113; the signing secret is DEV_TOKEN_SECRET or a fixed dev secret.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dev-user-service: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

async fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port: u16 = flag(args, "--port")
                .first()
                .map(|p| (*p).to_owned())
                .or_else(|| std::env::var("DEV_USER_SERVICE_PORT").ok())
                .unwrap_or_else(|| "4113".into())
                .parse()
                .map_err(|e| format!("bad port: {e}"))?;
            let app = Router::new()
                .route("/validate", get(validate))
                .route("/health", get(|| async { "ok" }));
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
        Some("mint") => {
            let sub = *flag(args, "--sub").first().ok_or("--sub is required")?;
            let scopes = flag(args, "--scope");
            let ttl: u64 = flag(args, "--ttl-seconds")
                .first()
                .map_or(Ok(3600), |v| v.parse())
                .map_err(|e| format!("bad --ttl-seconds: {e}"))?;
            println!(
                "{}",
                DevTokens::default().mint(sub, &scopes, Duration::from_secs(ttl))
            );
            Ok(())
        }
        _ => Err("expected a command".into()),
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
