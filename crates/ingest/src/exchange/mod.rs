//! Exchanges' public market-data payloads, parsed into checked rows.
//!
//! Each parser takes the raw response body and returns either an error, when the body is
//! not the expected shape at all (truncated JSON, an error envelope, an HTML page), or a
//! [`Parsed`] outcome: the rows that passed every check plus, row by row, the ones that
//! did not and why. A bad row never stops the good ones. No HTTP happens here, so every
//! rule can be tested against a fixture.

pub mod binance;
pub mod coinbase;
pub mod coingecko;
pub mod kraken;
pub mod symbols;

use marketd_domain::{Candle, Interval, LatestPrice};
use serde_json::Value;

pub use symbols::{Asset, SymbolTable};

/// Open times outside 2000-01-01..3000-01-01 (Unix ms) are not plausible market data;
/// bounding them also keeps the bucket arithmetic far from overflow.
const MIN_TIME_MS: i64 = 946_684_800_000;
const MAX_TIME_MS: i64 = 32_503_680_000_000;

/// A row that was refused, with its 0-based position in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub reason: String,
}

/// The checked content of one payload: good rows in ascending time order, and the
/// refused rows in payload order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    pub rows: Vec<T>,
    pub rejected: Vec<Rejected>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

/// Why a whole payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the upstream reported an error: {0}")]
    Upstream(String),
    #[error("unexpected payload shape: {0}")]
    Shape(String),
}

/// Parses the body as JSON, naming what came instead when it is not (an HTML error page
/// from a proxy is the usual culprit).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| {
        let start = body.iter().find(|b| !b.is_ascii_whitespace());
        if start == Some(&b'<') {
            PayloadError::NotJson(format!("looks like HTML or XML ({e})"))
        } else {
            PayloadError::NotJson(e.to_string())
        }
    })
}

/// A JSON type's name, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A decimal that an exchange sends either as a JSON number or as a numeric string.
pub(crate) fn decimal(v: &Value, field: &str) -> Result<f64, String> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        other => return Err(format!("{field} is {}, expected a number", kind(other))),
    };
    match parsed {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{field} is not a finite number: {v}")),
    }
}

/// A whole number of time units (JSON integer, or a float with no fraction).
pub(crate) fn integer(v: &Value, field: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(format!("{field} is not a whole number: {n}")),
            }
        }
        other => Err(format!("{field} is {}, expected an integer", kind(other))),
    }
}

/// Converts a timestamp to milliseconds and checks it is plausible.
pub(crate) fn time_ms(raw: i64, unit_ms: i64, field: &str) -> Result<i64, String> {
    match raw.checked_mul(unit_ms) {
        Some(ms) if (MIN_TIME_MS..MAX_TIME_MS).contains(&ms) => Ok(ms),
        _ => Err(format!("{field} {raw} is outside the years 2000 to 3000")),
    }
}

/// Parses every row of a candle array with `parse_row`, keeping each bad row's index and
/// reason, then applies `finish_candles`.
pub(crate) fn candles_from_rows(
    rows: &[Value],
    parse_row: impl Fn(&Value) -> Result<Candle, String>,
    interval: Interval,
    now_ms: i64,
) -> Parsed<Candle> {
    let mut candidates = Vec::with_capacity(rows.len());
    let mut rejected = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        match parse_row(row) {
            Ok(candle) => candidates.push((index, candle)),
            Err(reason) => rejected.push(Rejected { index, reason }),
        }
    }
    finish_candles(candidates, interval, now_ms, rejected)
}

/// The last steps shared by every candle parser: validates each candle against
/// `interval`, refuses buckets that have not opened yet at `now_ms` (the still-open bucket
/// is allowed), sorts ascending, and resolves duplicated open times by keeping the row
/// that came last in the payload and noting the one it replaced.
pub(crate) fn finish_candles(
    candidates: Vec<(usize, Candle)>,
    interval: Interval,
    now_ms: i64,
    mut rejected: Vec<Rejected>,
) -> Parsed<Candle> {
    let open_bucket = interval.bucket_start(now_ms.clamp(MIN_TIME_MS, MAX_TIME_MS));
    let mut good: Vec<(usize, Candle)> = Vec::with_capacity(candidates.len());
    for (index, candle) in candidates {
        if let Err(e) = candle.validate_for(interval) {
            rejected.push(Rejected {
                index,
                reason: e.to_string(),
            });
        } else if candle.open_time > open_bucket {
            rejected.push(Rejected {
                index,
                reason: format!(
                    "open_time {} is in the future (the current bucket opened at {open_bucket})",
                    candle.open_time
                ),
            });
        } else {
            good.push((index, candle));
        }
    }
    // Stable sort by time, then payload position, so "last" means last in the payload.
    good.sort_by_key(|(index, candle)| (candle.open_time, *index));
    let mut rows: Vec<Candle> = Vec::with_capacity(good.len());
    let mut kept_index: Option<usize> = None;
    for (index, candle) in good {
        match (rows.last_mut(), kept_index) {
            (Some(last), Some(previous)) if last.open_time == candle.open_time => {
                rejected.push(Rejected {
                    index: previous,
                    reason: format!(
                        "duplicate open_time {}; replaced by the row at index {index}",
                        candle.open_time
                    ),
                });
                *last = candle;
            }
            _ => rows.push(candle),
        }
        kept_index = Some(index);
    }
    rejected.sort_by_key(|r| r.index);
    Parsed { rows, rejected }
}

