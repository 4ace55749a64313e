//! The HTTP API: validate, authorize and enqueue credit score writes; serve reads and docs.
//!
//! [`app`] builds the router so tests call it without a socket; [`run`] serves it under
//! Lambda (API Gateway REST v1 and HTTP API v2 events) or as a plain HTTP server.

pub mod auth;
pub mod batch;
pub mod cursor;
pub mod docs;
pub mod docs_ui;
pub mod error;
pub mod idempotency;
pub mod queue;
pub mod read_routes;
pub mod reads;
pub mod routes;
pub mod settings;
pub mod write;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::Method;
use time::OffsetDateTime;

use crate::auth::{Authenticator, TokenValidator, UserServiceValidator, ValidationCache};
use crate::cursor::{CursorCodec, CursorKey};
use crate::idempotency::{DynamoStoredWrites, StoredWrites};
use crate::queue::{ScoreQueue, SqsScoreQueue};
use crate::reads::{DynamoScoreReader, ScoreReader};
use crate::settings::IngestSettings;

/// Largest body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub queue: Arc<dyn ScoreQueue>,
    pub reader: Arc<dyn ScoreReader>,
    /// Asked before enqueueing a write that carries an Idempotency-Key.
    pub stored_writes: Arc<dyn StoredWrites>,
    /// Signs and checks list cursors.
    pub cursors: Arc<CursorCodec>,
    /// The clock, so tests can pin "now" for the future-timestamp rule.
    pub now: fn() -> OffsetDateTime,
}

impl AppState {
    pub fn new(
        settings: &IngestSettings,
        validator: Arc<dyn TokenValidator>,
        queue: Arc<dyn ScoreQueue>,
        reader: Arc<dyn ScoreReader>,
        stored_writes: Arc<dyn StoredWrites>,
        cursor_key: &CursorKey,
    ) -> Self {
        Self {
            auth: Arc::new(Authenticator {
                validator,
                cache: ValidationCache::new(settings.auth_cache_ttl),
                user_claim: settings.user_claim.clone(),
                service_scope: settings.service_scope.clone(),
            }),
            queue,
            reader,
            stored_writes,
            cursors: Arc::new(CursorCodec::new(cursor_key)),
            now: OffsetDateTime::now_utc,
        }
    }

    /// The production wiring: User Service over HTTP, SQS and DynamoDB from one `SdkConfig`.
    pub fn from_settings(
        settings: &IngestSettings,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let validator = UserServiceValidator::new(
            &settings.user_service_endpoint(),
            settings.user_service_timeout,
        )
        .context("building the User Service client")?;
        let queue = SqsScoreQueue {
            client: shared::aws::sqs_client_bounded(sdk, settings.sqs_send_timeout),
            queue_url: settings.queue_url.clone(),
        };
        let table_client =
            shared::aws::dynamodb_client_bounded(sdk, settings.dynamodb_read_timeout);
        let reader = DynamoScoreReader {
            client: table_client.clone(),
            table_name: settings.table_name.clone(),
        };
        let stored_writes = DynamoStoredWrites {
            client: table_client,
            table_name: settings.table_name.clone(),
        };
        let cursor_key = match &settings.cursor_signing_key {
            Some(key) => key.clone(),
            // Lambda runs many short-lived instances at once: with a key per instance, page 2
            // would fail whenever it reached another one. Refuse to start instead.
            None if shared::telemetry::running_in_lambda() => anyhow::bail!(
                "environment variable CURSOR_SIGNING_KEY is required under Lambda: every \
                 instance must sign list cursors with the same key (at least 32 bytes, e.g. \
                 `openssl rand -base64 48`)"
            ),
            None => {
                tracing::warn!(
                    "CURSOR_SIGNING_KEY is not set: list cursors are signed with a random \
                     per-process key, so they fail (400) on any other instance or after a restart"
                );
                CursorKey::random().context("generating a cursor signing key")?
            }
        };
        Ok(Self::new(
            settings,
            Arc::new(validator),
            Arc::new(queue),
            Arc::new(reader),
            Arc::new(stored_writes),
            &cursor_key,
        ))
    }
}

