//! The HTTP API: validate, authorize and enqueue credit score writes.
//!
//! [`app`] builds the router so tests call it without a socket; [`run`] serves it under
//! Lambda (API Gateway REST v1 and HTTP API v2 events) or as a plain HTTP server.

pub mod auth;
pub mod docs;
pub mod error;
pub mod queue;
pub mod routes;
pub mod settings;
pub mod write;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use time::OffsetDateTime;

use crate::auth::{Authenticator, TokenValidator, UserServiceValidator, ValidationCache};
use crate::queue::{ScoreQueue, SqsScoreQueue};
use crate::settings::IngestSettings;

/// Largest body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub queue: Arc<dyn ScoreQueue>,
    /// The clock, so tests can pin "now" for the future-timestamp rule.
    pub now: fn() -> OffsetDateTime,
}

impl AppState {
    pub fn new(
        settings: &IngestSettings,
        validator: Arc<dyn TokenValidator>,
        queue: Arc<dyn ScoreQueue>,
    ) -> Self {
        Self {
            auth: Arc::new(Authenticator {
                validator,
                cache: ValidationCache::new(settings.auth_cache_ttl),
                user_claim: settings.user_claim.clone(),
                service_scope: settings.service_scope.clone(),
            }),
            queue,
            now: OffsetDateTime::now_utc,
        }
    }

    /// The production wiring: User Service over HTTP, SQS from one `SdkConfig`.
    pub fn from_settings(
        settings: &IngestSettings,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let validator = UserServiceValidator::new(
            settings.user_service_endpoint(),
            settings.user_service_timeout,
        )
        .context("building the User Service client")?;
        let queue = SqsScoreQueue {
            client: shared::aws::sqs_client_bounded(sdk, settings.sqs_send_timeout),
            queue_url: settings.queue_url.clone(),
        };
        Ok(Self::new(settings, Arc::new(validator), Arc::new(queue)))
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route(
            "/v1/users/{userId}/credit-scores",
            post(routes::submit_score),
        )
        .merge(docs::swagger_ui())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`app`] under Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else on `PORT`.
pub async fn run(settings: IngestSettings) -> anyhow::Result<()> {
    let sdk = shared::aws::sdk_config().await;
    let router = app(AppState::from_settings(&settings, &sdk)?);
    if shared::telemetry::running_in_lambda() {
        lambda::run(router).await
    } else {
        let addr = SocketAddr::from(([0, 0, 0, 0], settings.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding port {}", settings.port))?;
        tracing::info!(%addr, "ingest listening");
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")
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

pub mod lambda {
    //! API Gateway in front: route on the path the client used, without the stage.

    use axum::Router;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;

    /// The path to route on. REST (v1) events carry the path without the stage (lambda_http
    /// adds it back); HTTP API (v2) raw paths carry a named stage, which is stripped once.
    /// Using the raw path keeps this right even for a stage named like a route segment.
    pub fn route_path(request: &lambda_http::Request) -> Option<String> {
        let raw = request.raw_http_path();
        if raw.is_empty() {
            return None;
        }
        let stage = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(_)) => return Some(raw.to_owned()),
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
            _ => None,
        };
        match stage.filter(|s| s != "$default") {
            Some(stage) => {
                let prefix = format!("/{stage}");
                match raw.strip_prefix(&prefix) {
                    Some("") => Some("/".to_owned()),
                    Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
                    _ => Some(raw.to_owned()),
                }
            }
            None => Some(raw.to_owned()),
        }
    }

    /// Rewrites the request URI to [`route_path`], keeping the query string.
    pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
        if let Some(path) = route_path(&request) {
            let path_and_query = match request.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(pq) = path_and_query.parse::<http::uri::PathAndQuery>() {
                let mut parts = request.uri().clone().into_parts();
                parts.path_and_query = Some(pq);
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        request
    }

    /// The router as the Lambda runtime calls it.
    pub fn service(
        router: Router,
    ) -> impl tower::Service<
        lambda_http::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone {
        tower::ServiceBuilder::new()
            .map_request(strip_stage)
            .service(router)
    }

    pub async fn run(router: Router) -> anyhow::Result<()> {
        lambda_http::run(service(router))
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }
}
