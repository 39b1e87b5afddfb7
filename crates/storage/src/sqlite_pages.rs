//! Candle pages read from SQLite as one row rather than a row per candle.
//!
//! sqlx hands each result row from SQLite's thread to the task on its own, and that
//! hand-off cost several times the read, so SQLite joins a page into one row: the
//! candles' packed values (see [`crate::packed`]) joined into one value, and their
//! sources joined with a separator, as on Postgres.
//!
//! A candle without a packed value (stored before the `packed_candles` migration by a
//! writer that does not set it, until [`pack_unpacked`] reaches it), or a page whose
//! sources cannot be told apart, is read as text instead: a line per candle of
//! `open_time,open,high,low,close,volume` (or its packed value in hex), then its source
//! in hex. `%!.17g` is an exact round trip for every double (SQLite 3.43 and later), but
//! formatting five floats per candle was most of what a page cost SQLite.

use marketd_domain::{Bar, Candle};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use crate::packed::{self, PACKED_CANDLE_BYTES, Record};
use crate::{Result, StoreError};

/// A page of candles without their sources: at most `?5` of `symbol = ?1`,
/// `period = ?2`, `?3 <= open_time < ?4`, joined in ascending open time, then how many
/// of them have no packed value. A blob joined by `group_concat` keeps its bytes.
pub(crate) const PAGE: &str = "SELECT CAST(group_concat(packed, '') AS BLOB), NULL,
        count(*) - count(packed)
     FROM (SELECT packed FROM candles
           WHERE symbol = ? AND period = ? AND open_time >= ? AND open_time < ?
           ORDER BY open_time LIMIT ?)";

/// [`PAGE`] with each candle's source, joined in the same order.
pub(crate) const PAGE_WITH_SOURCES: &str = "SELECT CAST(group_concat(packed, '') AS BLOB),
        group_concat(source, char(10)), count(*) - count(packed)
     FROM (SELECT packed, source FROM candles
           WHERE symbol = ? AND period = ? AND open_time >= ? AND open_time < ?
           ORDER BY open_time LIMIT ?)";

/// The page of [`PAGE_WITH_SOURCES`] as the lines [`bars_from_text`] reads.
pub(crate) const PAGE_AS_TEXT: &str = "SELECT group_concat(
        CASE WHEN packed IS NULL
            THEN printf('%d,%!.17g,%!.17g,%!.17g,%!.17g,%!.17g',
                        open_time, open, high, low, close, volume)
            ELSE hex(packed) END
        || ',' || hex(source),
        char(10))
     FROM (SELECT open_time, open, high, low, close, volume, source, packed FROM candles
           WHERE symbol = ? AND period = ? AND open_time >= ? AND open_time < ?
           ORDER BY open_time LIMIT ?)";

/// The bars of a [`PAGE`] or [`PAGE_WITH_SOURCES`] result, ascending; `None` when one of
/// the candles has no packed value or the page's sources cannot be told apart, so the
/// caller must read it with [`PAGE_AS_TEXT`].
pub(crate) fn bars_from_page(row: &SqliteRow, with_source: bool) -> Result<Option<Vec<Bar>>> {
    let unpacked: i64 = row.try_get(2)?;
    if unpacked > 0 {
        return Ok(None);
    }
    let Some(joined) = row.try_get::<Option<&[u8]>, _>(0)? else {
        return Ok(Some(Vec::new()));
    };
    let sources = if with_source {
        Some(row.try_get::<Option<&str>, _>(1)?.unwrap_or_default())
    } else {
        None
    };
    packed::bars_from_parts(joined, sources)
}

/// Candles packed per statement when packing those stored without a packed value (four
/// bound values each, far below SQLite's limit of 32,766).
const PACK_BATCH: i64 = 1000;

fn malformed() -> StoreError {
    StoreError::Corrupt("a line of a candle page is malformed".into())
}

/// The bars of a [`PAGE_AS_TEXT`] result, ascending.
pub(crate) fn bars_from_text(text: Option<&str>) -> Result<Vec<Bar>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut bars = Vec::with_capacity(text.len() / 100 + 1);
    let mut last_source: Option<(&str, String)> = None;
    for line in text.split('\n') {
        let (values, hex_source) = line.rsplit_once(',').ok_or_else(malformed)?;
        let candle = if values.contains(',') {
            candle_from_columns(values)?
        } else {
            let mut record: Record = [0; PACKED_CANDLE_BYTES];
            decode_hex_into(values.as_bytes(), &mut record).ok_or_else(malformed)?;
            packed::unpack(&record)
        };
        // Consecutive candles nearly always share a source: decode it once per run.
        let source = match &last_source {
            Some((hex, decoded)) if *hex == hex_source => decoded.clone(),
            _ => {
                let decoded = decode_hex_text(hex_source).ok_or_else(malformed)?;
                last_source = Some((hex_source, decoded.clone()));
                decoded
            }
        };
        bars.push(Bar {
            candle,
            source,
            count: 1,
        });
    }
    // An aggregate over an ordered subquery sees its rows in that order; SQLite does not
    // promise it, so a page that arrives otherwise is put right rather than served.
    if !bars.is_sorted_by_key(|bar| bar.candle.open_time) {
        bars.sort_unstable_by_key(|bar| bar.candle.open_time);
    }
    Ok(bars)
}

