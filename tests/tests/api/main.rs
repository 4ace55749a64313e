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