/// One operation of the API: its method and path (as the OpenAPI document names them) and
/// the handler serving it.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> ApiRoute
where
    H: Handler<T, AppState>,
    T: 'static,
{
    ApiRoute {
        handler: method_router(&method, handler),
        method,
        path,
    }
}

/// `handler` serving exactly `method`.
fn method_router<H, T, S>(method: &Method, handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    // The methods of the table are all standard; this runs once at start-up, never per request.
    let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
    on(filter, handler)
}

/// Every operation the API serves. [`app`] registers exactly these, and a test checks that
/// the OpenAPI document describes exactly these plus [`DOCS_ROUTES`]: add routes here, never
/// with a separate `.route` call.
pub fn api_routes() -> Vec<ApiRoute> {
    const USER_SCORES: &str = "/v1/users/{userId}/credit-scores";
    vec![
        route(Method::GET, "/health", routes::health),
        route(Method::POST, USER_SCORES, routes::submit_score),
        route(Method::GET, USER_SCORES, read_routes::list_scores),
        // A static segment outranks `{reportId}`, so `latest` is never taken for a report id.
        route(
            Method::GET,
            "/v1/users/{userId}/credit-scores/latest",
            read_routes::latest_scores,
        ),
        route(
            Method::GET,
            "/v1/users/{userId}/credit-scores/{reportId}",
            read_routes::get_score,
        ),
        // Its own, larger body limit (500 entries); it overrides the router-wide one.
        route(
            Method::POST,
            "/v1/credit-scores/batch",
            batch::submit_batch.layer(DefaultBodyLimit::max(batch::MAX_BATCH_BODY_BYTES)),
        ),
    ]
}

/// Served by [`docs_ui::router`] and described in the document as well.
pub const DOCS_ROUTES: [(Method, &str); 2] =
    [(Method::GET, docs::UI_PATH), (Method::GET, docs::SPEC_PATH)];

/// (method, path) of everything the router serves and the document must describe.
pub fn route_table() -> Vec<(Method, &'static str)> {
    api_routes()
        .into_iter()
        .map(|r| (r.method, r.path))
        .chain(DOCS_ROUTES)
        .collect()
}

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
                http::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([LOCATION, RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for api_route in api_routes() {
        router = router.route(api_route.path, api_route.handler);
    }
    router
        .merge(docs_ui::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`app`] under Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else on `PORT`.
pub async fn run(settings: IngestSettings) -> anyhow::Result<()> {
    let sdk = shared::aws::sdk_config().await;
    let state = AppState::from_settings(&settings, &sdk)?;
    if shared::telemetry::running_in_lambda() {
        lambda::run(app(state)).await
    } else {
        let router = server_app(state, &settings);
        let addr = SocketAddr::new(settings.bind_address, settings.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (BIND_ADDRESS, PORT)"))?;
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

#[cfg(test)]
mod route_table_tests {
    use super::*;

    async fn take_body(body: axum::body::Bytes) -> String {
        body.len().to_string()
    }

    /// A route with its own layer (a body limit other than the router-wide one) fits in the
    /// table as a layered handler, and its layer wins over the router's.
    #[tokio::test]
    async fn a_layered_handler_keeps_its_own_body_limit() {
        use tower::ServiceExt;
        let handler = method_router(&Method::POST, take_body.layer(DefaultBodyLimit::max(16)));
        let router: Router = Router::new()
            .route("/small", handler)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(());
        let post = |bytes: usize| {
            http::Request::post("/small")
                .body(axum::body::Body::from(vec![b'x'; bytes]))
                .unwrap()
        };
        let fits = router.clone().oneshot(post(16)).await.unwrap();
        assert_eq!(fits.status(), http::StatusCode::OK);
        let too_big = router.oneshot(post(17)).await.unwrap();
        assert_eq!(too_big.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn no_operation_is_listed_twice() {
        let table = route_table();
        let unique: std::collections::HashSet<_> = table.iter().collect();
        assert_eq!(unique.len(), table.len());
    }
}
