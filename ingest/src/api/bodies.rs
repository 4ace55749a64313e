//! The JSON bodies of the write operations, each ONE typed definition: what a request is
//! parsed into and what the OpenAPI document describes (`ToSchema`). A body is read into its
//! struct leniently (every field is [`Sent`], so any object fits, and members the struct
//! does not declare are named), then each field is checked, so one 422 names every bad
//! field at once.

use axum::http::HeaderMap;
use contract::json_fields::{parse_object, read_typed, FieldReader, Member, Sent};
use contract::message::{read_bureau_score_reported_at, SentScore};
use contract::{
    Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId, ValidationErrors,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::ApiError;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The most entries one batch request may carry (422 above it); the queue sends them in
/// calls of its own size.
pub const MAX_BATCH_REQUEST_ENTRIES: usize = 500;

/// Declares a write body: its own leading and trailing fields around the three every score
/// write carries (`bureau`, `score`, `reportedAt`, written once here), all [`Sent`], and
/// [`SentScore`] over those three.
macro_rules! score_write_body {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$lead_meta:meta])* pub $lead:ident: Sent, )*
            ..
            $( $(#[$tail_meta:meta])* pub $tail:ident: Sent, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $( $(#[$lead_meta])* pub $lead: Sent, )*
            /// experian (0..=999), equifax (0..=1000) or transunion (0..=710).
            #[schema(value_type = contract::Bureau, example = "experian")]
            pub bureau: Sent,
            /// Checked against the bureau's range.
            #[schema(value_type = u16, example = 742, minimum = 0, maximum = 1000)]
            pub score: Sent,
            /// RFC 3339; at most 5 minutes in the future.
            #[schema(value_type = String, example = "2026-11-28T10:00:00Z", format = DateTime)]
            pub reported_at: Sent,
            $( $(#[$tail_meta])* pub $tail: Sent, )*
        }

        impl $name {
            fn sent_score(&self) -> SentScore<'_> {
                SentScore {
                    bureau: Member::sent(&self.bureau),
                    score: Member::sent(&self.score),
                    reported_at: Member::sent(&self.reported_at),
                }
            }
        }
    };
}

score_write_body! {
    /// The body of a score write.
    pub struct ScoreWriteBody {
        ..
        /// Optional idempotency key (1..64 of [A-Za-z0-9_-]); must equal Idempotency-Key if both are sent.
        #[schema(
            value_type = Option<String>,
            example = "bureau-file-2026-11-28-000042",
            pattern = "^[A-Za-z0-9_-]{1,64}$"
        )]
        pub report_id: Sent,
    }
}

score_write_body! {
    /// One entry of a batch: a score write plus the user it belongs to.
    pub struct BatchEntryBody {
        /// 1..128 of [A-Za-z0-9_-].
        #[schema(value_type = String, example = "user-42")]
        pub user_id: Sent,
        ..
        /// Idempotency key (1..64 of [A-Za-z0-9_-]); send one so a retried entry is stored once.
        #[schema(
            value_type = Option<String>,
            example = "bureau-file-2026-11-28-000042",
            pattern = "^[A-Za-z0-9_-]{1,64}$"
        )]
        pub report_id: Sent,
    }
}

/// A batch of 1..500 score entries for any users (service scope only; body at most 1 MiB).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequestBody {
    #[schema(value_type = Vec<BatchEntryBody>, min_items = 1, max_items = 500)]
    pub items: Sent,
}

/// Reads the optional `Idempotency-Key` header as a report id.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<ReportId>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?;
    ReportId::parse_field("Idempotency-Key", text)
        .map(Some)
        .map_err(|e| ApiError::bad_field(e.field, e.message))
}

/// The fields every score write carries, whoever sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreFields {
    pub bureau: Bureau,
    pub score: Score,
    pub reported_at: ReportedAt,
}

/// What `read_score_fields` found: the required fields when all are valid, and the
/// optional `reportId` when given and valid (even if other fields are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreFieldsRead {
    pub fields: Option<ScoreFields>,
    pub report_id: Option<ReportId>,
}

