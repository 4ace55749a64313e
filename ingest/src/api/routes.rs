//! Every operation of the API, registered once: each `routes!` call adds the route and its
//! OpenAPI operation together, on top of [`ApiDoc`] (what the document says of all of them).

use axum::extract::DefaultBodyLimit;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::docs::ui;
use super::{batch, health, reads, writes};
use crate::state::AppState;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token the User Service validates; its `sub` claim must equal the userId in the path unless it carries the service scope.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Credit score pipeline",
        description = "Accepts credit score writes (queued, then written by the worker) and serves reads. Errors are RFC 9457 problem details (`application/problem+json`); a 400 or 422 names every bad field or parameter. Lists are paged with an opaque, signed `nextCursor`.",
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "scores", description = "Credit score writes and reads"),
        (name = "operations", description = "Health"),
        (name = "documentation", description = "This document and Swagger UI, served from the binary (no network needed)"),
    )
)]
pub struct ApiDoc;

/// Every operation with its document entry. The paths appear in the document in this order.
pub fn documented_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .merge(ui::router())
}
