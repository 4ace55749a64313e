//! Everything `ingest` and `worker` agree on: validated domain types, the v1 queue message
//! contract, the DynamoDB item mapping, settings and telemetry.
//!
//! * [`domain`]: the newtypes (`UserId::parse` and friends) and their errors;
//! * [`message`]: the v1 contract. `ScoreMessageV1` is its one definition: what is sent, what
//!   the JSON Schema is generated from, and the members the parser accepts;
//! * [`json_fields`]: reading a JSON object field by field (borrowed, for the worker's hot
//!   path) or into a typed body leniently (for ingest), naming every bad field;
//! * [`item`]: the DynamoDB item mapping; [`aws`], [`sqs_batch`], [`provision`]: the SDK
//!   clients, batched sends and provisioning; [`settings`], [`telemetry`] (logs),
//!   [`metrics`] (CloudWatch EMF), [`runtime`]; [`invocation`]: what belongs to the one Lambda
//!   invocation a task runs (its metrics and trace), apart from the others running beside it.
//!
//! Domain types know nothing of AWS; only [`item`], [`aws`], [`sqs_batch`] and [`provision`]
//! touch SDK types.

pub mod aws;
pub mod domain;
pub mod invocation;
pub mod item;
pub mod json_fields;
pub mod message;
pub mod metrics;
pub mod provision;
pub mod runtime;
pub mod settings;
pub mod sqs_batch;
pub mod telemetry;

pub use domain::{
    Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId, ValidationErrors,
};
pub use message::{MessageSource, ScoreMessage, MESSAGE_VERSION};
