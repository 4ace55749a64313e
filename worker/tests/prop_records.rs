//! Property tests of what the worker reads from SQS: message bodies, SentTimestamp, and the
//! visibility delay it sets on failed messages.

use std::collections::HashMap;
use std::time::Duration;

use platform::item::{read_report, report_item};
use proptest::prelude::*;
use serde_json::Value;
use test_support::{config, json_value, valid_message_json, NOW};
use time::OffsetDateTime;
use worker::poller::failure_visibility;
use worker::record::{parse_sent_timestamp, process_record, InboundMessage, RecordError};

const REASONS: [&str; 5] = [
    "empty_body",
    "invalid_json",
    "not_an_object",
    "unknown_version",
    "contract_violation",
];
/// The poller never delays a message longer than this (DESIGN: capped backoff).
const MAX_FAILURE_DELAY_SECONDS: u64 = 300;

/// A valid message's JSON (the shared generator), to corrupt or to send as it is.
fn valid_body() -> impl Strategy<Value = Value> {
    valid_message_json()
}

/// Bodies from every corner: arbitrary bytes, arbitrary JSON, valid messages with one field
/// replaced by anything, and none at all.
fn any_body() -> impl Strategy<Value = Option<String>> {
    let field = prop::sample::select(vec![
        "version",
        "reportId",
        "userId",
        "bureau",
        "score",
        "reportedAt",
        "source",
        "receivedAt",
        "extra",
    ]);
    prop_oneof![
        Just(None),
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
        json_value().prop_map(|v| Some(v.to_string())),
        valid_body().prop_map(|v| Some(v.to_string())),
        (valid_body(), field, json_value()).prop_map(|(mut v, f, r)| {
            v[f] = r;
            Some(v.to_string())
        }),
    ]
}

fn message(body: Option<String>, sent_at: Option<OffsetDateTime>) -> InboundMessage {
    InboundMessage {
        trace_header: None,
        message_id: "m-1".into(),
        body,
        sent_at,
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any record: a report that maps to items and reads back, or a permanent failure with
    /// a known reason. Never a panic, never "retry" for a message that can never succeed.
    #[test]
    fn process_record_never_panics_and_classifies_every_record(
        body in any_body(),
        sent_ms in proptest::option::of(any::<i64>()),
    ) {
        let sent_at = sent_ms.and_then(|ms| parse_sent_timestamp(&ms.to_string()));
        match process_record(&message(body.clone(), sent_at), NOW) {
            Ok(stored) => {
                prop_assert_eq!(read_report(&report_item(&stored)).map(|s| s.report), Ok(stored.report));
            }
            Err(RecordError::Permanent(reason)) => {
                prop_assert!(REASONS.contains(&reason.reason_code()), "{}", reason.reason_code());
                prop_assert!(!reason.to_string().is_empty());
            }
            Err(e @ RecordError::Retryable(_)) => prop_assert!(false, "{} for {:?}", e, body),
        }
    }

    /// receivedAt is the producer's when given, else SQS's SentTimestamp, else now.
    #[test]
    fn received_at_falls_back_to_sent_timestamp_then_now(body in valid_body(), sent_ms in proptest::option::of(1_500_000_000_000i64..1_800_000_000_000)) {
        let sent_at = sent_ms.and_then(|ms| parse_sent_timestamp(&ms.to_string()));
        let stored = process_record(&message(Some(body.to_string()), sent_at), NOW)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match body.get("receivedAt").and_then(Value::as_str) {
            Some(text) => prop_assert_eq!(contract::rfc3339::format_utc_millis(stored.received_at), text),
            None => prop_assert_eq!(stored.received_at, sent_at.unwrap_or(NOW)),
        }
    }

    #[test]
    fn sent_timestamps_parse_only_as_epoch_milliseconds(text in prop_oneof![".{0,30}".boxed(), any::<i64>().prop_map(|n| n.to_string()).boxed()]) {
        if let Some(t) = parse_sent_timestamp(&text) {
            let ms: i128 = text.parse().expect("parsed, so numeric");
            prop_assert_eq!(t.unix_timestamp_nanos(), ms * 1_000_000);
        }
    }

    /// The visibility delay of a failed message: base * 2^(receives-1), capped at 5 minutes,
    /// jittered into the upper half; never zero unless the base is, never overflowing.
    #[test]
    fn failure_visibility_stays_within_its_bounds(base_s in 0u64..100_000, receives in any::<u32>()) {
        let delay = failure_visibility(Duration::from_secs(base_s), receives).as_secs();
        let exponent = receives.saturating_sub(1).min(16);
        let cap = base_s.saturating_mul(1 << exponent).min(MAX_FAILURE_DELAY_SECONDS);
        prop_assert!(delay <= cap, "{} > cap {}", delay, cap);
        prop_assert!(delay * 2 + 1 >= cap, "{} below half of {}", delay, cap);
        if base_s > 0 {
            prop_assert!(delay >= 1, "a failed message came straight back");
        }
    }

    /// Each further receive waits at least as long as the floor of the one before: jitter
    /// keeps every delay in [cap/2, cap] and the cap only grows.
    #[test]
    fn failure_visibility_never_falls_below_the_previous_floor(base_s in 1u64..60, receives in 1u32..40) {
        let cap = |n: u32| base_s.saturating_mul(1 << n.saturating_sub(1).min(16)).min(MAX_FAILURE_DELAY_SECONDS);
        let next = failure_visibility(Duration::from_secs(base_s), receives + 1).as_secs();
        prop_assert!(next * 2 + 1 >= cap(receives), "{} after a cap of {}", next, cap(receives));
    }
}
