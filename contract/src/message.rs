//! The v1 queue message: one JSON object per SQS message, whoever produced it.
//!
//! ```json
//! {"version":1,"reportId":"...","userId":"...","bureau":"experian","score":812,
//!  "reportedAt":"2026-11-28T10:00:00Z","source":"api","receivedAt":"2026-11-28T10:00:01Z"}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{
    Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId, ValidationErrors,
};
use crate::json_fields::{field_names, BodyError, FieldReader, JsonScalar, Member, ObjectFields};
use crate::rfc3339::{format_utc_millis, parse_rfc3339, utc_millis};

/// The only contract version this build understands.
pub const MESSAGE_VERSION: u64 = 1;

/// The SQS message attribute carrying the correlation id end to end.
pub const CORRELATION_ID_ATTRIBUTE: &str = "correlationId";

/// The members a message may carry: those of [`ScoreMessageV1`], the one definition the
/// schema is generated from, read once from its `Deserialize`.
fn fields() -> &'static [&'static str] {
    static FIELDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(field_names::<ScoreMessageV1>)
}

/// The v1 message as it appears on the wire. Producers in other languages validate against
/// the JSON Schema generated from this type ([`json_schema`]); the checked-in copy is
/// `schemas/score-message-v1.schema.json`, and a test fails when the two drift apart.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ScoreMessageV1", transform = contract_rules)]
pub struct ScoreMessageV1 {
    /// Contract version; always 1. Any other value is a permanent failure (DLQ reason
    /// `unknown_version`).
    #[schemars(extend("const" = MESSAGE_VERSION))]
    pub version: u64,
    /// Idempotency key: the same reportId for the same user always maps to one table item, so
    /// a message sent twice is stored once.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub report_id: String,
    /// The user the score belongs to.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub user_id: String,
    /// The credit bureau; it fixes the score's range.
    pub bureau: String,
    /// The score, checked against the bureau's range (see `allOf`).
    pub score: u64,
    /// When the bureau produced the score, RFC 3339. The worker also rejects timestamps more
    /// than 5 minutes in the future (a rule JSON Schema cannot express).
    #[schemars(extend("format" = "date-time"))]
    pub reported_at: String,
    /// Who produced the message: `api`, or `batch:<producer-name>`.
    #[schemars(regex(pattern = r"^(api|batch:[A-Za-z0-9_.-]{1,64})$"))]
    pub source: String,
    /// When the producer received the score (RFC 3339); optional for batch producers (the
    /// worker uses the SQS SentTimestamp when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub received_at: Option<String>,
}

/// The schema's `$id`: stable, so producers can pin it.
pub const SCHEMA_ID: &str = "urn:credit-scores:score-message:v1";

/// The rules the derive cannot see, taken from the domain types so they cannot drift:
/// the bureau list, the widest score range, and each bureau's own maximum.
fn contract_rules(schema: &mut schemars::Schema) {
    let bureaus: Vec<&str> = Bureau::ALL.iter().map(|b| b.as_str()).collect();
    let widest = Bureau::ALL
        .iter()
        .map(|b| b.max_score())
        .max()
        .unwrap_or_default();
    let ranges: Vec<String> = Bureau::ALL
        .iter()
        .map(|b| format!("{b} 0..={}", b.max_score()))
        .collect();
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert(
        "description".into(),
        "One credit score on the credit-scores SQS queue, contract version 1: one JSON object \
         per message body. Whoever sends it (the HTTP API or a batch producer), the worker \
         validates it field by field; a message that breaks this contract goes to the \
         dead-letter queue with a failureReason attribute and is never retried."
            .into(),
    );
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for prop in props
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            // schemars marks Rust integer widths (`uint64`); they are no JSON Schema format.
            if prop
                .get("format")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|f| f.starts_with("uint") || f.starts_with("int"))
            {
                prop.remove("format");
            }
        }
        if let Some(bureau) = props
            .get_mut("bureau")
            .and_then(serde_json::Value::as_object_mut)
        {
            bureau.insert("enum".into(), serde_json::json!(bureaus));
        }
        if let Some(score) = props
            .get_mut("score")
            .and_then(serde_json::Value::as_object_mut)
        {
            score.insert("minimum".into(), 0.into());
            score.insert("maximum".into(), widest.into());
            score.insert(
                "description".into(),
                format!(
                    "The score, checked against the bureau's range: {}.",
                    ranges.join(", ")
                )
                .into(),
            );
        }
    }
    let per_bureau: Vec<serde_json::Value> = Bureau::ALL
        .iter()
        .map(|b| {
            serde_json::json!({
                "if": {"properties": {"bureau": {"const": b.as_str()}}, "required": ["bureau"]},
                "then": {"properties": {"score": {"maximum": b.max_score()}}}
            })
        })
        .collect();
    schema.insert("allOf".into(), per_bureau.into());
}

