//! Coinbase Exchange: `GET /products/{product_id}/candles`.
//!
//! Each bucket is `[time, low, high, open, close, volume]` with `time` in Unix seconds
//! and the rest as JSON numbers, newest bucket first. Note the order: low and high come
//! before open. Errors come back as `{"message": "NotFound"}`. Coinbase serves only
//! 1m, 5m, 15m, 1h, 6h and 1d buckets; 4h and 1w are aggregated from finer ones.

use marketd_domain::{Candle, Interval};
use serde_json::Value;

use super::{
    Parsed, PayloadError, candles_from_rows, decimal, integer, kind, parse_json, row_array, time_ms,
};

pub const SOURCE: &str = "coinbase";

/// Parses a candles response into ascending candles of `interval`, checked against
/// `now_ms`. Rejected rows keep their index in the (newest-first) payload.
pub fn parse_candles(
    body: &[u8],
    interval: Interval,
    now_ms: i64,
) -> Result<Parsed<Candle>, PayloadError> {
    let rows = match parse_json(body)? {
        Value::Array(rows) => rows,
        Value::Object(obj) => {
            return Err(match obj.get("message") {
                Some(Value::String(msg)) => PayloadError::Upstream(msg.clone()),
                _ => PayloadError::Shape("an object that is neither data nor an error".into()),
            });
        }
        other => {
            return Err(PayloadError::Shape(format!(
                "candles are {}, expected an array",
                kind(&other)
            )));
        }
    };
    Ok(candles_from_rows(&rows, bucket, interval, now_ms))
}

fn bucket(row: &Value) -> Result<Candle, String> {
    let f = row_array(row, 6)?;
    Ok(Candle {
        open_time: time_ms(integer(&f[0], "time")?, 1000, "time")?,
        low: decimal(&f[1], "low")?,
        high: decimal(&f[2], "high")?,
        open: decimal(&f[3], "open")?,
        close: decimal(&f[4], "close")?,
        volume: decimal(&f[5], "volume")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_objects_are_upstream_errors() {
        assert_eq!(
            parse_candles(br#"{"message":"NotFound"}"#, Interval::M1, 0),
            Err(PayloadError::Upstream("NotFound".to_owned()))
        );
    }
}
