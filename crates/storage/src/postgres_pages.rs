//! Candle pages read from Postgres as one value rather than a row per candle.
//!
//! Postgres keeps each candle's open time and values packed in the `packed` column (see
//! the `packed_candles` migration); a page is those values joined in index order, and
//! the page's sources joined with a separator. Encoding six values of every row was most
//! of what a page cost Postgres, and decoding them most of what it cost here.

use marketd_domain::Bar;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::Result;
use crate::packed;

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
    let sources = if with_source {
        Some(row.try_get::<Option<&str>, _>(1)?.unwrap_or_default())
    } else {
        None
    };
    packed::bars_from_parts(packed, sources)
}
