//! Everything `ingest` and `worker` agree on: validated domain types, the v1 queue message
//! contract, the DynamoDB item mapping, settings and telemetry.
//!
//! Domain types know nothing of AWS; only [`item`] and [`aws`] touch SDK types.

pub mod aws;
pub mod domain;
pub mod item;
pub mod json_fields;
pub mod message;
pub mod provision;
pub mod runtime;
pub mod settings;
pub mod sqs_batch;
pub mod telemetry;

pub use domain::{
    Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId, ValidationErrors,
};
pub use message::{MessageSource, ScoreMessage, MESSAGE_VERSION};
