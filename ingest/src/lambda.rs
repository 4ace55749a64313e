//! Lambda mode: API Gateway in front: route on the path the client used, without the stage.

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use crate::api::observe::GatewayRequestId;
use crate::auth::GatewayClaims;

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
        // Lambda may freeze the process once the response is sent: metrics go out first.
        .map_future(|response| async move {
            let response = response.await;
            shared::metrics::flush();
            response
        })
        .service(router)
}

pub async fn run(router: Router) -> anyhow::Result<()> {
    lambda_http::run(service(router))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
