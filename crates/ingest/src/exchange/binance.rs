//! Binance spot: `GET /api/v3/klines` and `GET /api/v3/ticker/24hr`.
//!
//! A kline is `[openTime, "open", "high", "low", "close", "volume", closeTime,
//! "quoteVolume", trades, "takerBuyBase", "takerBuyQuote", "ignore"]`: times in Unix
//! milliseconds, prices and volumes as decimal strings. Errors come back as
//! `{"code": -1121, "msg": "Invalid symbol."}`.

use marketd_domain::{Candle, Interval, LatestPrice};
use serde_json::{Map, Value};

use super::{
    Parsed, PayloadError, Rejected, candles_from_rows, check_price, decimal, integer, kind,
    parse_json, row_array, time_ms,
};

pub const SOURCE: &str = "binance";

/// Parses a klines response into candles of `interval`, checked against `now_ms`.
pub fn parse_klines(
    body: &[u8],
    interval: Interval,
    now_ms: i64,
) -> Result<Parsed<Candle>, PayloadError> {
    let rows = match parse_json(body)? {
        Value::Array(rows) => rows,
        Value::Object(obj) => return Err(error_envelope(&obj)),
        other => {
            return Err(PayloadError::Shape(format!(
                "klines are {}, expected an array",
                kind(&other)
            )));
        }
    };
    Ok(candles_from_rows(&rows, kline, interval, now_ms))
}

fn kline(row: &Value) -> Result<Candle, String> {
    let f = row_array(row, 6)?;
    Ok(Candle {
        open_time: time_ms(integer(&f[0], "open time")?, 1, "open time")?,
        open: decimal(&f[1], "open")?,
        high: decimal(&f[2], "high")?,
        low: decimal(&f[3], "low")?,
        close: decimal(&f[4], "close")?,
        volume: decimal(&f[5], "volume")?,
    })
}

/// Parses a 24-hour ticker response (one object, or an array when several symbols were
/// asked for) into latest prices. `symbol` in each row is Binance's pair name; the
/// caller maps it to ours with the [`super::SymbolTable`].
pub fn parse_ticker_24hr(body: &[u8]) -> Result<Parsed<LatestPrice>, PayloadError> {
    let items = match parse_json(body)? {
        Value::Array(items) => items,
        Value::Object(obj) if obj.contains_key("code") && !obj.contains_key("symbol") => {
            return Err(error_envelope(&obj));
        }
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(PayloadError::Shape(format!(
                "the ticker is {}, expected an object or an array",
                kind(&other)
            )));
        }
    };
    let mut parsed = Parsed::default();
    for (index, item) in items.iter().enumerate() {
        match ticker(item) {
            Ok(price) => parsed.rows.push(price),
            Err(reason) => parsed.rejected.push(Rejected { index, reason }),
        }
    }
    parsed.rows.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(parsed)
}

fn ticker(item: &Value) -> Result<LatestPrice, String> {
    let Value::Object(obj) = item else {
        return Err(format!("ticker is {}, expected an object", kind(item)));
    };
    let field = |name: &str| obj.get(name).ok_or_else(|| format!("{name} is missing"));
    let symbol = match field("symbol")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => return Err(format!("symbol is {}, expected a name", kind(other))),
    };
    let price = LatestPrice {
        symbol,
        price: decimal(field("lastPrice")?, "lastPrice")?,
        open_24h: decimal(field("openPrice")?, "openPrice")?,
        high_24h: decimal(field("highPrice")?, "highPrice")?,
        low_24h: decimal(field("lowPrice")?, "lowPrice")?,
        volume_24h: decimal(field("volume")?, "volume")?,
        as_of: time_ms(integer(field("closeTime")?, "closeTime")?, 1, "closeTime")?,
        source: SOURCE.to_owned(),
    };
    check_price(&price)?;
    Ok(price)
}

fn error_envelope(obj: &Map<String, Value>) -> PayloadError {
    match (obj.get("code"), obj.get("msg")) {
        (Some(code), Some(Value::String(msg))) => PayloadError::Upstream(format!("{code}: {msg}")),
        _ => PayloadError::Shape("an object that is neither data nor an error".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes_are_errors() {
        let body = br#"{"code":-1121,"msg":"Invalid symbol."}"#;
        assert_eq!(
            parse_klines(body, Interval::M1, 0),
            Err(PayloadError::Upstream("-1121: Invalid symbol.".to_owned()))
        );
        assert!(matches!(
            parse_ticker_24hr(body),
            Err(PayloadError::Upstream(_))
        ));
    }

    #[test]
    fn a_short_row_is_rejected_alone() {
        let body = br#"[[1499040000000,"1","2","0.5","1.5","10"],[1499040060000,"1"]]"#;
        let parsed = parse_klines(body, Interval::M1, 1_499_040_100_000).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected[0].index, 1);
        assert!(parsed.rejected[0].reason.contains("2 fields"));
    }
}
