//! CSV candles: marketd's own format (a header `open_time,open,high,low,close,volume`,
//! columns in any order, extra columns ignored) or Binance's kline files (no header,
//! `open_time,open,high,low,close,volume,close_time,…`).
//!
//! An import is atomic: the whole file is written in one transaction, which commits only
//! once every row has been read and checked. A file with bad rows writes nothing unless
//! the caller chooses to skip them, and an interrupted import leaves the database as it
//! was.

use std::io::Read;

use marketd_domain::{Candle, Interval, parse_timestamp};

/// Binance's spot files switched from milliseconds to microseconds in 2025; any open
/// time above this (year 5138 in milliseconds) must be microseconds.
const MICROSECOND_THRESHOLD: i64 = 100_000_000_000_000;
/// Bad rows kept for reporting; beyond this only the count grows.
const MAX_REPORTED_BAD_ROWS: usize = 1_000;
const COLUMNS: [&str; 6] = ["open_time", "open", "high", "low", "close", "volume"];

/// A row that was refused, with its 1-based line number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// The checked content of a file.
#[derive(Debug, Default)]
pub struct ParsedCsv {
    pub candles: Vec<Candle>,
    /// The first bad rows, in file order (at most 1,000).
    pub bad_rows: Vec<BadRow>,
    pub bad_row_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(#[from] csv::Error),
    #[error("the header names no column `{0}`; expected open_time,open,high,low,close,volume")]
    MissingColumn(&'static str),
}

/// Parses and checks every row for `interval`.
pub fn parse_csv(reader: impl Read, interval: Interval) -> Result<ParsedCsv, ImportError> {
    let mut candles = Vec::new();
    let mut parsed = parse_csv_in_batches(reader, interval, |batch| {
        candles.extend(batch);
        true
    })?;
    parsed.candles = candles;
    Ok(parsed)
}

/// Good rows per batch of [`parse_csv_in_batches`].
pub const BATCH_ROWS: usize = 50_000;

/// Parses and checks every row for `interval`, handing the good ones to `take` in
/// batches of [`BATCH_ROWS`] as it goes, so they can be written while the rest is read.
/// `take` answers whether to go on. The result holds the bad rows, not the candles.
pub fn parse_csv_in_batches(
    reader: impl Read,
    interval: Interval,
    mut take: impl FnMut(Vec<Candle>) -> bool,
) -> Result<ParsedCsv, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut parsed = ParsedCsv::default();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut positions: Option<[usize; 6]> = None;
    let mut record = csv::StringRecord::new();
    let mut first = true;
    while csv.read_record(&mut record)? {
        let line = record.position().map_or(0, csv::Position::line);
        if first {
            first = false;
            let first_field = record
                .get(0)
                .unwrap_or_default()
                .trim_start_matches('\u{feff}');
            if first_field.eq_ignore_ascii_case("open_time") || !looks_numeric(first_field) {
                positions = Some(header_positions(&record)?);
                continue;
            }
        }
        let columns = positions.unwrap_or([0, 1, 2, 3, 4, 5]);
        match parse_row(&record, columns, interval) {
            Ok(candle) => {
                batch.push(candle);
                if batch.len() == BATCH_ROWS
                    && !take(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(BATCH_ROWS),
                    ))
                {
                    return Ok(parsed);
                }
            }
            Err(reason) => {
                parsed.bad_row_count += 1;
                if parsed.bad_rows.len() < MAX_REPORTED_BAD_ROWS {
                    parsed.bad_rows.push(BadRow { line, reason });
                }
            }
        }
    }
    if !batch.is_empty() {
        take(batch);
    }
    Ok(parsed)
}

