//! Bulk candle writes on Postgres through `COPY … FROM STDIN (FORMAT binary)`.
//!
//! A million-row import through UNNEST upserts spends most of its time building and
//! planning statements; COPY streams rows straight into the table. COPY cannot upsert,
//! so it goes straight into `candles` only when the range holds no stored candle; if a
//! concurrent writer gets there first the unique violation is rolled back to a savepoint
//! and the rows take the general path: COPY into a temporary table, then one
//! `INSERT … SELECT … ON CONFLICT` from it.

use marketd_domain::{Candle, Interval};
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::sync::mpsc;

use crate::{CandleBatch, Result, StoreError};

/// Fewer rows than this go through UNNEST upserts: COPY's set-up costs more than it saves.
pub(crate) const COPY_FROM_ROWS: usize = 20_000;

/// Rows encoded per message sent; about 5 MB of binary tuples into `candles`.
const ROWS_PER_SEND: usize = 50_000;

/// The binary COPY header: signature, no flags, no extension area.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A tuple count of -1 ends the data.
const TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// What every row of one write shares.
pub(crate) struct SeriesRows<'a> {
    pub symbol: &'a str,
    pub interval: Interval,
    pub source: &'a str,
    pub updated_at: i64,
    /// Sorted by open time, without duplicates.
    pub candles: &'a [Candle],
}

fn put_text(buf: &mut Vec<u8>, text: &str) {
    let len = i32::try_from(text.len()).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(text.as_bytes());
}

fn put_i64(buf: &mut Vec<u8>, value: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&value.to_be_bytes());
}

fn put_f64(buf: &mut Vec<u8>, value: f64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&value.to_bits().to_be_bytes());
}

/// Tuples for `candles` in column order: symbol, period, open_time, open, high, low,
/// close, volume, source, updated_at.
fn full_tuples(buf: &mut Vec<u8>, rows: &SeriesRows<'_>, chunk: &[Candle]) {
    for c in chunk {
        buf.extend_from_slice(&10i16.to_be_bytes());
        put_text(buf, rows.symbol);
        put_text(buf, rows.interval.as_str());
        put_i64(buf, c.open_time);
        for value in [c.open, c.high, c.low, c.close, c.volume] {
            put_f64(buf, value);
        }
        put_text(buf, rows.source);
        put_i64(buf, rows.updated_at);
    }
}

/// Tuples for the staging table: open_time, open, high, low, close, volume.
fn staged_tuples(buf: &mut Vec<u8>, chunk: &[Candle]) {
    for c in chunk {
        buf.extend_from_slice(&6i16.to_be_bytes());
        put_i64(buf, c.open_time);
        for value in [c.open, c.high, c.low, c.close, c.volume] {
            put_f64(buf, value);
        }
    }
}

async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    candles: &[Candle],
    mut encode: impl FnMut(&mut Vec<u8>, &[Candle]),
) -> Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = Vec::with_capacity(HEADER.len() + ROWS_PER_SEND * 100);
    buf.extend_from_slice(HEADER);
    for chunk in candles.chunks(ROWS_PER_SEND) {
        encode(&mut buf, chunk);
        copy.send(std::mem::take(&mut buf)).await?;
        buf.reserve(ROWS_PER_SEND * 100);
    }
    buf.extend_from_slice(TRAILER);
    copy.send(buf).await?;
    Ok(copy.finish().await?)
}

/// Writes `rows` in `tx` and returns how many rows were written.
pub(crate) async fn copy_candles(
    tx: &mut Transaction<'static, Postgres>,
    rows: &SeriesRows<'_>,
) -> Result<u64> {
    let (Some(first), Some(last)) = (rows.candles.first(), rows.candles.last()) else {
        return Ok(0);
    };
    let occupied: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM candles
                        WHERE symbol = $1 AND period = $2 AND open_time BETWEEN $3 AND $4)",
    )
    .bind(rows.symbol)
    .bind(rows.interval.as_str())
    .bind(first.open_time)
    .bind(last.open_time)
    .fetch_one(&mut **tx)
    .await?;
    if !occupied {
        sqlx::query("SAVEPOINT bulk_copy")
            .execute(&mut **tx)
            .await?;
        let copied = copy_in(
            tx,
            "COPY candles (symbol, period, open_time, open, high, low, close, volume, source,
                           updated_at) FROM STDIN (FORMAT binary)",
            rows.candles,
            |buf, chunk| full_tuples(buf, rows, chunk),
        )
        .await;
        match copied {
            Ok(written) => {
                sqlx::query("RELEASE SAVEPOINT bulk_copy")
                    .execute(&mut **tx)
                    .await?;
                return Ok(written);
            }
            Err(crate::StoreError::Conflict) => {
                tracing::debug!("a concurrent write took part of the range; upserting instead");
                sqlx::query("ROLLBACK TO SAVEPOINT bulk_copy")
                    .execute(&mut **tx)
                    .await?;
            }
            Err(err) => return Err(err),
        }
    }
    upsert_through_staging(tx, rows).await
}