/// Checks `bureau`, `score`, `reportedAt` and the optional `reportId` as sent, recording
/// every problem in `r`: always check `r` before using what comes back.
fn read_score_fields(
    r: &mut FieldReader<'_>,
    sent: SentScore<'_>,
    report_id: Option<Member<'_>>,
    now: OffsetDateTime,
) -> ScoreFieldsRead {
    let (bureau, score, reported_at) = read_bureau_score_reported_at(r, sent, now);
    let report_id = r
        .optional_str_of("reportId", report_id)
        .and_then(|v| ReportId::parse(v).map_err(|e| r.push(e)).ok());
    let fields = match (bureau, score, reported_at) {
        (Some(bureau), Some(score), Some(reported_at)) => Some(ScoreFields {
            bureau,
            score,
            reported_at,
        }),
        _ => None,
    };
    ScoreFieldsRead { fields, report_id }
}

/// The request body as a JSON object, or a 400 saying why it is not one.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    parse_object(body).map_err(|e| ApiError::BadRequest {
        detail: e.to_string(),
        errors: vec![FieldError::new("body", e.to_string())],
    })
}

/// `object` as the typed body `T`, unknown members named in `r`. It cannot fail for the
/// bodies here (all their fields are [`Sent`]); if it ever did, the request is refused, not
/// half-read.
fn typed<T: serde::de::DeserializeOwned>(
    object: Map<String, Value>,
    r: &mut FieldReader<'_>,
) -> Result<T, ApiError> {
    read_typed(object, r).map_err(|e| ApiError::bad_field("body", e.to_string()))
}

/// A score body ([`ScoreWriteBody`]), validated in full.
pub fn parse_score_body(
    user_id: UserId,
    header_key: Option<ReportId>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<ScoreReport, ApiError> {
    let mut r = FieldReader::detached();
    let body: ScoreWriteBody = typed(body_object(body)?, &mut r)?;
    let ScoreFieldsRead {
        fields,
        report_id: body_key,
    } = read_score_fields(
        &mut r,
        body.sent_score(),
        Member::sent(&body.report_id),
        now,
    );
    if let (Some(h), Some(b)) = (&header_key, &body_key) {
        if h != b {
            r.push(FieldError::new(
                "reportId",
                "must match the Idempotency-Key header when both are given",
            ));
        }
    }
    r.finish()?;
    match fields {
        Some(f) => Ok(ScoreReport {
            report_id: header_key.or(body_key).unwrap_or_else(ReportId::generate),
            user_id,
            bureau: f.bureau,
            score: f.score,
            reported_at: f.reported_at,
        }),
        // finish() already reported every missing field.
        None => Err(ApiError::Validation(contract::ValidationErrors::single(
            "body",
            "is incomplete",
        ))),
    }
}

/// An entry that breaks the contract, with its reportId when that much was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    pub report_id: Option<ReportId>,
    pub errors: ValidationErrors,
}

