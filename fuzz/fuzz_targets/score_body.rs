//! The POST body parser on arbitrary bytes: never a panic; a refusal is a 4xx naming at
//! least one field; an acceptance becomes a queue message the worker accepts unchanged.
#![no_main]

use ingest::api::bodies::parse_score_body;
use ingest::api::error::ApiError;
use libfuzzer_sys::fuzz_target;
use contract::{MessageSource, ScoreMessage, UserId};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

fuzz_target!(|data: &[u8]| {
    let user = UserId::parse("alice").expect("valid");
    match parse_score_body(user, None, data, NOW) {
        Ok(report) => {
            let message = ScoreMessage {
                report,
                source: MessageSource::Api,
                received_at: Some(NOW),
            };
            assert_eq!(ScoreMessage::parse(&message.to_json(), NOW), Ok(message));
        }
        Err(error) => {
            assert!(error.status().is_client_error(), "{error:?}");
            let named = match &error {
                ApiError::Validation(v) => v.0.len(),
                ApiError::BadRequest { errors, .. } => errors.len(),
                other => panic!("unexpected refusal {other:?}"),
            };
            assert!(named > 0, "a refusal named no field: {error:?}");
        }
    }
});
