//! The HTTP edge: one module per operation group, each handler extracting, parsing, calling a
//! port and responding. Only this module knows HTTP: the ports' errors become statuses in
//! [`error`], once.
//!
//! Every operation is registered once, in [`router`], with `utoipa-axum`'s `routes!`: the one
//! registration adds both the route and its entry in the OpenAPI document, so the two cannot
//! disagree.

pub mod batch;
pub mod bodies;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod reads;
pub mod writes;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::AppState;
use error::ApiError;

/// Largest body accepted (413 above it); the batch route has its own, larger one.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every operation with its document entry. The paths appear in the document in this order.
pub fn documented_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(writes::submit_score))
        .routes(routes!(reads::list_scores))
        // A static segment outranks `{reportId}`, so `latest` is never taken for a report id.
        .routes(routes!(reads::latest_scores))
        .routes(routes!(reads::get_score))
        .routes(routes!(health::health))
        // Its own, larger body limit (500 entries); it overrides the router-wide one.
        .routes(
            routes!(batch::submit_batch).layer(DefaultBodyLimit::max(batch::MAX_BATCH_BODY_BYTES)),
        )
        .merge(docs::ui::router())
}

/// The API as served: [`documented_router`] without its document (the binary serves the
/// checked-in copy, see [`docs::openapi_text`]), with the problem-document fallbacks.
pub fn router(state: AppState) -> Router {
    let (router, _document) = documented_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Unknown paths get a problem document too.
async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
