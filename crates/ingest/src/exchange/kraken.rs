//! Kraken: `GET /0/public/OHLC` and `GET /0/public/Ticker`.
//!
//! `{"error": [], "result": {"<PAIR>": [[time, "open", "high", "low", "close", "vwap",
//! "volume", count], …], "last": <int>}}`, with `time` in Unix seconds. The pair key is
//! Kraken's own name (`XXBTZUSD` for a request of `XBTUSD`), and `last` is the cursor to
//! pass as `since` to resume. A non-empty `error` array means the request failed. The
//! newest entry is the still-open bucket. Kraken's weekly buckets are not our Monday
//! buckets, so a 1w request comes back as misaligned rows: fetch daily and aggregate.

use marketd_domain::{Candle, Interval, LatestPrice};
use serde_json::{Map, Value};

use super::{
    Parsed, PayloadError, Rejected, candles_from_rows, check_price, decimal, integer, kind,
    parse_json, row_array, time_ms,
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
    let mut result = result_of(body)?;
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

/// Parses a `GET /0/public/Ticker` response, one row per pair in key order. Each row's
/// `symbol` is Kraken's key for the pair (`XXBTZUSD`); the caller maps it to ours.
///
/// A pair is `{"a": ask, "b": bid, "c": [last price, lot volume], "v": [volume today,
/// last 24 hours], "p": [vwap …], "t": [trades …], "l": [low today, last 24 hours],
/// "h": [high today, last 24 hours], "o": today's opening price}` with decimal strings.
/// Kraken has no 24-hour open: `open_24h` is the open at 00:00 UTC today, so a change
/// computed from a Kraken price runs from midnight. The ticker carries no time either:
/// `as_of` is `now_ms`, when the answer arrived.
pub fn parse_ticker(body: &[u8], now_ms: i64) -> Result<Parsed<LatestPrice>, PayloadError> {
    let result = result_of(body)?;
    let mut parsed = Parsed::default();
    for (index, (pair, item)) in result.iter().enumerate() {
        match ticker(pair, item, now_ms) {
            Ok(price) => parsed.rows.push(price),
            Err(reason) => parsed.rejected.push(Rejected {
                index,
                reason: format!("{pair}: {reason}"),
            }),
        }
    }
    Ok(parsed)
}

fn ticker(pair: &str, item: &Value, now_ms: i64) -> Result<LatestPrice, String> {
    let Value::Object(obj) = item else {
        return Err(format!("ticker is {}, expected an object", kind(item)));
    };
    // The element at `at` of the array field `name`.
    let nth = |name: &str, at: usize| -> Result<f64, String> {
        match obj.get(name) {
            Some(Value::Array(items)) => items
                .get(at)
                .ok_or_else(|| format!("{name} has {} elements, expected {}", items.len(), at + 1))
                .and_then(|v| decimal(v, &format!("{name}[{at}]"))),
            Some(other) => Err(format!("{name} is {}, expected an array", kind(other))),
            None => Err(format!("{name} is missing")),
        }
    };
    let open = obj.get("o").ok_or_else(|| "o is missing".to_owned())?;
    let price = LatestPrice {
        symbol: pair.to_owned(),
        price: nth("c", 0)?,
        open_24h: decimal(open, "o")?,
        high_24h: nth("h", 1)?,
        low_24h: nth("l", 1)?,
        volume_24h: nth("v", 1)?,
        as_of: now_ms,
        source: SOURCE.to_owned(),
    };
    check_price(&price)?;
    Ok(price)
}

/// The `result` object of a Kraken answer, or the failure its `error` array reports.
fn result_of(body: &[u8]) -> Result<Map<String, Value>, PayloadError> {
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
    match top.remove("result") {
        Some(Value::Object(result)) => Ok(result),
        _ => Err(PayloadError::Shape(
            "result is missing or not an object".into(),
        )),
    }
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
