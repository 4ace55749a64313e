//! Property tests of every parser and validator in the contract: ids, bureau, score,
//! timestamps, JSON field reading and the v1 queue message (the DynamoDB item mapping's are
//! in `platform/tests/prop_items.rs`).
//!
//! Each property states what must hold for *every* input: arbitrary bytes never panic, valid
//! values round-trip, invalid ones are rejected naming the field.

use std::collections::BTreeSet;

use contract::domain::MAX_FUTURE_SKEW;
use contract::json_fields::{field_names, parse_object, BodyError, FieldReader};
use contract::message::{MessageError, ScoreMessageV1};
use contract::rfc3339::format_utc_millis;
use contract::{Bureau, MessageSource, ReportId, ReportedAt, Score, ScoreMessage, UserId};
use proptest::prelude::*;
use serde_json::{Map, Value};
use test_support::{
    bureau, config, exact_json_value, json_value, shaped_object, source, user_id_text,
    valid_message, NOW,
};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime, UtcOffset};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what RFC 3339's four-digit years can say.
const MIN_UNIX: i64 = -62_167_219_200;
const MAX_UNIX: i64 = 253_402_300_799;
// ---------- strategies ----------

/// The members of the v1 contract, written out here so the tests check the definition
/// rather than repeat it.
const MESSAGE_FIELDS: [&str; 8] = [
    "version",
    "reportId",
    "userId",
    "bureau",
    "score",
    "reportedAt",
    "source",
    "receivedAt",
];

#[test]
fn the_contract_declares_exactly_these_members() {
    assert_eq!(field_names::<ScoreMessageV1>(), MESSAGE_FIELDS);
}

/// An object with any mix of the message's own field names and other keys, holding anything.
fn message_shaped_object() -> impl Strategy<Value = Map<String, Value>> {
    object_of(json_value())
}

fn object_of(
    values: impl Strategy<Value = Value> + 'static,
) -> impl Strategy<Value = Map<String, Value>> {
    shaped_object(&MESSAGE_FIELDS, values, 10)
}

/// Any instant RFC 3339 can write, in any whole-minute offset, with nanoseconds; biased
/// towards the ends of the range, where offset arithmetic overflows.
fn any_timestamp() -> impl Strategy<Value = OffsetDateTime> {
    let seconds = prop_oneof![
        MIN_UNIX..=MAX_UNIX,
        MIN_UNIX..=MIN_UNIX + 2 * 86_400,
        MAX_UNIX - 2 * 86_400..=MAX_UNIX,
        1_600_000_000i64..1_900_000_000,
    ];
    // The wall clock is drawn in range and the offset put on it afterwards, so the instant
    // itself may lie just outside 0000..=9999 in UTC, as a client can write it.
    (seconds, 0u32..1_000_000_000, -1439i32..=1439).prop_filter_map(
        "representable",
        |(s, nanos, offset_minutes)| {
            let wall = OffsetDateTime::from_unix_timestamp(s)
                .ok()?
                .replace_nanosecond(nanos)
                .ok()?;
            let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).ok()?;
            Some(wall.replace_offset(offset))
        },
    )
}

fn utc_millis(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    utc.replace_millisecond(utc.millisecond())
        .expect("a millisecond of a valid instant is valid")
}

// ---------- ids ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn user_ids_of_the_alphabet_round_trip(text in user_id_text()) {
        let id = UserId::parse(&text).expect("valid by construction");
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(id.to_string(), text);
    }

    #[test]
    fn user_ids_are_accepted_exactly_when_key_safe(text in ".{0,140}") {
        let key_safe = !text.is_empty()
            && text.len() <= 128
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match UserId::parse_field("path.userId", &text) {
            Ok(id) => {
                prop_assert!(key_safe, "accepted {:?}", text);
                prop_assert_eq!(id.as_str(), text.as_str());
            }
            Err(e) => {
                prop_assert!(!key_safe, "rejected {:?}", text);
                prop_assert_eq!(e.field, "path.userId");
            }
        }
    }

    #[test]
    fn user_ids_longer_than_128_are_rejected(text in "[A-Za-z0-9_-]{129,300}") {
        prop_assert_eq!(UserId::parse(&text).unwrap_err().field, "userId");
    }

    #[test]
    fn report_ids_are_accepted_exactly_when_key_safe_and_at_most_64(text in ".{0,80}") {
        let key_safe = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match ReportId::parse(&text) {
            Ok(id) => {
                prop_assert!(key_safe);
                prop_assert_eq!(id.as_str(), text.as_str());
            }
            Err(e) => {
                prop_assert!(!key_safe);
                prop_assert_eq!(e.field, "reportId");
            }
        }
    }

    #[test]
    fn report_ids_of_64_key_safe_characters_are_accepted(text in "[A-Za-z0-9_-]{64}") {
        prop_assert!(ReportId::parse(&text).is_ok());
    }
}

