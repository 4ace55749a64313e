//! What every request leaves behind for an operator: its correlation id (taken from the
//! client when sane, else API Gateway's request id, else a new one), echoed in
//! `X-Correlation-Id` on every response, errors included; one log line (method, route,
//! status, latency) inside a span carrying `correlationId`, so every line the handler logs
//! carries it too; and the request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use platform::metrics::{self, names};
use tracing::Instrument;

use super::extract::{correlation_id, CORRELATION_ID_HEADER};

/// The request's correlation id, for handlers (`Extension<CorrelationId>`): it travels on
/// every message they enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// API Gateway's id for the request, set by the Lambda front end ([`crate::lambda`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequestId(pub String);

/// The route label of requests that matched no route: unknown paths must not each become a
/// metric dimension of their own.
const UNMATCHED_ROUTE: &str = "unmatched";

pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let gateway_id = request
        .extensions()
        .get::<GatewayRequestId>()
        .map(|id| id.0.as_str());
    let correlation = correlation_id(request.headers(), gateway_id);
    request
        .extensions_mut()
        .insert(CorrelationId(correlation.clone()));

    let span = tracing::info_span!("request", correlationId = %correlation);
    let mut response = next.run(request).instrument(span.clone()).await;
    // Validated to visible ASCII, so it always makes a header value.
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }

    let status = response.status();
    let latency = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status = status.as_u16(),
            latencyMs = (metrics::millis(latency) * 10.0).round() / 10.0,
            "request"
        );
    });
    metrics::count(names::REQUESTS_ALL, 1);
    metrics::count_with(
        names::REQUESTS,
        [("Route", route), ("Status", status.as_u16().to_string())],
        1,
    );
    if status.is_client_error() {
        metrics::count(names::ERRORS_4XX, 1);
    } else if status.is_server_error() {
        metrics::count(names::ERRORS_5XX, 1);
    }
    metrics::observe(names::REQUEST_LATENCY, [metrics::millis(latency)]);
    response
}
