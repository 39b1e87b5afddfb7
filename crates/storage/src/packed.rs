//! One candle's open time and values as 48 bytes: a big-endian int8 open time, then
//! open, high, low, close and volume as big-endian float8 (the bytes of Postgres's
//! `int8send` and `float8send`). Both backends keep this value beside each candle's
//! columns, so a page of candles is read as one value of fixed-width records instead of
//! six typed values per row.

use marketd_domain::{Bar, Candle};

use crate::{Result, StoreError};

/// Joins the sources of a page. A source holding it makes the joined sources ambiguous,
/// which [`bars_from_parts`] detects.
pub(crate) const SOURCE_SEPARATOR: char = '\n';

/// Bytes of one packed candle.
pub(crate) const PACKED_CANDLE_BYTES: usize = 48;

/// A packed candle.
pub(crate) type Record = [u8; PACKED_CANDLE_BYTES];

pub(crate) fn pack(candle: &Candle) -> Record {
    let mut record = [0; PACKED_CANDLE_BYTES];
    let words = [
        candle.open_time.to_be_bytes(),
        candle.open.to_be_bytes(),
        candle.high.to_be_bytes(),
        candle.low.to_be_bytes(),
        candle.close.to_be_bytes(),
        candle.volume.to_be_bytes(),
    ];
    for (slot, word) in record.chunks_exact_mut(8).zip(words) {
        slot.copy_from_slice(&word);
    }
    record
}

pub(crate) fn unpack(record: &Record) -> Candle {
    let word = |i: usize| -> [u8; 8] {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&record[i * 8..i * 8 + 8]);
        bytes
    };
    Candle {
        open_time: i64::from_be_bytes(word(0)),
        open: f64::from_be_bytes(word(1)),
        high: f64::from_be_bytes(word(2)),
        low: f64::from_be_bytes(word(3)),
        close: f64::from_be_bytes(word(4)),
        volume: f64::from_be_bytes(word(5)),
    }
}

/// The bars of a page from its packed values, joined in order, and, when asked for, its
/// sources joined by [`SOURCE_SEPARATOR`] in the same order; ascending. `None` when the
/// sources cannot be told apart, so the caller must read them another way.
pub(crate) fn bars_from_parts(packed: &[u8], sources: Option<&str>) -> Result<Option<Vec<Bar>>> {
    let mut bars = unpack_page(packed)?;
    if let Some(joined) = sources {
        let Some(sources) = sources_in_order(joined, bars.len()) else {
            return Ok(None);
        };
        for (bar, source) in bars.iter_mut().zip(sources) {
            source.clone_into(&mut bar.source);
        }
    }
    // An aggregate over an ordered subquery sees its rows in that order; neither
    // database promises it, so a page that arrives otherwise is put right rather than
    // served.
    if !bars.is_sorted_by_key(|bar| bar.candle.open_time) {
        bars.sort_unstable_by_key(|bar| bar.candle.open_time);
    }
    Ok(Some(bars))
}

/// Which candles of a block a page keeps: those opened in `open_times`, up to `limit`
/// in the whole page.
pub(crate) struct PageBounds {
    pub open_times: std::ops::Range<i64>,
    pub limit: usize,
}

/// Appends to `bars` the candles of one block, packed and joined in ascending open time,
/// that `keep` admits, each with its source when `sources` (joined by
/// [`SOURCE_SEPARATOR`]) is given. `false` when the sources cannot be told apart, so the
/// caller must read them another way.
pub(crate) fn extend_from_block(
    bars: &mut Vec<Bar>,
    block: &[u8],
    sources: Option<&str>,
    keep: &PageBounds,
) -> Result<bool> {
    let records = records(block)?;
    let mut sources = match sources.map(|joined| sources_in_order(joined, records.len())) {
        Some(None) => return Ok(false),
        Some(Some(parts)) => Some(parts),
        None => None,
    };
    for record in records {
        let source = sources.as_mut().and_then(Iterator::next);
        if bars.len() >= keep.limit {
            break;
        }
        let candle = unpack(record);
        if keep.open_times.contains(&candle.open_time) {
            bars.push(Bar {
                candle,
                source: source.map(str::to_owned).unwrap_or_default(),
                count: 1,
            });
        }
    }
    Ok(true)
}

fn records(packed: &[u8]) -> Result<&[Record]> {
    let (records, rest) = packed.as_chunks::<PACKED_CANDLE_BYTES>();
    if !rest.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "packed candles of {} bytes, not a multiple of {PACKED_CANDLE_BYTES}",
            packed.len()
        )));
    }
    Ok(records)
}

fn unpack_page(packed: &[u8]) -> Result<Vec<Bar>> {
    Ok(records(packed)?
        .iter()
        .map(|record| Bar {
            candle: unpack(record),
            source: String::new(),
            count: 1,
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_candle_comes_back_bit_for_bit() {
        for candle in [
            Candle {
                open_time: -3_600_000,
                open: 0.1,
                high: f64::MAX,
                low: 5e-324,
                close: -0.0,
                volume: 1e-9,
            },
            Candle {
                open_time: i64::MAX,
                open: 1.0,
                high: 2.0,
                low: 0.5,
                close: 1.5,
                volume: 0.0,
            },
        ] {
            let back = unpack(&pack(&candle));
            assert_eq!(back, candle);
            assert_eq!(back.close.to_bits(), candle.close.to_bits());
        }
        // The layout Postgres's int8send and float8send produce.
        let record = pack(&Candle {
            open_time: 1,
            open: 1.0,
            high: 0.0,
            low: 0.0,
            close: 0.0,
            volume: 0.0,
        });
        assert_eq!(
            &record[..16],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
    }

    fn joined(candles: &[Candle]) -> Vec<u8> {
        candles.iter().flat_map(pack).collect()
    }

    /// A candle whose values all differ, around `close`.
    pub(crate) fn candle(open_time: i64, close: f64) -> Candle {
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
        let bars = unpack_page(&joined(&candles)).unwrap();
        let unpacked: Vec<Candle> = bars.iter().map(|b| b.candle).collect();
        assert_eq!(unpacked, candles);
        assert!(bars.iter().all(|b| b.count == 1 && b.source.is_empty()));
    }

    #[test]
    fn refuses_a_truncated_page() {
        let mut bytes = joined(&[candle(0, 1.0), candle(60_000, 2.0)]);
        bytes.pop();
        assert!(matches!(unpack_page(&bytes), Err(StoreError::Corrupt(_))));
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
