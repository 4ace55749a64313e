//! What `ingest`, `worker` and every producer agree on, apart from how it travels or is stored:
//!
//! * [`domain`]: the newtypes (`UserId::parse` and friends) and their errors;
//! * [`message`]: the v1 queue contract. `ScoreMessageV1` is its one definition: what is sent,
//!   what the JSON Schema is generated from, and the members the parser accepts;
//! * [`json_fields`]: reading a JSON object field by field (borrowed, for the worker's hot
//!   path) or into a typed body leniently (for ingest), naming every bad field;
//! * [`report`]: a report as stored and the key two copies of it share;
//! * [`rfc3339`]: timestamps as the contract reads and writes them.
//!
//! This crate depends on no AWS SDK crate and no async runtime: `make lint` checks its
//! dependency tree (`scripts/check-contract-deps.sh`), so the domain cannot grow a hidden
//! dependency on the infrastructure it is carried by.

pub mod domain;
pub mod json_fields;
pub mod message;
pub mod report;
pub mod rfc3339;

pub use domain::{
    Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId, ValidationErrors,
};
pub use message::{MessageSource, ScoreMessage, MESSAGE_VERSION};
