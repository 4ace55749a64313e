//! The OpenAPI document as generated from [`super::routes::documented_router`] (the one
//! registration of every operation) and as checked in; Swagger UI and the serving of both
//! are in [`ui`].

pub mod ui;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::RefOr;
use utoipa::Modify;

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

/// The document as checked in (`ingest/openapi.json`) and served: [`openapi_json`] pretty
/// printed. The binary serves the file's bytes; it does build the operations' entries at
/// start-up, as `routes!` registers each route with its entry (see [`super::router`]), but
/// never serialises them. A test fails when the file and the code drift apart
/// (`UPDATE_OPENAPI=1 cargo test -p pipeline-tests --test api api_docs::` rewrites it).
pub fn openapi_text() -> String {
    let mut text = serde_json::to_string_pretty(&openapi_json()).unwrap_or_default();
    text.push('\n');
    text
}

/// The document as generated: the operations of [`super::routes::documented_router`] and
/// their links, in JSON, with link objects' keys spelt as
/// OpenAPI spells them (utoipa 5 writes `operation_id`/`operation_ref`/`request_body`; fixed
/// in 6).
pub fn openapi_json() -> serde_json::Value {
    let (_, mut openapi) = super::routes::documented_router().split_for_parts();
    // After the operations are in: the links hang on the write's 202.
    WriteLinks.modify(&mut openapi);
    let mut doc = serde_json::to_value(openapi).unwrap_or_default();
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