/// `open_time,open,high,low,close,volume` as text.
fn candle_from_columns(values: &str) -> Result<Candle> {
    let mut fields = values.split(',');
    let mut next = || fields.next().ok_or_else(malformed);
    let open_time: i64 = next()?.parse().map_err(|_| malformed())?;
    let mut value = || -> Result<f64> { next()?.parse().map_err(|_| malformed()) };
    let candle = Candle {
        open_time,
        open: value()?,
        high: value()?,
        low: value()?,
        close: value()?,
        volume: value()?,
    };
    match fields.next() {
        None => Ok(candle),
        Some(_) => Err(malformed()),
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Fills `out` from exactly twice its length of hex digits.
fn decode_hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(())
}

fn decode_hex_text(hex: &str) -> Option<String> {
    let mut bytes = vec![0; hex.len() / 2];
    decode_hex_into(hex.as_bytes(), &mut bytes)?;
    String::from_utf8(bytes).ok()
}

#[derive(sqlx::FromRow)]
struct UnpackedRow {
    symbol: String,
    period: String,
    open_time: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// Packs every candle stored without a packed value, a batch per transaction, and
/// returns how many it packed. Cheap when there are none: the `candles_unpacked` index
/// holds only those.
pub(crate) async fn pack_unpacked(pool: &SqlitePool) -> Result<u64> {
    let mut packed_count = 0;
    loop {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<UnpackedRow> = sqlx::query_as(
            "SELECT symbol, period, open_time, open, high, low, close, volume
             FROM candles WHERE packed IS NULL LIMIT ?",
        )
        .bind(PACK_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(packed_count);
        }
        // One statement per batch: a statement per row cost ~50 µs each.
        let mut update =
            QueryBuilder::<Sqlite>::new("UPDATE candles SET packed = v.column4 FROM (");
        update.push_values(&rows, |mut values, row| {
            let record = packed::pack(&Candle {
                open_time: row.open_time,
                open: row.open,
                high: row.high,
                low: row.low,
                close: row.close,
                volume: row.volume,
            });
            values
                .push_bind(&row.symbol)
                .push_bind(&row.period)
                .push_bind(row.open_time)
                .push_bind(record.to_vec());
        });
        update.push(
            ") AS v WHERE candles.symbol = v.column1 AND candles.period = v.column2
               AND candles.open_time = v.column3",
        );
        update.build().execute(&mut *tx).await?;
        tx.commit().await?;
        packed_count += rows.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use crate::packed::tests::candle;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn packed_and_column_lines_read_alike_and_in_order() {
        let first = candle(0, 0.1);
        let second = candle(3_600_000, 1.0 / 3.0);
        let third = candle(7_200_000, f64::MAX);
        let page = [
            // Out of order, one of them as columns.
            format!("{},{}", hex(&packed::pack(&third)), hex(b"coinbase")),
            format!("{},{}", hex(&packed::pack(&first)), hex(b"binance")),
            format!(
                "3600000,{:?},{:?},{:?},{:?},{:?},{}",
                second.open,
                second.high,
                second.low,
                second.close,
                second.volume,
                hex(b"binance")
            ),
        ]
        .join("\n");
        let bars = bars_from_text(Some(&page)).unwrap();
        let candles: Vec<Candle> = bars.iter().map(|b| b.candle).collect();
        assert_eq!(candles, [first, second, third]);
        let sources: Vec<&str> = bars.iter().map(|b| b.source.as_str()).collect();
        assert_eq!(sources, ["binance", "binance", "coinbase"]);
        assert!(bars_from_text(None).unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_lines() {
        let good = hex(&packed::pack(&candle(0, 1.0)));
        for line in [
            String::new(),
            good.clone(),
            format!("{},{}", &good[1..], hex(b"x")),
            format!("{}G,{}", &good[1..], hex(b"x")),
            format!("{good},{}", &hex(b"x")[1..]),
            format!("0,1,2,3,4,{}", hex(b"x")),
            format!("0,1,2,3,4,5,6,{}", hex(b"x")),
            format!("0,1,2,three,4,5,{}", hex(b"x")),
            format!("{good},{}", hex(&[0xff])),
        ] {
            let read = bars_from_text(Some(&line));
            assert!(matches!(read, Err(StoreError::Corrupt(_))), "{line:?}");
        }
    }
}