/// The v1 contract as a JSON Schema (draft 2020-12), generated from [`ScoreMessageV1`].
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(ScoreMessageV1).to_value()
}

/// [`json_schema`] as the pretty-printed text checked into `schemas/`.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Who put a message on the queue: the HTTP API, or a named batch producer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageSource {
    Api,
    Batch(String),
}

impl MessageSource {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        if value == "api" {
            return Ok(Self::Api);
        }
        match value.strip_prefix("batch:") {
            Some(name)
                if !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) =>
            {
                Ok(Self::Batch(name.to_owned()))
            }
            _ => Err(FieldError::new(
                "source",
                "must be \"api\" or \"batch:<producer-name>\" (1..64 of [A-Za-z0-9_.-])",
            )),
        }
    }
}

impl fmt::Display for MessageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api => f.write_str("api"),
            Self::Batch(name) => write!(f, "batch:{name}"),
        }
    }
}

/// A validated queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreMessage {
    pub report: ScoreReport,
    pub source: MessageSource,
    pub received_at: Option<OffsetDateTime>,
}

/// Why a message body is not a valid v1 message. All of these are permanent: retrying the
/// same bytes can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("unsupported message version {0}; this worker understands version 1")]
    UnknownVersion(String),
    #[error("contract violation: {0}")]
    Invalid(#[from] ValidationErrors),
}

impl MessageError {
    /// Why the message was refused, as the DLQ and the metrics name it.
    pub fn reason(&self) -> PoisonReason {
        match self {
            Self::Body(BodyError::Empty) => PoisonReason::EmptyBody,
            Self::Body(BodyError::NotJson(_)) => PoisonReason::InvalidJson,
            Self::Body(BodyError::NotAnObject) => PoisonReason::NotAnObject,
            Self::UnknownVersion(_) => PoisonReason::UnknownVersion,
            Self::Invalid(_) => PoisonReason::ContractViolation,
        }
    }

    /// A short stable code for DLQ attributes and metrics.
    pub fn reason_code(&self) -> &'static str {
        self.reason().code()
    }
}

/// The reasons a message is refused for good (its DLQ `failureReason`): the body itself is
/// wrong, so sending it again only brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonReason {
    InvalidJson,
    EmptyBody,
    NotAnObject,
    ContractViolation,
    UnknownVersion,
}

impl PoisonReason {
    /// Every reason, in the order the DLQ tools list them.
    pub const ALL: [Self; 5] = [
        Self::InvalidJson,
        Self::EmptyBody,
        Self::NotAnObject,
        Self::ContractViolation,
        Self::UnknownVersion,
    ];

    /// The wire code (the DLQ's `failureReason`, the metrics' `Reason`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::EmptyBody => "empty_body",
            Self::NotAnObject => "not_an_object",
            Self::ContractViolation => "contract_violation",
            Self::UnknownVersion => "unknown_version",
        }
    }

    /// The reason with this wire code, if it is one.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

/// The `version` a message carried, as JSON text cut to 32 characters, for the DLQ reason.
/// Only poison takes this path, so re-reading the body as a `Value` costs nothing that
/// matters.
fn shown_version(body: &str) -> String {
    let version = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body)
        .ok()
        .and_then(|mut object| object.remove("version"))
        .unwrap_or_default();
    version.to_string().chars().take(32).collect()
}

