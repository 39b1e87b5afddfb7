//! Candle pages read from Postgres's blocks rather than a row per candle.
//!
//! Postgres keeps every candle twice: a row in `candles`, and its packed value (see the
//! `packed_candles` migration) in a block of up to 64 consecutive periods in
//! `candle_blocks`, which triggers keep in step (see the `candle_blocks` migration). A
//! page is read as the blocks overlapping its range, cut to the range and the limit here:
//! about nine rows for 500 candles, where stepping through 500 rows was most of what a
//! page cost Postgres.

use marketd_domain::{Bar, Interval};
use sqlx::postgres::PgConnection;
use sqlx::{Executor as _, Row as _};

use crate::Result;
use crate::packed::{self, PageBounds};
use crate::postgres::MAX_PREALLOCATED_BARS;

/// Blocks of `symbol = $1`, `period = $2` that may hold candles opened in `[$3, $4]`,
/// after block `$5`, ascending: at most `$6`.
const BLOCKS: &str = "SELECT block, packed FROM candle_blocks
     WHERE symbol = $1 AND period = $2
       AND block BETWEEN candle_block($2, $3) AND candle_block($2, $4) AND block > $5
     ORDER BY block LIMIT $6";

/// [`BLOCKS`] with each block's sources.
const BLOCKS_WITH_SOURCES: &str = "SELECT block, packed, sources FROM candle_blocks
     WHERE symbol = $1 AND period = $2
       AND block BETWEEN candle_block($2, $3) AND candle_block($2, $4) AND block > $5
     ORDER BY block LIMIT $6";

/// Candles a block holds at most, as the migration's `candle_block_span` defines it.
const CANDLES_PER_BLOCK: u32 = 64;

/// At most `limit` candles of a series opened in `[start, end)`, ascending, with their
/// sources when `with_source`; `None` when the sources of a block cannot be told apart,
/// so the caller must read them row by row.
pub(crate) async fn read_page(
    conn: &mut PgConnection,
    symbol: &str,
    interval: Interval,
    range: std::ops::Range<i64>,
    limit: u32,
    with_source: bool,
) -> Result<Option<Vec<Bar>>> {
    if range.is_empty() || limit == 0 {
        return Ok(Some(Vec::new()));
    }
    let wanted = limit as usize;
    let mut bars = Vec::with_capacity(limit.min(MAX_PREALLOCATED_BARS) as usize);
    let sql = if with_source {
        BLOCKS_WITH_SOURCES
    } else {
        BLOCKS
    };
    // Enough blocks for the page when the series has no gap; a gappy one asks again.
    let blocks_per_query = limit.div_ceil(CANDLES_PER_BLOCK).saturating_add(1);
    let keep = PageBounds {
        open_times: range.clone(),
        limit: wanted,
    };
    let mut after = i64::MIN;
    loop {
        let rows = conn
            .fetch_all(
                sqlx::query(sql)
                    .bind(symbol)
                    .bind(interval.as_str())
                    .bind(range.start)
                    .bind(range.end - 1)
                    .bind(after)
                    .bind(i64::from(blocks_per_query)),
            )
            .await?;
        for row in &rows {
            let block = row.try_get::<&[u8], _>(1)?;
            let sources = if with_source {
                Some(row.try_get::<&str, _>(2)?)
            } else {
                None
            };
            if !packed::extend_from_block(&mut bars, block, sources, &keep)? {
                return Ok(None);
            }
            after = row.try_get(0)?;
        }
        if bars.len() >= wanted || rows.len() < blocks_per_query as usize {
            return Ok(Some(bars));
        }
    }
}
