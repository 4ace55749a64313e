//! RFC 3339 timestamps: parsed exactly as `time` parses them, with a fast path for the form
//! nearly every producer sends, and written as fixed-width UTC with milliseconds (the form item
//! keys sort by).

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An RFC 3339 timestamp, exactly as `time`'s parser reads it, with a fast path for the form
/// nearly every producer sends (`2026-11-28T10:00:00Z`, with or without a fraction): the
/// worker parses two timestamps per record. Anything else (offsets, lower-case `t`/`z`, leap
/// seconds, more than nine fraction digits, invalid dates) goes to `time`, so what is accepted
/// and how it reads is `time`'s alone; a property test holds the two to that.
pub fn parse_rfc3339(value: &str) -> Option<OffsetDateTime> {
    fast_utc_rfc3339(value.as_bytes()).or_else(|| OffsetDateTime::parse(value, &Rfc3339).ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, or `None` to let `time` decide.
fn fast_utc_rfc3339(b: &[u8]) -> Option<OffsetDateTime> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let value = digits(20, 20 + fraction.len())?;
            // `fraction.len()` is 1..=9, so the exponent is 0..=8.
            value * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let second = u8::try_from(digits(17, 19)?).ok()?;
    if second > 59 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(digits(0, 4)?).ok()?,
        month,
        u8::try_from(digits(8, 10)?).ok()?,
    )
    .ok()?;
    let time_of_day = time::Time::from_hms_nano(
        u8::try_from(digits(11, 13)?).ok()?,
        u8::try_from(digits(14, 16)?).ok()?,
        second,
        nanos,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time_of_day).assume_utc())
}

/// The instant in UTC to the millisecond, when its UTC year is within 0000..=9999 (the range
/// of RFC 3339's four-digit years). A local time near either end, such as
/// `9999-12-31T20:00:00-05:00`, lies outside it once in UTC: `None`, never a panic.
pub fn utc_millis(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    if !(0..=9999).contains(&utc.year()) {
        return None;
    }
    utc.replace_millisecond(utc.millisecond()).ok()
}

pub(crate) fn clamped_utc_millis(t: OffsetDateTime) -> OffsetDateTime {
    const MIN: OffsetDateTime = time::macros::datetime!(0000-01-01 00:00:00 UTC);
    const MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999 UTC);
    // Comparing instants never converts offsets, so it cannot overflow.
    if t < MIN {
        MIN
    } else if t > MAX {
        MAX
    } else {
        utc_millis(t).unwrap_or(MAX)
    }
}

/// The length of [`format_utc_millis`]'s text: `2026-11-28T10:00:00.000Z`.
const UTC_MILLIS_LEN: usize = 24;

/// Formats an instant as fixed-width RFC 3339 UTC with milliseconds (clamped to the years
/// 0000..=9999, see [`ReportedAt::from_datetime`]).
pub fn format_utc_millis(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(UTC_MILLIS_LEN);
    push_utc_millis(&mut out, t);
    out
}

/// [`format_utc_millis`] appended to `out`: item keys are built from it once per record,
/// so it writes digits directly instead of going through `format!`.
fn push_utc_millis(out: &mut String, t: OffsetDateTime) {
    let t = clamped_utc_millis(t);
    // Clamping keeps the year in 0..=9999; every other part is in range by construction.
    let year = u32::try_from(t.year()).unwrap_or_default();
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, u32::from(u8::from(t.month())), 2);
    out.push('-');
    push_digits(out, u32::from(t.day()), 2);
    out.push('T');
    push_digits(out, u32::from(t.hour()), 2);
    out.push(':');
    push_digits(out, u32::from(t.minute()), 2);
    out.push(':');
    push_digits(out, u32::from(t.second()), 2);
    out.push('.');
    push_digits(out, u32::from(t.millisecond()), 3);
    out.push('Z');
}

/// `value` as exactly `width` decimal digits (zero-padded; higher digits dropped).
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        let digit = (value / divisor) % 10;
        out.push(char::from(b'0' + digit as u8));
        divisor /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let part = |max: u32, width: usize| (0..=max).prop_map(move |v| format!("{v:0width$}"));
        (
            part(10_000, 4),
            part(13, 2),
            part(32, 2),
            prop::sample::select(vec!["T", "t", " ", "X"]),
            part(25, 2),
            part(61, 2),
            part(61, 2),
            prop::option::of("[0-9]{1,11}"),
            prop::sample::select(vec!["Z", "z", "+01:00", "-13:49", "+00:00", "", "ZZ"]),
        )
            .prop_map(|(y, mo, d, t, h, mi, s, frac, zone)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y}-{mo}-{d}{t}{h}:{mi}:{s}{frac}{zone}")
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, failure_persistence: None, ..Default::default() })]

        #[test]
        fn the_fast_timestamp_path_reads_exactly_what_time_reads(value in rfc3339_like()) {
            proptest::prop_assert_eq!(parse_rfc3339(&value), OffsetDateTime::parse(&value, &Rfc3339).ok(), "{}", value);
        }

        #[test]
        fn the_fast_timestamp_path_agrees_on_any_text(value in "[0-9TZ:.+-]{0,30}") {
            proptest::prop_assert_eq!(parse_rfc3339(&value), OffsetDateTime::parse(&value, &Rfc3339).ok(), "{}", value);
        }
    }

    #[test]
    fn the_fast_timestamp_path_takes_the_common_forms() {
        for value in [
            "2026-11-28T10:00:00Z",
            "2026-11-28T10:00:00.5Z",
            "2024-02-29T23:59:59.123456789Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert!(fast_utc_rfc3339(value.as_bytes()).is_some(), "{value}");
            assert_eq!(
                parse_rfc3339(value),
                OffsetDateTime::parse(value, &Rfc3339).ok()
            );
        }
        assert_eq!(fast_utc_rfc3339(b"2023-02-29T00:00:00Z"), None);
    }
}
