//! The HTTP API: validate, authorize and enqueue credit score writes; serve reads and docs.
//!
//! [`app`] builds the router so tests call it without a socket; [`run`] serves it under
//! Lambda (API Gateway REST v1 and HTTP API v2 events, [`lambda`]) or as a plain HTTP server.
//!
//! The modules follow the architecture, dependencies pointing one way (edge, state, ports):
//!
//! * [`api`]: the HTTP edge, one module per operation group (`writes`, `batch`, `reads`,
//!   `health`, `docs`), the typed request bodies (`bodies`), what handlers extract alike
//!   (`extract`), the registration of every operation with its document entry (`routes`)
//!   and the one mapping of errors to problem documents (`error`). Only `api` knows HTTP
//!   statuses.
//! * [`state`]: [`AppState`], the ports every handler shares, and their production wiring.
//! * Ports, each with its adapter and nothing of HTTP: [`auth`] (token, [`auth::TokenValidator`]
//!   and the User Service adapter, the validation cache), [`queue`] (SQS), [`reads`] and
//!   [`idempotency`] (DynamoDB). [`cursor`] signs list positions; [`settings`] reads the
//!   environment.
//!
//! `scripts/module-cycles.py` (part of `make lint`) checks that no modules import each other.

pub mod api;
pub mod auth;
pub mod coalesce;
pub mod cursor;
pub mod idempotency;
pub mod lambda;
pub mod queue;
pub mod reads;
pub mod settings;
pub mod state;

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use http::Method;

use crate::settings::IngestSettings;

pub use api::extract::MAX_BODY_BYTES;
pub use state::AppState;

/// [`app`] as served in server mode: with the CORS layer when `CORS_ALLOWED_ORIGINS` lists
/// origins (under API Gateway the HTTP API answers CORS itself).
pub fn server_app(state: AppState, settings: &IngestSettings) -> Router {
    let router = app(state);
    match cors_layer(&settings.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Preflights from the listed origins get the methods and headers the API uses; other
/// origins get no CORS headers, so browsers refuse them. None when no origin is listed.
pub fn cors_layer(origins: &[http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                AUTHORIZATION,
                CONTENT_TYPE,
                http::HeaderName::from_static(api::bodies::IDEMPOTENCY_KEY_HEADER),
            ])
            .expose_headers([LOCATION, RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The whole HTTP API on `state`, without a socket (tests call it directly).
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves [`app`] under Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else on `PORT`.
pub async fn run(settings: IngestSettings) -> anyhow::Result<()> {
    let metrics =
        platform::metrics::MetricsSettings::from_source(&platform::settings::Env, "ingest")?;
    platform::metrics::init(&metrics)?;
    let sdk = platform::aws::sdk_config().await;
    let state = AppState::from_settings(&settings, &sdk)?;
    state.auth.warm_up().await;
    if platform::telemetry::running_in_lambda() {
        lambda::run(app(state)).await
    } else {
        platform::metrics::spawn_periodic_flush(metrics.flush_interval);
        let router = server_app(state, &settings);
        let addr = SocketAddr::new(settings.bind_address, settings.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (BIND_ADDRESS, PORT)"))?;
        tracing::info!(%addr, "ingest listening");
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP");
        platform::metrics::flush();
        served
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
