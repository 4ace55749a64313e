//! The proptest strategies that the tests of `platform`, `ingest` and `worker` share: ids,
//! bureaus, timestamps, valid reports and queue messages, valid write bodies, arbitrary JSON
//! and objects shaped like a contract. A dev-dependency only (`publish = false`): nothing
//! here reaches a binary.
//!
//! Each generator is written once here, so a contract change (a new field, a new bureau)
//! is made once for every crate's properties.

use contract::domain::MAX_FUTURE_SKEW;
use contract::{
    Bureau, MessageSource, ReportId, ReportedAt, Score, ScoreMessage, ScoreReport, UserId,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use time::macros::datetime;
use time::OffsetDateTime;

/// The "now" every property runs at, so timestamps relative to it are reproducible.
pub const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

/// `cases` cases, otherwise proptest's defaults.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

pub fn bureau() -> impl Strategy<Value = Bureau> {
    prop::sample::select(Bureau::ALL.to_vec())
}

/// A valid user id's text: 1..128 of `[A-Za-z0-9_-]`.
pub fn user_id_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,128}"
}

/// A valid report id's text: 1..64 of `[A-Za-z0-9_-]`.
pub fn report_id_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

/// A plausible bureau timestamp: from 2000 up to the future limit past [`NOW`], to the
/// millisecond.
pub fn plausible_reported_at() -> impl Strategy<Value = OffsetDateTime> {
    let max = (NOW + MAX_FUTURE_SKEW).unix_timestamp() * 1000;
    (946_684_800_000i64..=max).prop_map(|ms| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .expect("in range by construction")
    })
}

pub fn source() -> impl Strategy<Value = MessageSource> {
    prop_oneof![
        Just(MessageSource::Api),
        "[A-Za-z0-9_.-]{1,64}".prop_map(MessageSource::Batch),
    ]
}

/// A valid report: any ids of the alphabet, any bureau with a score on its scale.
pub fn score_report() -> impl Strategy<Value = ScoreReport> {
    (
        report_id_text(),
        user_id_text(),
        bureau(),
        any::<u16>(),
        plausible_reported_at(),
    )
        .prop_map(|(r, u, b, s, t)| ScoreReport {
            report_id: ReportId::parse(&r).expect("generated from the alphabet"),
            user_id: UserId::parse(&u).expect("generated from the alphabet"),
            bureau: b,
            score: Score::parse(b, u64::from(s % (b.max_score() + 1))).expect("in range"),
            reported_at: ReportedAt::from_datetime(t),
        })
}

/// A valid v1 queue message, with or without `receivedAt`.
pub fn valid_message() -> impl Strategy<Value = ScoreMessage> {
    (
        score_report(),
        source(),
        proptest::option::of(plausible_reported_at()),
    )
        .prop_map(|(report, source, received_at)| ScoreMessage {
            report,
            source,
            received_at,
        })
}

/// [`valid_message`] as the JSON object a producer sends.
pub fn valid_message_json() -> impl Strategy<Value = Value> {
    valid_message().prop_map(|m| serde_json::to_value(m.to_wire()).unwrap_or_default())
}

/// A valid write body: any bureau, a score on its scale, reported any time up to the future
/// limit past [`NOW`], with or without a `reportId`.
pub fn valid_write_body() -> impl Strategy<Value = Value> {
    (
        bureau(),
        any::<u16>(),
        -100_000_000i64..=300,
        proptest::option::of(report_id_text()),
    )
        .prop_map(|(b, s, offset_seconds, report_id)| {
            let reported = NOW + time::Duration::seconds(offset_seconds);
            let mut body = json!({
                "bureau": b.as_str(),
                "score": s % (b.max_score() + 1),
                "reportedAt": reported
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("2026 formats"),
            });
            if let Some(id) = report_id {
                body["reportId"] = id.into();
            }
            body
        })
}

/// JSON without floats, which serde_json does not promise to print and read back bit for
/// bit.
pub fn exact_json_value() -> impl Strategy<Value = Value> {
    json_of(prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ])
}

/// Any JSON value, floats included.
pub fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => exact_json_value(),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn json_of(leaf: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects of up to `max_members` members mixing a contract's own field names (three times
/// out of four) with any other keys, holding `values`.
pub fn shaped_object(
    fields: &'static [&'static str],
    values: impl Strategy<Value = Value> + 'static,
    max_members: usize,
) -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        3 => prop::sample::select(fields.to_vec()).prop_map(str::to_owned),
        1 => ".{0,80}",
    ];
    prop::collection::btree_map(key, values, 0..max_members).prop_map(|m| m.into_iter().collect())
}