// ---------- bureau and score ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn bureau_names_round_trip(b in bureau()) {
        prop_assert_eq!(Bureau::parse(b.as_str()), Ok(b));
        prop_assert_eq!(Bureau::parse(&b.to_string()), Ok(b));
    }

    #[test]
    fn anything_but_the_three_bureau_names_is_rejected(text in ".{0,20}") {
        prop_assume!(!["experian", "equifax", "transunion"].contains(&text.as_str()));
        prop_assert_eq!(Bureau::parse(&text).unwrap_err().field, "bureau");
    }

    #[test]
    fn scores_are_accepted_exactly_within_their_bureau_scale(b in bureau(), value in prop_oneof![0u64..1200, any::<u64>()]) {
        match Score::parse(b, value) {
            Ok(score) => {
                prop_assert!(value <= u64::from(b.max_score()));
                prop_assert_eq!(u64::from(score.value()), value);
            }
            Err(e) => {
                prop_assert!(value > u64::from(b.max_score()));
                prop_assert_eq!(e.field, "score");
                prop_assert!(e.message.contains(&b.max_score().to_string()), "{}", e.message);
                prop_assert!(e.message.contains(b.as_str()), "{}", e.message);
            }
        }
    }
}

// ---------- reportedAt ----------

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn reported_at_never_panics_on_any_text(text in ".{0,40}") {
        let _ = ReportedAt::parse(&text, NOW);
        let _ = ReportedAt::parse_stored(&text);
    }

    #[test]
    fn reported_at_never_panics_on_rfc3339_shaped_text(
        text in "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|z|[+-][0-2][0-9]:[0-5][0-9])"
    ) {
        let _ = ReportedAt::parse(&text, NOW);
        let _ = ReportedAt::parse_stored(&text);
    }

    /// Any RFC 3339 instant is either refused naming `reportedAt`, or becomes UTC to the
    /// millisecond, in a fixed-width form that reads back to the same value.
    #[test]
    fn reported_at_is_normalised_to_utc_millis_or_rejected(t in any_timestamp()) {
        let text = t.format(&Rfc3339).expect("representable by construction");
        match ReportedAt::parse(&text, NOW) {
            Ok(parsed) => {
                let expected = utc_millis(t);
                prop_assert_eq!(parsed.datetime(), expected);
                prop_assert_eq!(parsed.datetime().offset(), UtcOffset::UTC);
                prop_assert!(expected <= NOW + MAX_FUTURE_SKEW);
                let sortable = parsed.to_sortable_string();
                prop_assert_eq!(sortable.len(), "2026-11-28T10:00:00.000Z".len(), "{}", sortable);
                prop_assert_eq!(ReportedAt::parse_stored(&sortable), Some(parsed));
                prop_assert_eq!(ReportedAt::parse(&sortable, NOW), Ok(parsed));
            }
            Err(e) => prop_assert_eq!(e.field, "reportedAt"),
        }
    }

    /// The future rule, exactly: up to 5 minutes ahead of now passes, one millisecond more fails.
    #[test]
    fn reported_at_accepts_up_to_five_minutes_ahead_and_no_more(ahead_ms in -10_000_000i64..10_000_000) {
        let t = NOW + Duration::milliseconds(ahead_ms);
        let text = t.format(&Rfc3339).expect("a 2026 instant formats");
        let result = ReportedAt::parse(&text, NOW);
        if Duration::milliseconds(ahead_ms) <= MAX_FUTURE_SKEW {
            prop_assert!(result.is_ok(), "{} ms ahead: {:?}", ahead_ms, result);
        } else {
            let err = result.unwrap_err();
            prop_assert_eq!(err.field, "reportedAt");
            prop_assert!(err.message.contains("5 minutes"), "{}", err.message);
        }
    }

    /// Sort keys hold the text form, so text order must be time order.
    #[test]
    fn sortable_text_order_is_time_order(a in any_timestamp(), b in any_timestamp()) {
        let far_future = datetime!(9999-12-31 23:00:00 UTC);
        let parse = |t: OffsetDateTime| {
            ReportedAt::parse(&t.format(&Rfc3339).expect("representable"), far_future).ok()
        };
        if let (Some(a), Some(b)) = (parse(a), parse(b)) {
            prop_assert_eq!(a.cmp(&b), a.to_sortable_string().cmp(&b.to_sortable_string()));
        }
    }

    #[test]
    fn formatting_any_instant_never_panics(t in any_timestamp()) {
        let text = format_utc_millis(t);
        prop_assert!(text.ends_with('Z'));
    }
}

