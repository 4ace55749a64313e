//! The OpenAPI document, generated from the handlers and types. Swagger UI and the serving
//! of both are in [`crate::docs_ui`].

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToSchema};

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
    #[schema(
        example = "bureau-file-2026-11-28-000042",
        pattern = "^[A-Za-z0-9_-]{1,64}$"
    )]
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

/// Links from an accepted write to where its report can be read (Swagger UI shows them, and
/// schemathesis's stateful phase follows them).
struct WriteLinks;

impl Modify for WriteLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let accepted = openapi
            .paths
            .paths
            .get_mut("/v1/users/{userId}/credit-scores")
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.responses.responses.get_mut("202"));
        let Some(RefOr::T(accepted)) = accepted else {
            return;
        };
        accepted.links.insert(
            "GetReport".into(),
            LinkBuilder::new()
                .operation_id("get_score")
                .parameter("userId", "$request.path.userId")
                .parameter("reportId", "$response.body#/reportId")
                .description("The report, once the worker has written it (404 until then)")
                .build()
                .into(),
        );
        accepted.links.insert(
            "ListReports".into(),
            LinkBuilder::new()
                .operation_id("list_scores")
                .parameter("userId", "$request.path.userId")
                .description("The user's reports, newest first")
                .build()
                .into(),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Credit score pipeline",
        description = "Accepts credit score writes (queued, then written by the worker) and serves reads. Errors are RFC 9457 problem details (`application/problem+json`); a 400 or 422 names every bad field or parameter. Lists are paged with an opaque, signed `nextCursor`.",
    ),
    paths(
        crate::routes::submit_score,
        crate::read_routes::list_scores,
        crate::read_routes::latest_scores,
        crate::read_routes::get_score,
        crate::routes::health,
        crate::batch::submit_batch,
        swagger_ui_page,
        openapi_document,
    ),
    components(schemas(
        ScoreWriteBody,
        crate::routes::Accepted,
        crate::read_routes::ScoreReportView,
        crate::read_routes::ScoreReportPage,
        crate::read_routes::LatestScores,
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
    modifiers(&BearerSecurity, &WriteLinks),
    tags(
        (name = "scores", description = "Credit score writes and reads"),
        (name = "operations", description = "Health"),
        (name = "documentation", description = "This document and Swagger UI, served from the binary (no network needed)"),
    )
)]
pub struct ApiDoc;

pub const SPEC_PATH: &str = "/docs/swagger.json";
/// Swagger UI's page (`/docs` redirects here; its assets live under it).
pub const UI_PATH: &str = "/docs/";

/// Swagger UI for this document, from assets built into the binary: works with no network.
/// `/docs` redirects here.
#[utoipa::path(get, path = "/docs/", tag = "documentation",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html", body = String)))]
#[allow(dead_code)] // served by `docs_ui`; this function only describes it.
fn swagger_ui_page() {}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/docs/swagger.json", tag = "documentation",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = serde_json::Value)))]
#[allow(dead_code)] // served by `docs_ui`; this function only describes it.
fn openapi_document() {}

/// The document as checked in (`ingest/openapi.json`) and served: [`openapi_json`] pretty
/// printed. The binary serves the file's bytes and never runs the generator, so none of the
/// generating code is in it; a test fails when the file and the code drift apart
/// (`UPDATE_OPENAPI=1 cargo test -p pipeline-tests --test api_docs` rewrites it).
pub fn openapi_text() -> String {
    let mut text = serde_json::to_string_pretty(&openapi_json()).unwrap_or_default();
    text.push('\n');
    text
}

/// The document as generated: [`ApiDoc`] in JSON, with link objects' keys spelt as OpenAPI
/// spells them (utoipa 5 writes `operation_id`/`operation_ref`/`request_body`; fixed in 6).
pub fn openapi_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let responses = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut());
        for response in responses {
            let links = response.get_mut("links").and_then(|l| l.as_object_mut());
            for link in links.into_iter().flat_map(|l| l.values_mut()) {
                let Some(link) = link.as_object_mut() else {
                    continue;
                };
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(value) = link.remove(snake) {
                        link.insert(camel.to_owned(), value);
                    }
                }
            }
        }
    }
    doc
}