/// The `bureau`, `score` and `reportedAt` members as sent, wherever they were read from.
pub struct SentScore<'v> {
    pub bureau: Option<Member<'v>>,
    pub score: Option<Member<'v>>,
    pub reported_at: Option<Member<'v>>,
}

/// Reads `bureau`, then `score` against that bureau's range, then `reportedAt`, recording
/// every problem in `r`. The HTTP bodies and the queue message share these rules.
pub fn read_bureau_score_reported_at(
    r: &mut FieldReader<'_>,
    sent: SentScore<'_>,
    now: OffsetDateTime,
) -> (Option<Bureau>, Option<Score>, Option<ReportedAt>) {
    let bureau = r
        .required_str_of("bureau", sent.bureau)
        .and_then(|v| Bureau::parse(v).map_err(|e| r.push(e)).ok());
    let raw_score = r.required_u64_of("score", sent.score);
    let score = match (bureau, raw_score) {
        (Some(b), Some(s)) => Score::parse(b, s).map_err(|e| r.push(e)).ok(),
        _ => None,
    };
    let reported_at = r
        .required_str_of("reportedAt", sent.reported_at)
        .and_then(|v| ReportedAt::parse(v, now).map_err(|e| r.push(e)).ok());
    (bureau, score, reported_at)
}

impl ScoreMessage {
    /// Parses and validates one message body. `now` bounds `reportedAt`. The body is decoded
    /// straight into borrowed fields (no `serde_json::Value` tree): this runs once per record.
    pub fn parse(body: &str, now: OffsetDateTime) -> Result<Self, MessageError> {
        let fields = ObjectFields::parse(body.as_bytes())?;
        match fields.get("version") {
            Some(JsonScalar::WholeNumber(MESSAGE_VERSION)) => {}
            Some(_) => return Err(MessageError::UnknownVersion(shown_version(body))),
            None => return Err(ValidationErrors::single("version", "is required").into()),
        }
        Self::read(FieldReader::for_fields(&fields), now)
    }

    /// Every field after the version, each problem recorded with its field's name.
    fn read(mut r: FieldReader<'_>, now: OffsetDateTime) -> Result<Self, MessageError> {
        r.reject_unknown(fields());
        let report_id = r
            .required_str("reportId")
            .and_then(|v| ReportId::parse(v).map_err(|e| r.push(e)).ok());
        let user_id = r
            .required_str("userId")
            .and_then(|v| UserId::parse(v).map_err(|e| r.push(e)).ok());
        let sent = SentScore {
            bureau: r.member("bureau"),
            score: r.member("score"),
            reported_at: r.member("reportedAt"),
        };
        let (bureau, score, reported_at) = read_bureau_score_reported_at(&mut r, sent, now);
        let source = r
            .required_str("source")
            .and_then(|v| MessageSource::parse(v).map_err(|e| r.push(e)).ok());
        let received_at = match r.optional_str("receivedAt") {
            // Kept as UTC milliseconds, as it is sent on and stored, so a parsed message
            // equals itself after a round trip.
            Some(v) => match parse_rfc3339(v).and_then(utc_millis) {
                Some(t) => Some(t),
                None => {
                    r.push(FieldError::new(
                        "receivedAt",
                        "must be an RFC 3339 timestamp between the years 0000 and 9999 in UTC",
                    ));
                    None
                }
            },
            None => None,
        };
        match (report_id, user_id, bureau, score, reported_at, source) {
            (
                Some(report_id),
                Some(user_id),
                Some(bureau),
                Some(score),
                Some(reported_at),
                Some(source),
            ) if !r.has_errors() => Ok(Self {
                report: ScoreReport {
                    report_id,
                    user_id,
                    bureau,
                    score,
                    reported_at,
                },
                source,
                received_at,
            }),
            _ => Err(r
                .finish()
                .err()
                .unwrap_or_else(|| ValidationErrors::single("message", "is incomplete"))
                .into()),
        }
    }

