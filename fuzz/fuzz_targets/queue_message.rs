//! The v1 queue message on arbitrary bytes, through both the shared parser and the worker's
//! per-record step: never a panic; a failure is permanent with a known reason; a valid
//! message round-trips through JSON and through its DynamoDB items.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use contract::report::StoredReport;
use platform::item::{read_report, report_item};
use contract::ScoreMessage;
use time::macros::datetime;
use time::OffsetDateTime;
use worker::record::{parse_sent_timestamp, process_record, InboundMessage, RecordError};

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);
const REASONS: [&str; 5] = [
    "empty_body",
    "invalid_json",
    "not_an_object",
    "unknown_version",
    "contract_violation",
];

fuzz_target!(|data: &[u8]| {
    // SQS bodies are text; the first byte picks a SentTimestamp so that fallback is fuzzed too.
    let (sent, body) = match data.split_first() {
        Some((first, rest)) => (Some(*first), rest),
        None => (None, data),
    };
    let body = String::from_utf8_lossy(body).into_owned();

    match ScoreMessage::parse(&body, NOW) {
        Ok(message) => assert_eq!(ScoreMessage::parse(&message.to_json(), NOW), Ok(message)),
        Err(error) => assert!(REASONS.contains(&error.reason_code()), "{error:?}"),
    }

    let record = InboundMessage {
        message_id: "fuzz".into(),
        body: Some(body),
        sent_at: sent
            .and_then(|b| parse_sent_timestamp(&(i64::from(b) * 1_000_000_007).to_string())),
        receive_count: 1,
        attributes: HashMap::new(),
        trace_header: None,
    };
    match process_record(&record, NOW) {
        Ok(stored) => {
            let back = read_report(&report_item(&stored)).expect("own item reads back");
            assert_eq!(back.report, stored.report);
        }
        Err(RecordError::Permanent(reason)) => assert!(REASONS.contains(&reason.reason_code())),
        Err(RecordError::Retryable(why)) => panic!("a message was called retryable: {why}"),
    }
});
