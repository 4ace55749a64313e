//! Turning a POSTed body into a valid score write, or into every reason it is not one.

use axum::http::HeaderMap;
use shared::json_fields::{parse_object, FieldReader};
use shared::{Bureau, FieldError, ReportId, ReportedAt, Score, ScoreReport, UserId};
use time::OffsetDateTime;

use crate::error::ApiError;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const FIELDS: [&str; 4] = ["bureau", "score", "reportedAt", "reportId"];

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

/// What [`read_score_fields`] found: the required fields when all are valid, and the
/// optional `reportId` when given and valid (even if other fields are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreFieldsRead {
    pub fields: Option<ScoreFields>,
    pub report_id: Option<ReportId>,
}

/// Reads `bureau`, `score`, `reportedAt` and the optional `reportId` from one object,
/// recording every problem in `r`: always check `r` before using what comes back.
pub fn read_score_fields(r: &mut FieldReader<'_>, now: OffsetDateTime) -> ScoreFieldsRead {
    let (bureau, score, reported_at) = shared::message::read_bureau_score_reported_at(r, now);
    let report_id = r
        .optional_str("reportId")
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

/// A score body: `{"bureau","score","reportedAt","reportId"?}`, validated in full.
pub fn parse_score_body(
    user_id: UserId,
    header_key: Option<ReportId>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<ScoreReport, ApiError> {
    let object = parse_object(body).map_err(|e| ApiError::BadRequest {
        detail: e.to_string(),
        errors: vec![FieldError::new("body", e.to_string())],
    })?;
    let mut r = FieldReader::new(&object);
    r.reject_unknown(&FIELDS);
    let ScoreFieldsRead {
        fields,
        report_id: body_key,
    } = read_score_fields(&mut r, now);
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
        None => Err(ApiError::Validation(shared::ValidationErrors::single(
            "body",
            "is incomplete",
        ))),
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
