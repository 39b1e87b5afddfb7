//! Timestamps on the wire: RFC 3339 UTC out; RFC 3339 or Unix milliseconds in.
//!
//! Formatting is hand-rolled because it runs once per candle on the hottest paths (a
//! 500-candle page formats 1,000 timestamps) and a general formatter costs several times
//! more than the arithmetic below.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MS_PER_DAY: i64 = 86_400_000;

/// Earliest and latest instants we accept: years 0001 to 9999, which RFC 3339 can express.
pub const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("expected an RFC 3339 timestamp (2024-01-01T00:00:00Z) or Unix milliseconds")]
    Malformed,
    #[error("timestamp is outside the years 0001 to 9999")]
    OutOfRange,
}

/// Parses RFC 3339 (any offset, converted to UTC) or an integer of Unix milliseconds.
pub fn parse_timestamp(raw: &str) -> Result<i64, TimestampError> {
    let trimmed = raw.trim();
    let looks_numeric = trimmed
        .strip_prefix('-')
        .unwrap_or(trimmed)
        .bytes()
        .all(|b| b.is_ascii_digit());
    let millis = if looks_numeric && !trimmed.is_empty() {
        trimmed
            .parse::<i64>()
            .map_err(|_| TimestampError::OutOfRange)?
    } else {
        let parsed =
            OffsetDateTime::parse(trimmed, &Rfc3339).map_err(|_| TimestampError::Malformed)?;
        i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| TimestampError::OutOfRange)?
    };
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&millis) {
        return Err(TimestampError::OutOfRange);
    }
    Ok(millis)
}

/// Civil date (year, month, day) of a count of days since 1970-01-01, proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_two(out: &mut Vec<u8>, value: u32) {
    out.push(b'0' + (value / 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

/// Appends `millis` as RFC 3339 UTC (`2024-01-01T00:00:00Z`, with `.sss` only when the
/// milliseconds are not zero). Instants outside years 0000–9999 are clamped to that range.
pub fn write_rfc3339_ms(out: &mut Vec<u8>, millis: i64) {
    let millis = millis.clamp(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS);
    let days = millis.div_euclid(MS_PER_DAY);
    let in_day = millis.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let year = year as u32;
    push_two(out, year / 100);
    push_two(out, year % 100);
    out.push(b'-');
    push_two(out, month);
    out.push(b'-');
    push_two(out, day);
    out.push(b'T');
    let secs = (in_day / 1_000) as u32;
    push_two(out, secs / 3_600);
    out.push(b':');
    push_two(out, secs / 60 % 60);
    out.push(b':');
    push_two(out, secs % 60);
    let ms = (in_day % 1_000) as u32;
    if ms != 0 {
        out.push(b'.');
        out.push(b'0' + (ms / 100) as u8);
        push_two(out, ms % 100);
    }
    out.push(b'Z');
}

/// `millis` as an RFC 3339 UTC string.
pub fn format_rfc3339_ms(millis: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_ms(&mut out, millis);
    // Only ASCII digits and punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_ms(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_ms(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00Z"),
            Ok(1_704_067_200_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T01:00:00+01:00"),
            Ok(1_704_067_200_000)
        );
        assert_eq!(parse_timestamp("1704067200000"), Ok(1_704_067_200_000));
        assert_eq!(
            parse_timestamp("2024-01-01"),
            Err(TimestampError::Malformed)
        );
        assert_eq!(parse_timestamp(""), Err(TimestampError::Malformed));
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err(TimestampError::OutOfRange)
        );
    }

    proptest! {
        #[test]
        fn formatting_agrees_with_the_time_crate(millis in MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS) {
            let ours = format_rfc3339_ms(millis);
            prop_assert_eq!(parse_timestamp(&ours), Ok(millis));
            let theirs = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
                .unwrap();
            prop_assert_eq!(theirs.year() as i64, ours[..4].parse::<i64>().unwrap());
        }
    }
}