// ---------- json_fields ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parse_object_never_panics_and_classifies_every_body(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        match parse_object(&bytes) {
            Ok(_) => prop_assert!(bytes.iter().any(|b| !b.is_ascii_whitespace())),
            Err(BodyError::Empty) => prop_assert!(bytes.iter().all(u8::is_ascii_whitespace)),
            Err(BodyError::NotJson(detail)) => prop_assert!(!detail.is_empty()),
            Err(BodyError::NotAnObject) => {
                let value: Value = serde_json::from_slice(&bytes).expect("it was JSON");
                prop_assert!(!value.is_object());
            }
        }
    }

    #[test]
    fn parse_object_reads_back_any_serialised_object(object in object_of(exact_json_value())) {
        let bytes = serde_json::to_vec(&Value::Object(object.clone())).expect("serialises");
        prop_assert_eq!(parse_object(&bytes), Ok(object));
    }

    /// The reader names only fields it was asked for or fields it does not know, and flags
    /// every wrongly typed or missing one.
    #[test]
    fn field_reader_names_exactly_the_wrong_fields(object in message_shaped_object()) {
        let mut r = FieldReader::new(&object);
        r.reject_unknown(&MESSAGE_FIELDS);
        let s = r.required_str("reportId");
        let n = r.required_u64("score");
        let o = r.optional_str("receivedAt");
        let errors = match r.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.0,
        };
        let named: BTreeSet<String> = errors.iter().map(|e| e.field.clone()).collect();
        for key in object.keys() {
            let shown: String = key.chars().take(64).collect();
            if !MESSAGE_FIELDS.contains(&key.as_str()) {
                prop_assert!(named.contains(&shown), "unknown {:?} not named", key);
            }
        }
        let present = |k: &str| object.get(k).filter(|v| !v.is_null());
        prop_assert_eq!(s.is_some(), matches!(present("reportId"), Some(Value::String(_))));
        prop_assert_eq!(named.contains("reportId"), s.is_none());
        prop_assert_eq!(n.is_some(), present("score").and_then(Value::as_u64).is_some());
        prop_assert_eq!(named.contains("score"), n.is_none());
        prop_assert_eq!(
            named.contains("receivedAt"),
            present("receivedAt").is_some_and(|v| !v.is_string())
        );
        prop_assert_eq!(o.is_some(), matches!(present("receivedAt"), Some(Value::String(_))));
        for e in &errors {
            prop_assert!(!e.message.is_empty());
        }
    }
}

// ---------- the v1 queue message ----------

