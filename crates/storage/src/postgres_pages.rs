//! Candle pages read from Postgres as one value rather than a row per candle.
//!
//! Postgres keeps each candle's open time and values packed in the `packed` column (see
//! the `packed_candles` migration); a page is those values joined in index order, and
//! the page's sources joined with a separator. Encoding six values of every row was most
//! of what a page cost Postgres, and decoding them most of what it cost here.

use marketd_domain::{Bar, Candle};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::{Result, StoreError};

/// Bytes of one packed candle: a big-endian int8 open time, then open, high, low, close
/// and volume as big-endian float8.
const PACKED_CANDLE_BYTES: usize = 48;

/// Joins the sources of a page. A source holding it makes the joined sources ambiguous,
/// which [`sources_in_order`] detects.
const SOURCE_SEPARATOR: char = '\n';

/// A page of candles without their sources: at most `$5` of `symbol = $1`,
/// `period = $2`, `$3 <= open_time < $4`, joined in ascending open time.
pub(crate) const PAGE: &str = "SELECT string_agg(packed, ''::bytea) FROM (
     SELECT packed FROM candles
     WHERE symbol = $1 AND period = $2 AND open_time >= $3 AND open_time < $4
     ORDER BY open_time LIMIT $5) page";

/// [`PAGE`] with each candle's source, joined in the same order.
pub(crate) const PAGE_WITH_SOURCES: &str = "SELECT string_agg(packed, ''::bytea),
     string_agg(source, E'\\n') FROM (
     SELECT packed, source FROM candles
     WHERE symbol = $1 AND period = $2 AND open_time >= $3 AND open_time < $4
     ORDER BY open_time LIMIT $5) page";

/// The bars of a [`PAGE`] or [`PAGE_WITH_SOURCES`] result, ascending; `None` when the
/// page's sources were asked for and cannot be told apart, so the caller must read them
/// row by row.
pub(crate) fn bars_from_page(row: &PgRow, with_source: bool) -> Result<Option<Vec<Bar>>> {
    let Some(packed) = row.try_get::<Option<&[u8]>, _>(0)? else {
        return Ok(Some(Vec::new()));
    };
    let mut bars = unpack(packed)?;
    if with_source {
        let joined: &str = row.try_get::<Option<&str>, _>(1)?.unwrap_or_default();
        let Some(sources) = sources_in_order(joined, bars.len()) else {
            return Ok(None);
        };
        for (bar, source) in bars.iter_mut().zip(sources) {
            source.clone_into(&mut bar.source);
        }
    }
    // An aggregate over an ordered subquery sees its rows in that order; Postgres does
    // not promise it, so a page that arrives otherwise is put right rather than served.
    if !bars.is_sorted_by_key(|bar| bar.candle.open_time) {
        bars.sort_unstable_by_key(|bar| bar.candle.open_time);
    }
    Ok(Some(bars))
}

fn unpack(packed: &[u8]) -> Result<Vec<Bar>> {
    if !packed.len().is_multiple_of(PACKED_CANDLE_BYTES) {
        return Err(StoreError::Corrupt(format!(
            "a page of packed candles is {} bytes, not a multiple of {PACKED_CANDLE_BYTES}",
            packed.len()
        )));
    }
    Ok(packed
        .chunks_exact(PACKED_CANDLE_BYTES)
        .map(|record| {
            let word = |i: usize| -> [u8; 8] {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(&record[i * 8..i * 8 + 8]);
                bytes
            };
            Bar {
                candle: Candle {
                    open_time: i64::from_be_bytes(word(0)),
                    open: f64::from_be_bytes(word(1)),
                    high: f64::from_be_bytes(word(2)),
                    low: f64::from_be_bytes(word(3)),
                    close: f64::from_be_bytes(word(4)),
                    volume: f64::from_be_bytes(word(5)),
                },
                source: String::new(),
                count: 1,
            }
        })
        .collect())
}

/// The `count` sources of a page, or `None` when one of them holds the separator.
fn sources_in_order(joined: &str, count: usize) -> Option<std::str::Split<'_, char>> {
    // Every source holding the separator adds a part, so the parts number exactly
    // `count` only when none does.
    let parts = joined.split(SOURCE_SEPARATOR);
    (count > 0 && parts.clone().count() == count).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(candles: &[Candle]) -> Vec<u8> {
        candles
            .iter()
            .flat_map(|c| {
                [
                    c.open_time.to_be_bytes(),
                    c.open.to_be_bytes(),
                    c.high.to_be_bytes(),
                    c.low.to_be_bytes(),
                    c.close.to_be_bytes(),
                    c.volume.to_be_bytes(),
                ]
            })
            .flatten()
            .collect()
    }

    fn candle(open_time: i64, close: f64) -> Candle {
        Candle {
            open_time,
            open: close - 1.5,
            high: close + 2.25,
            low: close - 3.0,
            close,
            volume: 1e-9 * close,
        }
    }

    #[test]
    fn unpacks_every_field_exactly() {
        let candles = [
            candle(-3_600_000, 0.1),
            candle(0, f64::MAX),
            candle(i64::MAX, 5e-324),
        ];
        let bars = unpack(&packed(&candles)).unwrap();
        let unpacked: Vec<Candle> = bars.iter().map(|b| b.candle).collect();
        assert_eq!(unpacked, candles);
        assert!(bars.iter().all(|b| b.count == 1 && b.source.is_empty()));
    }

    #[test]
    fn refuses_a_truncated_page() {
        let mut bytes = packed(&[candle(0, 1.0), candle(60_000, 2.0)]);
        bytes.pop();
        assert!(matches!(unpack(&bytes), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn sources_are_told_apart_only_without_the_separator() {
        let parts: Vec<&str> = sources_in_order("binance\ncoinbase\nbinance", 3)
            .unwrap()
            .collect();
        assert_eq!(parts, ["binance", "coinbase", "binance"]);
        assert!(sources_in_order("odd\nname\nbinance", 2).is_none());
        assert!(sources_in_order("", 0).is_none());
        assert_eq!(sources_in_order("", 1).unwrap().collect::<Vec<_>>(), [""]);
    }
}
