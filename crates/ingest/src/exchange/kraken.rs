//! Kraken: `GET /0/public/OHLC`.
//!
//! `{"error": [], "result": {"<PAIR>": [[time, "open", "high", "low", "close", "vwap",
//! "volume", count], …], "last": <int>}}`, with `time` in Unix seconds. The pair key is
//! Kraken's own name (`XXBTZUSD` for a request of `XBTUSD`), and `last` is the cursor to
//! pass as `since` to resume. A non-empty `error` array means the request failed. The
//! newest entry is the still-open bucket. Kraken's weekly buckets are not our Monday
//! buckets, so a 1w request comes back as misaligned rows: fetch daily and aggregate.

use marketd_domain::{Candle, Interval};
use serde_json::Value;

use super::{
    Parsed, PayloadError, candles_from_rows, decimal, integer, kind, parse_json, row_array, time_ms,
};

pub const SOURCE: &str = "kraken";

/// A parsed OHLC response.
#[derive(Debug, Clone, PartialEq)]
pub struct Ohlc {
    /// The pair key Kraken answered with (e.g. `XXBTZUSD`).
    pub pair: String,
    pub candles: Parsed<Candle>,
    /// Resume cursor: pass as `since` in the next request.
    pub last: i64,
}

/// Parses an OHLC response into ascending candles of `interval`, checked against
/// `now_ms`.
pub fn parse_ohlc(body: &[u8], interval: Interval, now_ms: i64) -> Result<Ohlc, PayloadError> {
    let Value::Object(mut top) = parse_json(body)? else {
        return Err(PayloadError::Shape(
            "expected an object with error and result".into(),
        ));
    };
    match top.get("error") {
        Some(Value::Array(errors)) if errors.is_empty() => {}
        Some(Value::Array(errors)) => {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            return Err(PayloadError::Upstream(messages.join("; ")));
        }
        Some(other) => {
            return Err(PayloadError::Shape(format!(
                "error is {}, expected an array",
                kind(other)
            )));
        }
        None => return Err(PayloadError::Shape("the error field is missing".into())),
    }
    let Some(Value::Object(mut result)) = top.remove("result") else {
        return Err(PayloadError::Shape(
            "result is missing or not an object".into(),
        ));
    };
    let last = match result.remove("last") {
        Some(v) => integer(&v, "last").map_err(PayloadError::Shape)?,
        None => return Err(PayloadError::Shape("result.last is missing".into())),
    };
    if result.len() != 1 {
        return Err(PayloadError::Shape(format!(
            "result holds {} pairs, expected exactly one",
            result.len()
        )));
    }
    let Some((pair, rows)) = result.into_iter().next() else {
        return Err(PayloadError::Shape("result holds no pair".into()));
    };
    let Value::Array(rows) = rows else {
        return Err(PayloadError::Shape(format!(
            "result.{pair} is {}, expected an array",
            kind(&rows)
        )));
    };
    Ok(Ohlc {
        pair,
        candles: candles_from_rows(&rows, entry, interval, now_ms),
        last,
    })
}

fn entry(row: &Value) -> Result<Candle, String> {
    let f = row_array(row, 7)?;
    Ok(Candle {
        open_time: time_ms(integer(&f[0], "time")?, 1000, "time")?,
        open: decimal(&f[1], "open")?,
        high: decimal(&f[2], "high")?,
        low: decimal(&f[3], "low")?,
        close: decimal(&f[4], "close")?,
        // f[5] is the VWAP.
        volume: decimal(&f[6], "volume")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_arrays_are_upstream_errors() {
        assert_eq!(
            parse_ohlc(
                br#"{"error":["EQuery:Unknown asset pair"]}"#,
                Interval::M1,
                0
            ),
            Err(PayloadError::Upstream("EQuery:Unknown asset pair".into()))
        );
    }

    #[test]
    fn a_missing_cursor_is_a_shape_error() {
        assert!(matches!(
            parse_ohlc(br#"{"error":[],"result":{"XXBTZUSD":[]}}"#, Interval::M1, 0),
            Err(PayloadError::Shape(_))
        ));
    }
}