/// The checks a 24-hour snapshot must pass: positive prices, a non-negative volume and a
/// last price inside the day's range.
pub(crate) fn check_price(p: &LatestPrice) -> Result<(), String> {
    for (name, value) in [
        ("price", p.price),
        ("open", p.open_24h),
        ("high", p.high_24h),
        ("low", p.low_24h),
    ] {
        if value <= 0.0 {
            return Err(format!("{name} must be greater than zero"));
        }
    }
    if p.volume_24h < 0.0 {
        return Err("volume must not be negative".to_owned());
    }
    if p.high_24h < p.low_24h {
        return Err("high is below low".to_owned());
    }
    if p.price > p.high_24h || p.price < p.low_24h {
        return Err("the last price lies outside the 24-hour high-low range".to_owned());
    }
    Ok(())
}

/// Reads one row as a JSON array of at least `min_len` elements.
pub(crate) fn row_array(v: &Value, min_len: usize) -> Result<&[Value], String> {
    match v {
        Value::Array(items) if items.len() >= min_len => Ok(items),
        Value::Array(items) => Err(format!(
            "row has {} fields, expected at least {min_len}",
            items.len()
        )),
        other => Err(format!("row is {}, expected an array", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candle(open_time: i64, close: f64) -> Candle {
        Candle {
            open_time,
            open: 10.0,
            high: 12.0,
            low: 9.0,
            close,
            volume: 1.0,
        }
    }

    #[test]
    fn decimals_come_as_numbers_or_strings() {
        assert_eq!(decimal(&json!("1.5"), "open"), Ok(1.5));
        assert_eq!(decimal(&json!(2), "open"), Ok(2.0));
        assert!(decimal(&json!("abc"), "open").is_err());
        assert!(decimal(&json!("NaN"), "open").is_err());
        assert!(decimal(&json!("inf"), "open").is_err());
        assert!(decimal(&json!(null), "open").is_err());
    }

    #[test]
    fn integers_refuse_fractions_and_strings() {
        assert_eq!(integer(&json!(5), "t"), Ok(5));
        assert_eq!(integer(&json!(5.0), "t"), Ok(5));
        assert!(integer(&json!(5.5), "t").is_err());
        assert!(integer(&json!("5"), "t").is_err());
        assert!(time_ms(i64::MAX, 1000, "t").is_err());
        assert!(time_ms(-1, 1000, "t").is_err());
    }

    #[test]
    fn duplicates_keep_the_last_row_and_sorting_is_ascending() {
        let base = 1_700_000_040_000; // a minute boundary
        let parsed = finish_candles(
            vec![
                (0, candle(base + 60_000, 11.0)),
                (1, candle(base, 11.0)),
                (2, candle(base + 60_000, 10.5)),
            ],
            Interval::M1,
            base + 10 * 60_000,
            Vec::new(),
        );
        assert_eq!(
            parsed.rows,
            vec![candle(base, 11.0), candle(base + 60_000, 10.5)]
        );
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].index, 0);
        assert!(parsed.rejected[0].reason.contains("duplicate"));
    }

    #[test]
    fn the_open_bucket_is_allowed_but_later_ones_are_not() {
        let now = 1_700_000_070_000; // 30 s into the bucket opened at ..040_000
        let parsed = finish_candles(
            vec![
                (0, candle(1_700_000_040_000, 11.0)),
                (1, candle(1_700_000_100_000, 11.0)),
            ],
            Interval::M1,
            now,
            Vec::new(),
        );
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected[0].index, 1);
        assert!(parsed.rejected[0].reason.contains("future"));
    }

    #[test]
    fn html_is_named() {
        let err = parse_json(b"  <html><body>502</body></html>").unwrap_err();
        assert!(err.to_string().contains("HTML"), "{err}");
    }
}