/// Reads a [`BatchRequestBody`]. The request as a whole fails only when it is unreadable,
/// the list is missing, empty or longer than [`MAX_BATCH_REQUEST_ENTRIES`]; otherwise every entry
/// gets its own verdict, in order.
pub fn parse_batch_body(
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<Result<ScoreReport, RejectedEntry>>, ApiError> {
    let mut r = FieldReader::detached();
    let body: BatchRequestBody = typed(body_object(body)?, &mut r)?;
    r.finish()?;
    let items = match body.items {
        None => return Err(ValidationErrors::single("items", "is required").into()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(
                ValidationErrors::single("items", "must be an array of score entries").into(),
            )
        }
    };
    if items.is_empty() {
        return Err(ValidationErrors::single("items", "must hold at least one entry").into());
    }
    if items.len() > MAX_BATCH_REQUEST_ENTRIES {
        return Err(ValidationErrors::single(
            "items",
            format!(
                "must hold at most {MAX_BATCH_REQUEST_ENTRIES} entries (got {}); split the batch",
                items.len()
            ),
        )
        .into());
    }
    Ok(items
        .into_iter()
        .map(|item| parse_entry(item, now))
        .collect())
}

/// One entry ([`BatchEntryBody`]), validated in full. Field names in the errors are the
/// entry's own (`score`, not `items[3].score`); the entry's position is in its result.
pub fn parse_entry(item: Value, now: OffsetDateTime) -> Result<ScoreReport, RejectedEntry> {
    let rejected = |report_id, errors| RejectedEntry { report_id, errors };
    let Value::Object(object) = item else {
        return Err(rejected(
            None,
            ValidationErrors::single("entry", "must be a JSON object"),
        ));
    };
    let mut r = FieldReader::detached();
    let entry: BatchEntryBody = typed(object, &mut r)
        .map_err(|e| rejected(None, ValidationErrors::single("entry", e.to_string())))?;
    let user_id = r
        .required_str_of("userId", Member::sent(&entry.user_id))
        .and_then(|v| UserId::parse(v).map_err(|e| r.push(e)).ok());
    let ScoreFieldsRead { fields, report_id } = read_score_fields(
        &mut r,
        entry.sent_score(),
        Member::sent(&entry.report_id),
        now,
    );
    if let Err(errors) = r.finish() {
        return Err(rejected(report_id, errors));
    }
    match (user_id, fields) {
        (Some(user_id), Some(f)) => Ok(ScoreReport {
            report_id: report_id.unwrap_or_else(ReportId::generate),
            user_id,
            bureau: f.bureau,
            score: f.score,
            reported_at: f.reported_at,
        }),
        // finish() already named every missing field.
        _ => Err(rejected(
            report_id,
            ValidationErrors::single("entry", "is incomplete"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    fn user() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn fields_of(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(v) => v.0.into_iter().map(|e| e.field).collect(),
            ApiError::BadRequest { errors, .. } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn accepts_a_valid_body_and_generates_a_report_id() {
        let body = br#"{"bureau":"transunion","score":710,"reportedAt":"2026-11-28T09:00:00Z"}"#;
        let report = parse_score_body(user(), None, body, NOW).unwrap();
        assert_eq!(report.score.value(), 710);
        assert_eq!(report.report_id.as_str().len(), 26);
    }

    #[test]
    fn the_idempotency_key_header_becomes_the_report_id() {
        let body = br#"{"bureau":"equifax","score":1,"reportedAt":"2026-11-28T09:00:00Z"}"#;
        let key = ReportId::parse("key-1").ok();
        let report = parse_score_body(user(), key, body, NOW).unwrap();
        assert_eq!(report.report_id.as_str(), "key-1");
    }

    #[test]
    fn rejects_a_body_key_that_contradicts_the_header() {
        let body =
            br#"{"bureau":"equifax","score":1,"reportedAt":"2026-11-28T09:00:00Z","reportId":"b"}"#;
        let err = parse_score_body(user(), ReportId::parse("a").ok(), body, NOW).unwrap_err();
        assert_eq!(fields_of(err), ["reportId"]);
    }

    #[test]
    fn rejects_score_above_bureau_maximum() {
        let body = br#"{"bureau":"experian","score":1000,"reportedAt":"2026-11-28T09:00:00Z"}"#;
        assert_eq!(
            fields_of(parse_score_body(user(), None, body, NOW).unwrap_err()),
            ["score"]
        );
    }

    #[test]
    fn names_unknown_and_mistyped_fields_together() {
        let body = br#"{"bureau":7,"score":"700","reportedAt":"2026-11-28T09:00:00Z","scroe":1}"#;
        let mut fields = fields_of(parse_score_body(user(), None, body, NOW).unwrap_err());
        fields.sort();
        assert_eq!(fields, ["bureau", "score", "scroe"]);
    }

    #[test]
    fn unreadable_bodies_are_bad_requests() {
        for body in [&b""[..], b"{", b"[]", b"null"] {
            let err = parse_score_body(user(), None, body, NOW).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
        }
    }
}
