//! Coinbase Exchange: `GET /products/{product_id}/candles`.
//!
//! Each bucket is `[time, low, high, open, close, volume]` with `time` in Unix seconds
//! and the rest as JSON numbers, newest bucket first. Note the order: low and high come
//! before open. Errors come back as `{"message": "NotFound"}`. Coinbase serves only
//! 1m, 5m, 15m, 1h, 6h and 1d buckets; 4h and 1w are aggregated from finer ones.
//!
//! Latest prices take two objects per product, both with decimal strings:
//! `GET /products/{product_id}/ticker` (`price`, `size`, `bid`, `ask`, `volume`,
//! `trade_id`, `time` in RFC 3339) for the last trade, and
//! `GET /products/{product_id}/stats` (`open`, `high`, `low`, `last`, `volume`,
//! `volume_30day`) for the 24-hour figures.

use marketd_domain::{Candle, Interval, LatestPrice, parse_timestamp};
use serde_json::{Map, Value};

use super::{
    Parsed, PayloadError, candles_from_rows, check_price, decimal, integer, kind, parse_json,
    row_array, time_ms,
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

/// Parses a ticker or stats response into its object; an error envelope or anything
/// else is refused whole.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    match parse_json(body)? {
        Value::Object(obj) => match obj.get("message") {
            Some(Value::String(msg)) if !obj.contains_key("price") && !obj.contains_key("open") => {
                Err(PayloadError::Upstream(msg.clone()))
            }
            _ => Ok(obj),
        },
        other => Err(PayloadError::Shape(format!(
            "expected an object, got {}",
            kind(&other)
        ))),
    }
}

/// One product's latest price from its ticker and 24-hour stats; `symbol` is the
/// product id, which the caller maps to ours.
///
/// The two objects come from two requests, so a trade after the stats were taken may lie
/// just outside their range; the range is widened to hold it, since that trade is itself
/// part of the last 24 hours.
pub fn product_price(
    product: &str,
    ticker: &Map<String, Value>,
    stats: &Map<String, Value>,
) -> Result<LatestPrice, String> {
    let field = |obj: &Map<String, Value>, what: &str, name: &str| {
        let value = obj
            .get(name)
            .ok_or_else(|| format!("{what} {name} is missing"))?;
        decimal(value, &format!("{what} {name}"))
    };
    let price = field(ticker, "ticker", "price")?;
    let as_of = match ticker.get("time") {
        Some(Value::String(s)) => parse_timestamp(s).map_err(|e| format!("ticker time: {e}"))?,
        Some(other) => return Err(format!("ticker time is {}, expected a time", kind(other))),
        None => return Err("ticker time is missing".to_owned()),
    };
    let result = LatestPrice {
        symbol: product.to_owned(),
        price,
        open_24h: field(stats, "stats", "open")?,
        high_24h: field(stats, "stats", "high")?.max(price),
        low_24h: field(stats, "stats", "low")?.min(price),
        volume_24h: field(stats, "stats", "volume")?,
        as_of,
        source: SOURCE.to_owned(),
    };
    check_price(&result)?;
    Ok(result)
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
