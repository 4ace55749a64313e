//! Lambda mode: API Gateway in front: route on the path the client used, without the stage.
//!
//! The event is read here ([`event`]), not by lambda_http's conversion, which panics on
//! fields clients control; its answer is written here too, in the event's own shape.

pub mod event;

use axum::http::header::{CONTENT_ENCODING, SET_COOKIE};
use axum::response::IntoResponse;
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use self::event::{EventError, Origin};

use crate::api::observe::GatewayRequestId;
use crate::auth::GatewayClaims;

/// The path to route on. REST (v1) events carry the path without the stage; HTTP API (v2)
/// raw paths carry a named stage, which is stripped once.
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

/// API Gateway's request id, for the correlation id of a request that brings none.
pub fn gateway_request_id(request: &lambda_http::Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.request_id.clone(),
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

/// The claims an HTTP API JWT authorizer verified, when one is in front of the route.
pub fn authorizer_claims(request: &lambda_http::Request) -> Option<GatewayClaims> {
    let RequestContext::ApiGatewayV2(ctx) = request.request_context_ref()? else {
        return None;
    };
    let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
    (!jwt.claims.is_empty()).then(|| GatewayClaims::from_authorizer(&jwt.claims))
}

/// What the router needs from the Lambda event: the path without the stage, and API
/// Gateway's request id ([`GatewayRequestId`]).
pub fn prepare(request: lambda_http::Request) -> lambda_http::Request {
    let mut request = strip_stage(request);
    if let Some(id) = gateway_request_id(&request) {
        request.extensions_mut().insert(GatewayRequestId(id));
    }
    if let Some(claims) = authorizer_claims(&request) {
        request.extensions_mut().insert(claims);
    }
    request
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
        .map_request(prepare)
        .service(router)
}

/// One invocation, as the runtime calls it: with its own metrics, written when it ends and
/// before its response is sent (Lambda may freeze the process then), and its own trace
/// header for the messages it sends ([`platform::invocation`]). Several run at once under Lambda
/// Managed Instances; nothing of one reaches another's.
pub async fn handle(
    router: Router,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_http::Error> {
    let request_id = event.context.request_id.clone();
    let trace_id = event.context.xray_trace_id.clone();
    platform::invocation::scope(
        request_id,
        trace_id,
        answer(router, event.payload, Some(event.context)),
    )
    .await
}

/// The event read, the router called, the answer in the event's shape. A bad event is a 400
/// naming its field; one from no API Gateway fails the invocation (the runtime reports it).
/// The process lives on either way.
pub async fn answer(
    router: Router,
    payload: Value,
    context: Option<lambda_http::Context>,
) -> Result<Value, lambda_http::Error> {
    let (origin, response) = match event::into_request(payload) {
        Ok((origin, mut request)) => {
            if let Some(context) = context {
                request = request.with_lambda_context(context);
            }
            let response = match service(router).oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            (origin, response)
        }
        Err(EventError::Bad(origin, error)) => (origin, error.into_response()),
        Err(EventError::NotApiGateway) => {
            const NOT_API_GATEWAY: &str =
                "the event is neither an API Gateway REST (v1) nor HTTP API (v2) event";
            tracing::warn!("{NOT_API_GATEWAY}");
            return Err(NOT_API_GATEWAY.into());
        }
    };
    gateway_response(origin, response).await
}

/// The response as API Gateway reads it: REST (v1) with every header in `multiValueHeaders`,
/// HTTP API (v2) with repeated headers joined and `Set-Cookie` in `cookies`. A body is text
/// when it is UTF-8 and not content-encoded, else base64 (the gzip'd docs assets).
pub async fn gateway_response(
    origin: Origin,
    response: axum::response::Response,
) -> Result<Value, lambda_http::Error> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let text = match parts.headers.contains_key(CONTENT_ENCODING) {
        true => None,
        false => std::str::from_utf8(&bytes).ok(),
    };
    let (body, is_base64_encoded) = match text {
        Some(text) => (text.to_owned(), false),
        None => (
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            true,
        ),
    };
    let mut answer = json!({
        "statusCode": parts.status.as_u16(),
        "isBase64Encoded": is_base64_encoded,
    });
    if !body.is_empty() {
        answer["body"] = Value::String(body);
    }
    // Values are text in JSON: one that is not UTF-8 could not be sent, so it is left out.
    let values = |name: &http::HeaderName| -> Vec<String> {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok().map(str::to_owned))
            .collect()
    };
    match origin {
        Origin::RestV1 => {
            let headers: Map<String, Value> = parts
                .headers
                .keys()
                .map(|name| (name.as_str().to_owned(), json!(values(name))))
                .collect();
            answer["headers"] = json!({});
            answer["multiValueHeaders"] = Value::Object(headers);
        }
        Origin::HttpV2 => {
            let headers: Map<String, Value> = parts
                .headers
                .keys()
                .filter(|name| **name != SET_COOKIE)
                .map(|name| (name.as_str().to_owned(), json!(values(name).join(","))))
                .collect();
            answer["headers"] = Value::Object(headers);
            answer["cookies"] = json!(values(&SET_COOKIE));
        }
    }
    Ok(answer)
}

/// Serves the Runtime API: `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once under Lambda
/// Managed Instances, one at a time under standard Lambda (the variable is unset there).
/// Everything invocations share is safe to share: the router's state is `Arc`s of clients and
/// caches behind locks, and what is per invocation (metrics, trace) is scoped in [`handle`].
pub async fn run(router: Router) -> anyhow::Result<()> {
    let handler = lambda_runtime::service_fn(move |event| handle(router.clone(), event));
    lambda_runtime::run_concurrent(handler)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
