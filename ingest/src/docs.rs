//! The OpenAPI document, generated from the handlers and types, and Swagger UI served from
//! assets vendored into the binary (no network needed to view it).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

/// The body of a score write.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // documents the contract; parsing is done field by field in `write`.
pub struct ScoreWriteBody {
    /// experian (0..=999), equifax (0..=1000) or transunion (0..=710).
    #[schema(example = "experian")]
    pub bureau: shared::Bureau,
    /// Checked against the bureau's range.
    #[schema(example = 742, minimum = 0, maximum = 1000)]
    pub score: u16,
    /// RFC 3339; at most 5 minutes in the future.
    #[schema(example = "2026-11-28T10:00:00Z", format = DateTime)]
    pub reported_at: String,
    /// Optional idempotency key (1..64 of [A-Za-z0-9_-]); must equal Idempotency-Key if both are sent.
    #[schema(example = "bureau-file-2026-11-28-000042")]
    pub report_id: Option<String>,
}

/// One entry of a batch: a score write plus the user it belongs to.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // documents the contract; parsing is done field by field in `batch`.
pub struct BatchEntryBody {
    /// 1..128 of [A-Za-z0-9_-].
    #[schema(example = "user-42")]
    pub user_id: String,
    /// experian (0..=999), equifax (0..=1000) or transunion (0..=710).
    #[schema(example = "experian")]
    pub bureau: shared::Bureau,
    /// Checked against the bureau's range.
    #[schema(example = 742, minimum = 0, maximum = 1000)]
    pub score: u16,
    /// RFC 3339; at most 5 minutes in the future.
    #[schema(example = "2026-11-28T10:00:00Z", format = DateTime)]
    pub reported_at: String,
    /// Idempotency key (1..64 of [A-Za-z0-9_-]); send one so a retried entry is stored once.
    #[schema(example = "bureau-file-2026-11-28-000042")]
    pub report_id: Option<String>,
}

/// A batch of 1..500 score entries for any users (service scope only; body at most 1 MiB).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the contract; parsing is done field by field in `batch`.
pub struct BatchRequestBody {
    #[schema(min_items = 1, max_items = 500)]
    pub items: Vec<BatchEntryBody>,
}

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
        description = "Accepts credit score writes (queued, then written by the worker) and serves reads. Errors are RFC 9457 problem details.",
    ),
    paths(
        crate::routes::submit_score,
        crate::routes::health,
        crate::batch::submit_batch,
    ),
    components(schemas(
        ScoreWriteBody,
        crate::routes::Accepted,
        crate::routes::Health,
        crate::error::Problem,
        shared::FieldError,
        shared::Bureau,
        BatchRequestBody,
        BatchEntryBody,
        crate::batch::BatchResponse,
        crate::batch::BatchItemResult,
        crate::batch::BatchItemStatus,
    )),
    modifiers(&BearerSecurity),
    tags(
        (name = "scores", description = "Credit score writes and reads"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

pub const SPEC_PATH: &str = "/docs/swagger.json";

/// `/docs` (Swagger UI) and `/docs/swagger.json` (the document).
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs").url(SPEC_PATH, ApiDoc::openapi())
}
