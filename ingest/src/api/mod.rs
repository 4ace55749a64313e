//! The HTTP edge: one module per operation group, each handler extracting, parsing, calling a
//! port and responding. Only this module knows HTTP: the ports' errors become statuses in
//! [`error`], once.
//!
//! Every operation is registered once, in [`routes::documented_router`], with `utoipa-axum`'s
//! `routes!`: the one registration adds both the route and its entry in the OpenAPI
//! document, so the two cannot disagree.

pub mod batch;
pub mod bodies;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod observe;
pub mod reads;
pub mod routes;
pub mod writes;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::state::AppState;
use error::ApiError;
use extract::MAX_BODY_BYTES;

/// The API as served: [`routes::documented_router`] without its document (the binary serves
/// the checked-in copy, see [`docs::openapi_text`]), with the problem-document fallbacks.
pub fn router(state: AppState) -> Router {
    let (router, _document) = routes::documented_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost: it sees every response, the fallbacks' and the body limit's too.
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

/// Unknown paths get a problem document too.
async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
