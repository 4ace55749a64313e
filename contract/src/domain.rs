//! Validated domain values. Parse, don't validate: once one of these exists, it is valid.

use std::fmt;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::rfc3339::{clamped_utc_millis, format_utc_millis, parse_rfc3339, utc_millis};

/// How far in the future a bureau timestamp may lie (clock skew between bureau and us).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// One field that failed validation, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as named in the request or message (`score`, `reportedAt`, `Idempotency-Key`).
    #[schema(example = "score")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must be between 0 and 999 for bureau experian")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every field that failed validation, so a client can fix them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationErrors {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

const ID_MAX_LEN: usize = 128;
const REPORT_ID_MAX_LEN: usize = 64;
/// Ids that name a route under `/v1/users/{userId}/credit-scores/`, never a report.
pub const RESERVED_REPORT_IDS: [&str; 1] = ["latest"];

fn check_key_safe(field: &str, value: &str, max_len: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_len} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(FieldError::new(
            field,
            "may contain only letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// A user id: 1..=128 characters of `[A-Za-z0-9_-]`. It goes into keys, so nothing else passes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Self::parse_field("userId", value)
    }

    /// Parses with the field named as the caller knows it (a path segment, a body field).
    pub fn parse_field(field: &str, value: &str) -> Result<Self, FieldError> {
        check_key_safe(field, value, ID_MAX_LEN)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The idempotency key of a score: given by the client (1..=64 of `[A-Za-z0-9_-]`) or a ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ReportId(String);

impl ReportId {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Self::parse_field("reportId", value)
    }

    pub fn parse_field(field: &str, value: &str) -> Result<Self, FieldError> {
        check_key_safe(field, value, REPORT_ID_MAX_LEN)?;
        if RESERVED_REPORT_IDS.contains(&value) {
            // `/credit-scores/latest` is a route: a report so named could never be fetched.
            return Err(FieldError::new(
                field,
                format!("{value:?} is reserved; pick another id"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// A fresh, time-ordered id for writes that carry no idempotency key.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The credit bureaus we accept, each with its own score scale.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Bureau {
    Experian,
    Equifax,
    Transunion,
}

impl Bureau {
    pub const ALL: [Bureau; 3] = [Bureau::Experian, Bureau::Equifax, Bureau::Transunion];

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Self::parse_field("bureau", value)
    }

    pub fn parse_field(field: &str, value: &str) -> Result<Self, FieldError> {
        match value {
            "experian" => Ok(Self::Experian),
            "equifax" => Ok(Self::Equifax),
            "transunion" => Ok(Self::Transunion),
            _ => Err(FieldError::new(
                field,
                "must be one of experian, equifax, transunion",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Experian => "experian",
            Self::Equifax => "equifax",
            Self::Transunion => "transunion",
        }
    }

    /// The highest score this bureau reports; every bureau's scale starts at 0.
    pub fn max_score(self) -> u16 {
        match self {
            Self::Experian => 999,
            Self::Equifax => 1000,
            Self::Transunion => 710,
        }
    }
}

impl fmt::Display for Bureau {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A score checked against its bureau's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Score(u16);

impl Score {
    pub fn parse(bureau: Bureau, value: u64) -> Result<Self, FieldError> {
        let max = bureau.max_score();
        match u16::try_from(value) {
            Ok(score) if score <= max => Ok(Self(score)),
            _ => Err(FieldError::new(
                "score",
                format!("must be between 0 and {max} for bureau {bureau}"),
            )),
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// When the bureau produced the score, normalised to UTC with millisecond precision so that
/// its text form sorts in time order (it is part of sort keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportedAt(OffsetDateTime);

impl ReportedAt {
    pub fn parse(value: &str, now: OffsetDateTime) -> Result<Self, FieldError> {
        Self::parse_field("reportedAt", value, now)
    }

    pub fn parse_field(field: &str, value: &str, now: OffsetDateTime) -> Result<Self, FieldError> {
        let parsed = parse_rfc3339(value).ok_or_else(|| {
            FieldError::new(
                field,
                "must be an RFC 3339 timestamp such as 2026-11-28T10:00:00Z",
            )
        })?;
        let utc = utc_millis(parsed).ok_or_else(|| {
            FieldError::new(field, "must lie between the years 0000 and 9999 in UTC")
        })?;
        if utc > now + MAX_FUTURE_SKEW {
            return Err(FieldError::new(
                field,
                "must not be more than 5 minutes in the future",
            ));
        }
        Ok(Self(utc))
    }

    /// Parses a stored value without the future check (it was checked when accepted).
    pub fn parse_stored(value: &str) -> Option<Self> {
        parse_rfc3339(value).and_then(utc_millis).map(Self)
    }

    /// An instant outside the years 0000..=9999 (UTC) is clamped to that range, whose text
    /// form alone sorts in time order; parsers reject such instants before they get here.
    pub fn from_datetime(value: OffsetDateTime) -> Self {
        Self(clamped_utc_millis(value))
    }

    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }

    /// `2026-11-28T10:00:00.000Z`: fixed width, so lexical order is time order.
    pub fn to_sortable_string(self) -> String {
        format_utc_millis(self.0)
    }
}

impl fmt::Display for ReportedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sortable_string())
    }
}

impl Serialize for ReportedAt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_sortable_string())
    }
}

/// A valid credit score report: what the worker writes, whoever produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreReport {
    pub report_id: ReportId,
    pub user_id: UserId,
    pub bureau: Bureau,
    pub score: Score,
    pub reported_at: ReportedAt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    #[test]
    fn accepts_user_ids_of_letters_digits_underscore_and_dash() {
        assert_eq!(
            UserId::parse("Alice_01-x").map(|u| u.to_string()),
            Ok("Alice_01-x".into())
        );
    }

    #[test]
    fn rejects_user_ids_that_could_break_keys() {
        for bad in ["", "a#b", "a/b", "ünï", "a b", &"x".repeat(129)] {
            let err = UserId::parse(bad).expect_err(bad);
            assert_eq!(err.field, "userId");
        }
    }

    #[test]
    fn accepts_user_id_of_exactly_128_characters() {
        assert!(UserId::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_report_id_longer_than_64_characters() {
        assert!(ReportId::parse(&"r".repeat(64)).is_ok());
        assert_eq!(
            ReportId::parse(&"r".repeat(65)).unwrap_err().field,
            "reportId"
        );
    }

    #[test]
    fn rejects_report_id_that_names_the_latest_route() {
        let err = ReportId::parse_field("Idempotency-Key", "latest").unwrap_err();
        assert_eq!(err.field, "Idempotency-Key");
        assert!(err.message.contains("reserved"), "{}", err.message);
        assert!(ReportId::parse("Latest").is_ok() && ReportId::parse("latest-1").is_ok());
    }

    #[test]
    fn generated_report_ids_are_valid_report_ids() {
        let id = ReportId::generate();
        assert_eq!(ReportId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn rejects_unknown_bureau() {
        assert_eq!(Bureau::parse("Experian").unwrap_err().field, "bureau");
        assert_eq!(Bureau::parse("fico").unwrap_err().field, "bureau");
    }

    #[test]
    fn checks_score_range_per_bureau() {
        assert!(Score::parse(Bureau::Experian, 999).is_ok());
        assert!(Score::parse(Bureau::Experian, 1000).is_err());
        assert!(Score::parse(Bureau::Equifax, 1000).is_ok());
        assert!(Score::parse(Bureau::Equifax, 1001).is_err());
        assert!(Score::parse(Bureau::Transunion, 710).is_ok());
        assert!(Score::parse(Bureau::Transunion, 711).is_err());
        assert!(Score::parse(Bureau::Transunion, 0).is_ok());
        assert!(Score::parse(Bureau::Equifax, u64::MAX).is_err());
    }

    #[test]
    fn rejects_score_above_bureau_maximum_with_the_range_in_the_message() {
        let err = Score::parse(Bureau::Transunion, 711).unwrap_err();
        assert_eq!(err.field, "score");
        assert!(err.message.contains("710"), "{}", err.message);
    }

    #[test]
    fn normalises_reported_at_to_utc_millis() {
        let t = ReportedAt::parse("2026-11-28T11:00:00.123456+01:00", NOW).unwrap();
        assert_eq!(t.to_string(), "2026-11-28T10:00:00.123Z");
    }

    #[test]
    fn accepts_reported_at_up_to_five_minutes_ahead() {
        assert!(ReportedAt::parse("2026-11-28T10:05:00Z", NOW).is_ok());
        assert_eq!(
            ReportedAt::parse("2026-11-28T10:05:01Z", NOW)
                .unwrap_err()
                .field,
            "reportedAt"
        );
    }

    #[test]
    fn rejects_timestamps_that_are_not_rfc3339() {
        for bad in [
            "2026-11-28",
            "yesterday",
            "2026-11-28 10:00:00",
            "1700000000",
            "",
        ] {
            assert!(ReportedAt::parse(bad, NOW).is_err(), "{bad}");
        }
    }

    /// Found by property testing: `to_offset` panicked on these, taking a request (ingest)
    /// or a whole batch (worker) down with it.
    #[test]
    fn rejects_timestamps_that_leave_the_four_digit_years_in_utc() {
        for edge in [
            "9999-12-31T10:11:00-13:49",
            "9999-12-31T23:59:59.999-00:01",
            "0000-01-01T00:00:00+00:01",
        ] {
            let err = ReportedAt::parse(edge, NOW).expect_err(edge);
            assert_eq!(err.field, "reportedAt");
            assert!(err.message.contains("0000 and 9999"), "{}", err.message);
            assert_eq!(ReportedAt::parse_stored(edge), None, "{edge}");
        }
        assert!(ReportedAt::parse("0000-01-01T00:00:00Z", NOW).is_ok());
    }

    #[test]
    fn formats_out_of_range_instants_clamped_not_panicking() {
        let late = time::macros::datetime!(9999-12-31 23:00:00 -05:00);
        assert_eq!(format_utc_millis(late), "9999-12-31T23:59:59.999Z");
        let early = time::macros::datetime!(0000-01-01 00:00:00 +05:00);
        assert_eq!(format_utc_millis(early), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn sortable_timestamps_sort_in_time_order() {
        let a = ReportedAt::parse("2026-01-02T03:04:05Z", NOW).unwrap();
        let b = ReportedAt::parse("2026-01-02T03:04:05.001Z", NOW).unwrap();
        assert!(a.to_sortable_string() < b.to_sortable_string());
    }
}