    pub fn to_wire(&self) -> ScoreMessageV1 {
        ScoreMessageV1 {
            version: MESSAGE_VERSION,
            report_id: self.report.report_id.to_string(),
            user_id: self.report.user_id.to_string(),
            bureau: self.report.bureau.to_string(),
            score: u64::from(self.report.score.value()),
            reported_at: self.report.reported_at.to_string(),
            source: self.source.to_string(),
            received_at: self.received_at.map(format_utc_millis),
        }
    }

    /// The message body to send.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    fn valid() -> serde_json::Value {
        serde_json::json!({"version":1,"reportId":"r-1","userId":"alice","bureau":"experian",
            "score":812,"reportedAt":"2026-11-28T09:00:00Z","source":"api",
            "receivedAt":"2026-11-28T09:00:01Z"})
    }

    #[test]
    fn parses_the_documented_example() {
        let m = ScoreMessage::parse(&valid().to_string(), NOW).unwrap();
        assert_eq!(m.report.user_id.as_str(), "alice");
        assert_eq!(m.report.score.value(), 812);
        assert_eq!(m.source, MessageSource::Api);
    }

    #[test]
    fn round_trips_through_json() {
        let m = ScoreMessage::parse(&valid().to_string(), NOW).unwrap();
        assert_eq!(ScoreMessage::parse(&m.to_json(), NOW), Ok(m));
    }

    #[test]
    fn received_at_is_optional_for_producers() {
        let mut v = valid();
        v.as_object_mut().map(|o| o.remove("receivedAt"));
        v["source"] = "batch:bureau-import".into();
        let m = ScoreMessage::parse(&v.to_string(), NOW).unwrap();
        assert_eq!(m.received_at, None);
        assert_eq!(m.source, MessageSource::Batch("bureau-import".into()));
    }

    #[test]
    fn unknown_version_is_its_own_failure() {
        let mut v = valid();
        v["version"] = 2.into();
        let err = ScoreMessage::parse(&v.to_string(), NOW).unwrap_err();
        assert_eq!(err.reason_code(), "unknown_version");
        v["version"] = "1".into();
        let err = ScoreMessage::parse(&v.to_string(), NOW).unwrap_err();
        assert_eq!(err.reason_code(), "unknown_version");
    }

    #[test]
    fn names_every_violated_field() {
        let body = r#"{"version":1,"reportId":"a b","userId":"","bureau":"fico","score":-1,
            "reportedAt":"soon","source":"ftp","extra":1}"#;
        let err = ScoreMessage::parse(body, NOW).unwrap_err();
        let MessageError::Invalid(errors) = &err else {
            panic!("expected a contract violation, got {err:?}");
        };
        let mut fields: Vec<&str> = errors.fields().collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "bureau",
                "extra",
                "reportId",
                "reportedAt",
                "score",
                "source",
                "userId"
            ]
        );
        assert_eq!(err.reason_code(), "contract_violation");
    }

    /// Found by property testing: a receivedAt in another offset or finer than milliseconds
    /// did not equal itself after a round trip; one past 9999 in UTC panicked when stored.
    #[test]
    fn received_at_is_kept_as_utc_millis_and_bounded() {
        let mut v = valid();
        v["receivedAt"] = "2026-11-28T10:00:01.123456+01:00".into();
        let m = ScoreMessage::parse(&v.to_string(), NOW).unwrap();
        assert_eq!(
            m.to_wire().received_at.as_deref(),
            Some("2026-11-28T09:00:01.123Z")
        );
        assert_eq!(ScoreMessage::parse(&m.to_json(), NOW), Ok(m));
        v["receivedAt"] = "9999-12-31T23:00:00-05:00".into();
        let err = ScoreMessage::parse(&v.to_string(), NOW).unwrap_err();
        let MessageError::Invalid(errors) = err else {
            panic!("expected a contract violation");
        };
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["receivedAt"]);
    }

    #[test]
    fn classifies_non_json_bodies() {
        assert_eq!(
            ScoreMessage::parse("not json", NOW)
                .unwrap_err()
                .reason_code(),
            "invalid_json"
        );
        assert_eq!(
            ScoreMessage::parse("[]", NOW).unwrap_err().reason_code(),
            "not_an_object"
        );
        assert_eq!(
            ScoreMessage::parse("", NOW).unwrap_err().reason_code(),
            "empty_body"
        );
    }

    /// The parser before it decoded straight from the bytes: through a `serde_json::Value`
    /// map. The fast path must agree with it on every input, errors word for word.
    fn parse_via_value(body: &str, now: OffsetDateTime) -> Result<ScoreMessage, MessageError> {
        let object = crate::json_fields::parse_object(body.as_bytes())?;
        match object.get("version") {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(MESSAGE_VERSION) => {}
            Some(other) => {
                return Err(MessageError::UnknownVersion(
                    other.to_string().chars().take(32).collect(),
                ))
            }
            None => return Err(ValidationErrors::single("version", "is required").into()),
        }
        ScoreMessage::read(FieldReader::new(&object), now)
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<u16>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("812.0".to_owned()),
            Just("-0".to_owned()),
            Just("1e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            prop::sample::select(vec![
                "experian",
                "equifax",
                "transunion",
                "fico",
                "api",
                "batch:nightly",
                "batch:",
                "r-1",
                "alice",
                "a b",
                "latest",
                "2026-11-28T09:00:00Z",
                "2026-11-28T10:00:01.5+01:00",
                "9999-12-31T23:00:00-05:00",
                "2027-01-01T00:00:00Z",
                "",
            ])
            .prop_map(|s| serde_json::to_string(s).unwrap_or_default()),
            // Escapes force an owned string on the fast path.
            Just(r#""exp\u0065rian""#.to_owned()),
            "[a-z\\\"]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(inner, 0..3).prop_map(|v| format!(
                    "{{{}}}",
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| format!("\"k{i}\":{x}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ]
        })
    }

    fn json_object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop_oneof![
            prop::sample::select(fields().to_vec())
                .prop_map(|k| serde_json::to_string(k).unwrap_or_default()),
            Just(r#""sc\u006fre""#.to_owned()),
            prop::sample::select(vec!["extra", "scroe", "Score", "zz", "a"])
                .prop_map(|k| serde_json::to_string(k).unwrap_or_default()),
        ];
        // Keys may repeat: the last occurrence wins, on both paths.
        prop::collection::vec((key, json_value()), 0..11).prop_map(|members| {
            format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
    }

    fn valid_object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            prop::sample::subsequence(fields().to_vec(), 0..=fields().len()),
            json_object(),
        )
            .prop_map(|(drop, extra)| {
                let mut v = valid();
                for field in drop.iter().filter(|f| **f != "version") {
                    v.as_object_mut().map(|o| o.remove(*field));
                }
                // Splice the random members in after the valid ones.
                let base = v.to_string();
                let extra = extra.trim_start_matches('{').trim_end_matches('}');
                if extra.is_empty() {
                    base
                } else {
                    format!("{},{extra}}}", base.trim_end_matches('}'))
                }
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, failure_persistence: None, ..Default::default() })]

        #[test]
        fn decoding_from_bytes_agrees_with_the_value_tree_on_any_object(body in json_object()) {
            proptest::prop_assert_eq!(ScoreMessage::parse(&body, NOW), parse_via_value(&body, NOW), "{}", body);
        }

        #[test]
        fn decoding_from_bytes_agrees_with_the_value_tree_on_near_valid_messages(body in valid_object()) {
            proptest::prop_assert_eq!(ScoreMessage::parse(&body, NOW), parse_via_value(&body, NOW), "{}", body);
        }

        #[test]
        fn decoding_from_bytes_agrees_with_the_value_tree_on_any_text(body in "[\\[\\]{}\":,0-9a-z \\\\]{0,24}") {
            proptest::prop_assert_eq!(ScoreMessage::parse(&body, NOW), parse_via_value(&body, NOW), "{}", body);
        }
    }

    #[test]
    fn nesting_beyond_serde_jsons_limit_is_invalid_json_on_both_paths() {
        let deep = format!(
            r#"{{"version":1,"extra":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let fast = ScoreMessage::parse(&deep, NOW).unwrap_err();
        assert_eq!(fast.reason_code(), "invalid_json");
        assert_eq!(Err(fast), parse_via_value(&deep, NOW));
    }
}
