//! CoinGecko: `GET /api/v3/simple/price?ids=…&vs_currencies=usd&include_24hr_vol=true
//! &include_24hr_change=true&include_last_updated_at=true`.
//!
//! `{"bitcoin": {"usd": 67187.34, "usd_24h_vol": 3.1e10, "usd_24h_change": 3.63,
//! "last_updated_at": 1711356300}}`, `last_updated_at` in Unix seconds. Errors come back
//! as `{"status": {"error_code": 429, "error_message": "…"}}` or `{"error": "…"}`.
//!
//! Also `GET /api/v3/coins/markets?vs_currency=usd&ids=…`: an array of coin objects
//! with `current_price`, `high_24h`, `low_24h`, `total_volume`, `price_change_24h` and
//! `last_updated` (RFC 3339), which carries the true 24-hour range.
//!
//! The simple-price endpoint gives no 24-hour high and low. The open is derived from the percentage
//! change, and the range is the narrowest one that holds both the open and the last
//! price, so `change_24h` is exact while `high_24h`/`low_24h` are lower bounds of the
//! true range.

use marketd_domain::{LatestPrice, parse_timestamp};
use serde_json::{Map, Value};

use super::{
    Parsed, PayloadError, Rejected, check_price, decimal, integer, kind, parse_json, time_ms,
};

pub const SOURCE: &str = "coingecko";

/// Parses a simple-price response quoted in `vs_currency` (e.g. `usd`). Each row's
/// `symbol` is CoinGecko's coin id; the caller maps it to ours with the
/// [`super::SymbolTable`]. Rows come out in coin-id order, and a rejected row's index is
/// its position in that order.
pub fn parse_simple_price(
    body: &[u8],
    vs_currency: &str,
) -> Result<Parsed<LatestPrice>, PayloadError> {
    let Value::Object(coins) = parse_json(body)? else {
        return Err(PayloadError::Shape(
            "expected an object keyed by coin id".into(),
        ));
    };
    if let Some(err) = error_envelope(&coins) {
        return Err(err);
    }
    let vs = vs_currency.to_ascii_lowercase();
    let mut parsed = Parsed::default();
    // serde_json's map iterates in key order, which makes indexes deterministic.
    for (index, (id, quote)) in coins.iter().enumerate() {
        match coin(id, quote, &vs) {
            Ok(price) => parsed.rows.push(price),
            Err(reason) => parsed.rejected.push(Rejected {
                index,
                reason: format!("{id}: {reason}"),
            }),
        }
    }
    Ok(parsed)
}

fn coin(id: &str, quote: &Value, vs: &str) -> Result<LatestPrice, String> {
    let Value::Object(q) = quote else {
        return Err(format!("quote is {}, expected an object", kind(quote)));
    };
    let field = |name: String| q.get(&name).ok_or_else(|| format!("{name} is missing"));
    let price = decimal(field(vs.to_owned())?, vs)?;
    let volume = decimal(field(format!("{vs}_24h_vol"))?, "24h volume")?;
    let change_pct = decimal(field(format!("{vs}_24h_change"))?, "24h change")?;
    let updated = integer(field("last_updated_at".to_owned())?, "last_updated_at")?;
    if change_pct <= -100.0 {
        return Err(format!("24h change {change_pct}% implies no earlier price"));
    }
    let open = price / (1.0 + change_pct / 100.0);
    let result = LatestPrice {
        symbol: id.to_owned(),
        price,
        open_24h: open,
        high_24h: price.max(open),
        low_24h: price.min(open),
        volume_24h: volume,
        as_of: time_ms(updated, 1000, "last_updated_at")?,
        source: SOURCE.to_owned(),
    };
    check_price(&result)?;
    Ok(result)
}

/// Parses a `/coins/markets` response. Each row's `symbol` is CoinGecko's coin id.
pub fn parse_markets(body: &[u8]) -> Result<Parsed<LatestPrice>, PayloadError> {
    let coins = match parse_json(body)? {
        Value::Array(coins) => coins,
        Value::Object(obj) => {
            return Err(error_envelope(&obj).unwrap_or_else(|| {
                PayloadError::Shape("an object that is neither data nor an error".into())
            }));
        }
        other => {
            return Err(PayloadError::Shape(format!(
                "markets are {}, expected an array",
                kind(&other)
            )));
        }
    };
    let mut parsed = Parsed::default();
    for (index, item) in coins.iter().enumerate() {
        match market(item) {
            Ok(price) => parsed.rows.push(price),
            Err(reason) => parsed.rejected.push(Rejected { index, reason }),
        }
    }
    parsed.rows.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(parsed)
}

fn market(item: &Value) -> Result<LatestPrice, String> {
    let Value::Object(obj) = item else {
        return Err(format!("coin is {}, expected an object", kind(item)));
    };
    let field = |name: &str| obj.get(name).ok_or_else(|| format!("{name} is missing"));
    let id = match field("id")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => return Err(format!("id is {}, expected a coin id", kind(other))),
    };
    let price = decimal(field("current_price")?, "current_price")?;
    let change = decimal(field("price_change_24h")?, "price_change_24h")?;
    let as_of = match field("last_updated")? {
        Value::String(s) => parse_timestamp(s).map_err(|e| format!("last_updated: {e}"))?,
        other => return Err(format!("last_updated is {}, expected a time", kind(other))),
    };
    let result = LatestPrice {
        symbol: id,
        price,
        open_24h: price - change,
        high_24h: decimal(field("high_24h")?, "high_24h")?,
        low_24h: decimal(field("low_24h")?, "low_24h")?,
        volume_24h: decimal(field("total_volume")?, "total_volume")?,
        as_of,
        source: SOURCE.to_owned(),
    };
    check_price(&result).map_err(|e| format!("{}: {e}", result.symbol))?;
    Ok(result)
}

fn error_envelope(obj: &Map<String, Value>) -> Option<PayloadError> {
    if let Some(Value::Object(status)) = obj.get("status") {
        let message = status
            .get("error_message")
            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
            .unwrap_or_else(|| Value::Object(status.clone()).to_string());
        return Some(PayloadError::Upstream(message));
    }
    match obj.get("error") {
        Some(Value::String(msg)) => Some(PayloadError::Upstream(msg.clone())),
        Some(other) => Some(PayloadError::Upstream(other.to_string())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_objects_are_upstream_errors() {
        let body =
            br#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#;
        assert_eq!(
            parse_simple_price(body, "usd"),
            Err(PayloadError::Upstream(
                "You've exceeded the Rate Limit.".into()
            ))
        );
    }

    #[test]
    fn the_open_is_derived_from_the_change() {
        let body = br#"{"bitcoin":{"usd":110,"usd_24h_vol":5,"usd_24h_change":10,"last_updated_at":1711356300}}"#;
        let parsed = parse_simple_price(body, "USD").unwrap();
        let p = &parsed.rows[0];
        assert!((p.open_24h - 100.0).abs() < 1e-9);
        assert_eq!((p.low_24h, p.high_24h), (p.open_24h, 110.0));
        assert_eq!(p.as_of, 1_711_356_300_000);
    }
}
