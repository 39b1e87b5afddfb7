//! Parsing of parameters shared by several resources, each failure a field error.

use std::borrow::Cow;

use marketd_domain::timestamp::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use marketd_domain::{Symbol, TimestampError, parse_timestamp};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::number_pattern::int_range;
use crate::error::{ApiError, FieldError};

pub fn symbol(field: &str, raw: &str) -> Result<Symbol, FieldError> {
    Symbol::parse(raw).map_err(|e| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

pub fn timestamp(field: &str, raw: &str) -> Result<i64, FieldError> {
    timestamp_input(raw).map_err(|e| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

/// An instant a client sends: RFC 3339, or Unix milliseconds written as a plain whole
/// number (no leading zeros, no `-0`), with nothing around it. Exactly what
/// [`TimestampInput`] documents, so a value the document calls invalid is refused.
pub fn timestamp_input(raw: &str) -> Result<i64, TimestampError> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let is_number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = is_number && digits.starts_with('0') && raw != "0";
    if raw.trim() != raw || leading_zero {
        return Err(TimestampError::Malformed);
    }
    parse_timestamp(raw)
}

/// The schema of a timestamp a client sends (see [`timestamp_input`]): an RFC 3339
/// date-time, or Unix milliseconds in the years 0001 to 9999.
#[derive(Debug)]
pub struct TimestampInput;

impl PartialSchema for TimestampInput {
    fn schema() -> RefOr<Schema> {
        let unix_ms = format!(
            "^(?:0|{}|-(?:{}))$",
            int_range(1, MAX_TIMESTAMP_MS.unsigned_abs()),
            int_range(1, MIN_TIMESTAMP_MS.unsigned_abs())
        );
        AnyOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(unix_ms))
                    .description(Some("Unix milliseconds")),
            )
            .description(Some("RFC 3339, or Unix milliseconds"))
            .into()
    }
}

impl ToSchema for TimestampInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimestampInput")
    }
}

/// A comma-separated `symbols` list: normalised, duplicates dropped, at most `max`; every
/// bad entry is reported as `symbols[i]`.
pub fn symbol_list(raw: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let mut symbols: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (i, part) in raw.split(',').enumerate() {
        match symbol(&format!("symbols[{i}]"), part.trim()) {
            Ok(s) if !symbols.iter().any(|seen| seen == s.as_str()) => symbols.push(s.to_string()),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if symbols.len() > max {
        errors.push(FieldError {
            field: "symbols".into(),
            message: format!("at most {max} symbols per request"),
        });
    }
    if errors.is_empty() {
        Ok(symbols)
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    /// The Unix-milliseconds pattern of the published schema.
    fn unix_ms_pattern() -> regex::Regex {
        let schema = serde_json::to_value(TimestampInput::schema()).unwrap();
        regex::Regex::new(schema["anyOf"][1]["pattern"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn timestamps_are_accepted_exactly_as_documented() {
        let pattern = unix_ms_pattern();
        for number in [
            "0",
            "8",
            "-1",
            "1704067200000",
            "253402300799999",
            "-62135596800000",
        ] {
            assert!(timestamp_input(number).is_ok(), "{number}");
            assert!(pattern.is_match(number), "{number}");
        }
        for padded in [
            "00",
            "08",
            "-0",
            "-08",
            "+8",
            " 8",
            "8 ",
            "253402300800000",
            "-62135596800001",
            "9999999999999999999999",
            "",
        ] {
            assert!(timestamp_input(padded).is_err(), "{padded:?}");
            assert!(!pattern.is_match(padded), "{padded:?}");
        }
        assert_eq!(
            timestamp_input("2024-01-01T01:00:00+01:00"),
            Ok(1_704_067_200_000)
        );
        assert!(timestamp_input(" 2024-01-01T00:00:00Z").is_err());
        assert!(timestamp_input("2024-01-01T00:00:00Z\n").is_err());
    }
}