fn looks_numeric(field: &str) -> bool {
    !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn header_positions(header: &csv::StringRecord) -> Result<[usize; 6], ImportError> {
    let mut positions = [0; 6];
    for (slot, name) in positions.iter_mut().zip(COLUMNS) {
        *slot = header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
            .ok_or(ImportError::MissingColumn(name))?;
    }
    Ok(positions)
}

fn parse_row(
    record: &csv::StringRecord,
    columns: [usize; 6],
    interval: Interval,
) -> Result<Candle, String> {
    let field = |i: usize| {
        record
            .get(columns[i])
            .ok_or_else(|| format!("missing column `{}`", COLUMNS[i]))
    };
    let number = |i: usize| -> Result<f64, String> {
        let raw = field(i)?;
        raw.parse::<f64>()
            .map_err(|_| format!("`{}` is not a number: {raw:?}", COLUMNS[i]))
    };
    let raw_time = field(0)?;
    let open_time = match raw_time.parse::<i64>() {
        Ok(micros) if micros > MICROSECOND_THRESHOLD => {
            parse_timestamp(&(micros / 1_000).to_string())
        }
        _ => parse_timestamp(raw_time),
    }
    .map_err(|e| format!("open_time {raw_time:?}: {e}"))?;
    let candle = Candle {
        open_time,
        open: number(1)?,
        high: number(2)?,
        low: number(3)?,
        close: number(4)?,
        volume: number(5)?,
    };
    candle.validate_for(interval).map_err(|e| e.to_string())?;
    Ok(candle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_format_with_any_column_order() {
        let file = "volume,open_time,open,high,low,close\n\
                    5,2024-01-01T00:00:00Z,10,12,9,11\n\
                    6,1704067260000,11,11.5,10.5,11.25\n";
        let parsed = parse_csv(file.as_bytes(), Interval::M1).unwrap();
        assert_eq!(parsed.bad_row_count, 0);
        assert_eq!(
            parsed.candles,
            vec![
                Candle {
                    open_time: 1_704_067_200_000,
                    open: 10.0,
                    high: 12.0,
                    low: 9.0,
                    close: 11.0,
                    volume: 5.0
                },
                Candle {
                    open_time: 1_704_067_260_000,
                    open: 11.0,
                    high: 11.5,
                    low: 10.5,
                    close: 11.25,
                    volume: 6.0
                },
            ]
        );
    }

    #[test]
    fn reads_binance_klines_in_milli_and_microseconds() {
        let file = "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.97,47134,682.57581,28957416.82,0\n\
                    1704070800000000,42475.23,42775.00,42431.65,42613.56,1196.37856,1704074399999999,51047367.03,44355,599.02938,25557922.17,0\n";
        let parsed = parse_csv(file.as_bytes(), Interval::H1).unwrap();
        assert_eq!(parsed.bad_rows, vec![]);
        assert_eq!(parsed.candles.len(), 2);
        assert_eq!(parsed.candles[1].open_time, 1_704_070_800_000);
        assert_eq!(parsed.candles[1].close, 42_613.56);
    }

    #[test]
    fn reports_bad_rows_with_line_numbers() {
        let file = "open_time,open,high,low,close,volume\n\
                    2024-01-01T00:00:00Z,10,12,9,11,5\n\
                    2024-01-01T00:01:00Z,10,8,9,11,5\n\
                    yesterday,10,12,9,11,5\n\
                    2024-01-01T00:00:30Z,10,12,9,11,5\n\
                    2024-01-01T00:03:00Z,10,12,9,abc,5\n\
                    2024-01-01T00:04:00Z,10,12\n";
        let parsed = parse_csv(file.as_bytes(), Interval::M1).unwrap();
        assert_eq!(parsed.candles.len(), 1);
        let lines: Vec<u64> = parsed.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(parsed.bad_rows[0].reason.contains("high is below low"));
        assert!(parsed.bad_rows[2].reason.contains("not aligned"));
        assert!(
            parsed.bad_rows[3]
                .reason
                .contains("`close` is not a number")
        );
        assert!(parsed.bad_rows[4].reason.contains("missing column `low`"));
    }

    #[test]
    fn rejects_a_header_without_required_columns() {
        let err =
            parse_csv("time,open,high,low,close,volume\n".as_bytes(), Interval::M1).unwrap_err();
        assert!(matches!(err, ImportError::MissingColumn("open_time")));
    }
}