fn named_fields(err: &MessageError) -> BTreeSet<String> {
    match err {
        MessageError::Invalid(v) => v.fields().map(str::to_owned).collect(),
        _ => BTreeSet::new(),
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn message_parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = ScoreMessage::parse(&text, NOW) {
            prop_assert!(!e.reason_code().is_empty());
        }
    }

    #[test]
    fn message_parse_never_panics_on_arbitrary_json(value in json_value()) {
        let _ = ScoreMessage::parse(&value.to_string(), NOW);
    }

    /// Objects that look like messages: each failure is classified, and a contract violation
    /// names only fields of the contract or keys the object really has.
    #[test]
    fn message_parse_names_only_real_fields(object in message_shaped_object()) {
        let body = Value::Object(object.clone()).to_string();
        match ScoreMessage::parse(&body, NOW) {
            Ok(m) => prop_assert_eq!(ScoreMessage::parse(&m.to_json(), NOW), Ok(m)),
            Err(e) => {
                let code = e.reason_code();
                prop_assert!(["unknown_version", "contract_violation"].contains(&code), "{}", code);
                for field in named_fields(&e) {
                    let known = MESSAGE_FIELDS.contains(&field.as_str())
                        || object.keys().any(|k| k.chars().take(64).collect::<String>() == field);
                    prop_assert!(known, "named {:?}, which is not in {:?}", field, body);
                }
                if code == "contract_violation" {
                    prop_assert!(!named_fields(&e).is_empty());
                }
            }
        }
    }

    #[test]
    fn valid_messages_round_trip_through_json(m in valid_message()) {
        let json = m.to_json();
        let expected = ScoreMessage {
            received_at: m.received_at.map(utc_millis),
            ..m.clone()
        };
        prop_assert_eq!(ScoreMessage::parse(&json, NOW), Ok(expected.clone()));
        // Producers may send the wire struct through any JSON library: same answer.
        let wire: contract::message::ScoreMessageV1 = serde_json::from_str(&json).expect("wire form");
        prop_assert_eq!(wire, expected.to_wire());
    }

    /// Received timestamps in any offset and precision are kept as UTC milliseconds, so a
    /// parsed message is equal to itself after a round trip.
    #[test]
    fn received_at_in_any_offset_round_trips(m in valid_message(), received in any_timestamp()) {
        let mut value: Value = serde_json::from_str(&m.to_json()).expect("own JSON");
        value["receivedAt"] = received.format(&Rfc3339).expect("representable").into();
        match ScoreMessage::parse(&value.to_string(), NOW) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.received_at, Some(utc_millis(received)));
                prop_assert_eq!(ScoreMessage::parse(&parsed.to_json(), NOW), Ok(parsed));
            }
            Err(e) => prop_assert_eq!(named_fields(&e), BTreeSet::from(["receivedAt".to_owned()])),
        }
    }

    /// One field of a valid message replaced by anything: accepted, or refused naming that
    /// field (or `score`, whose range depends on `bureau`); a bad version is its own reason.
    #[test]
    fn one_bad_field_is_the_field_named(
        m in valid_message(),
        field in prop::sample::select(MESSAGE_FIELDS.to_vec()),
        replacement in json_value(),
    ) {
        let mut value: Value = serde_json::from_str(&m.to_json()).expect("own JSON");
        value[field] = replacement;
        match ScoreMessage::parse(&value.to_string(), NOW) {
            Ok(parsed) => prop_assert_eq!(ScoreMessage::parse(&parsed.to_json(), NOW), Ok(parsed)),
            Err(e) if field == "version" => prop_assert_eq!(e.reason_code(), "unknown_version"),
            Err(e) => {
                let named = named_fields(&e);
                prop_assert!(!named.is_empty(), "{:?}", e);
                for n in &named {
                    prop_assert!(n == field || (field == "bureau" && n == "score"), "{} named for {}", n, field);
                }
            }
        }
    }

    #[test]
    fn message_sources_round_trip(s in source()) {
        prop_assert_eq!(MessageSource::parse(&s.to_string()), Ok(s));
    }

    #[test]
    fn other_sources_are_rejected(text in ".{0,80}") {
        match MessageSource::parse(&text) {
            Ok(s) => prop_assert_eq!(s.to_string(), text),
            Err(e) => prop_assert_eq!(e.field, "source"),
        }
    }
}