async fn upsert_through_staging(
    tx: &mut Transaction<'static, Postgres>,
    rows: &SeriesRows<'_>,
) -> Result<u64> {
    sqlx::query(
        "CREATE TEMPORARY TABLE candles_staging (
             open_time BIGINT NOT NULL, open DOUBLE PRECISION NOT NULL,
             high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL,
             close DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL
         ) ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    copy_in(
        tx,
        "COPY candles_staging FROM STDIN (FORMAT binary)",
        rows.candles,
        staged_tuples,
    )
    .await?;
    let written = sqlx::query(
        "INSERT INTO candles
         (symbol, period, open_time, open, high, low, close, volume, source, updated_at)
         SELECT $1, $2, s.open_time, s.open, s.high, s.low, s.close, s.volume, $3, $4
         FROM candles_staging s
         ON CONFLICT (symbol, period, open_time) DO UPDATE SET
             open = excluded.open, high = excluded.high, low = excluded.low,
             close = excluded.close, volume = excluded.volume,
             source = excluded.source, updated_at = excluded.updated_at",
    )
    .bind(rows.symbol)
    .bind(rows.interval.as_str())
    .bind(rows.source)
    .bind(rows.updated_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written)
}

/// [`crate::Store::upsert_candle_batches`] on Postgres: each batch is copied into
/// `candles` as it arrives, so the caller's reading and the server's writing overlap.
/// The rows are also kept, because COPY cannot upsert: when they meet stored rows (or
/// repeat an open time), the copy is rolled back to a savepoint and the kept rows take
/// the upsert path.
pub(crate) async fn stream_candles(
    mut tx: Transaction<'static, Postgres>,
    symbol: &str,
    interval: Interval,
    source: &str,
    mut batches: mpsc::Receiver<CandleBatch>,
) -> Result<u64> {
    let updated_at = crate::now_ms();
    sqlx::query("SAVEPOINT bulk_copy").execute(&mut *tx).await?;
    let mut kept: Vec<Candle> = Vec::new();
    let shared = SeriesRows {
        symbol,
        interval,
        source,
        updated_at,
        candles: &[],
    };
    let mut committed = false;
    let copied: Result<u64> = async {
        let mut copy = tx
            .copy_in_raw(
                "COPY candles (symbol, period, open_time, open, high, low, close, volume,
                               source, updated_at) FROM STDIN (FORMAT binary)",
            )
            .await?;
        let mut buf = HEADER.to_vec();
        loop {
            match batches.recv().await {
                Some(CandleBatch::Rows(rows)) => {
                    // Kept before sending: a failed send still leaves them for the upsert.
                    let from = kept.len();
                    kept.extend(rows);
                    full_tuples(&mut buf, &shared, &kept[from..]);
                    copy.send(std::mem::take(&mut buf)).await?;
                }
                Some(CandleBatch::Commit) => {
                    committed = true;
                    break;
                }
                None => {
                    // The transaction rolls back when dropped; the copy must end first.
                    let _ = copy.abort("the import was abandoned").await;
                    return Err(StoreError::Aborted);
                }
            }
        }
        buf.extend_from_slice(TRAILER);
        copy.send(buf).await?;
        Ok(copy.finish().await?)
    }
    .await;
    if matches!(copied, Err(StoreError::Conflict)) && !committed {
        // The copy failed before every batch came: take the rest.
        loop {
            match batches.recv().await {
                Some(CandleBatch::Rows(rows)) => kept.extend(rows),
                Some(CandleBatch::Commit) => break,
                None => return Err(StoreError::Aborted),
            }
        }
    }
    let candles = crate::dedupe_candles(&kept);
    drop(kept);
    let written = match copied {
        Ok(written) => {
            sqlx::query("RELEASE SAVEPOINT bulk_copy")
                .execute(&mut *tx)
                .await?;
            written
        }
        Err(StoreError::Conflict) => {
            sqlx::query("ROLLBACK TO SAVEPOINT bulk_copy")
                .execute(&mut *tx)
                .await?;
            let rows = SeriesRows {
                candles: &candles,
                ..shared
            };
            upsert_through_staging(&mut tx, &rows).await?
        }
        Err(err) => return Err(err),
    };
    crate::postgres::record_series_write(&mut tx, symbol, interval, &candles).await?;
    tx.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_tuple_is_six_length_prefixed_big_endian_fields() {
        let candle = Candle {
            open_time: 1,
            open: 2.0,
            high: 3.0,
            low: 1.0,
            close: 2.5,
            volume: 0.0,
        };
        let mut buf = Vec::new();
        staged_tuples(&mut buf, &[candle]);
        assert_eq!(buf.len(), 2 + 6 * (4 + 8));
        assert_eq!(&buf[..2], &[0, 6]);
        assert_eq!(&buf[2..6], &[0, 0, 0, 8]);
        assert_eq!(&buf[6..14], &1i64.to_be_bytes());
        assert_eq!(&buf[18..26], &2.0f64.to_bits().to_be_bytes());
    }
}
