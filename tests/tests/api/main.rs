//! ingest's HTTP API, served in-process on a real socket (`pipeline_tests::spawn_app`), against
//! the emulator's SQS and DynamoDB and a User Service stub, or a JWKS issuer on loopback. One
//! test binary, a module per area.

mod api_docs;
mod auth_jwks;
mod auth_outage;
mod bad_inputs;
mod batch_endpoint;
mod cors;
mod idempotency_key;
mod read_api;
mod write_api;

use serde_json::Value;

/// The fields a problem document's `errors` name, in order.
fn named_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
