//! Known gaps on SQLite.

use async_trait::async_trait;
use marketd_domain::{Candle, Interval};
use sqlx::SqliteConnection;

use crate::gaps::{
    GAP_COLUMNS, GapRow, GapStore, KnownGap, gaps_from_rows, plan_record, sources_column, split,
};
use crate::{Result, SqliteStore};

#[async_trait]
impl GapStore for SqliteStore {
    async fn record_gap(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        sources: &[String],
        at: i64,
    ) -> Result<()> {
        if end <= start {
            return Ok(());
        }
        let new = KnownGap {
            symbol: symbol.to_owned(),
            interval,
            start,
            end,
            sources: sources.to_vec(),
            attempts: 1,
            detected_at: at,
            checked_at: at,
        };
        let mut tx = self.begin_write().await?;
        // `<=` and `>=`: a gap that only touches the range merges with it too.
        let touching = select(&mut tx, symbol, interval, start, end, true).await?;
        let from = touching.iter().map(|g| g.start).fold(start, i64::min);
        let to = touching.iter().map(|g| g.end).fold(end, i64::max);
        let filled: Vec<i64> = sqlx::query_scalar(
            "SELECT open_time FROM candles
             WHERE symbol = ? AND period = ? AND open_time >= ? AND open_time < ?
             ORDER BY open_time",
        )
        .bind(symbol)
        .bind(interval.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        replace(&mut tx, &touching, &plan_record(&new, &touching, &filled)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gaps(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<Vec<KnownGap>> {
        let mut conn = self.conn().await?;
        select(&mut conn, symbol, interval, start, end, false).await
    }
}

/// Gaps of the series overlapping `[start, end)`, or also touching it when `touching`.
async fn select(
    conn: &mut SqliteConnection,
    symbol: &str,
    interval: Interval,
    start: i64,
    end: i64,
    touching: bool,
) -> Result<Vec<KnownGap>> {
    let condition = if touching {
        "start_time <= ? AND end_time >= ?"
    } else {
        "start_time < ? AND end_time > ?"
    };
    let rows: Vec<GapRow> = sqlx::query_as(&format!(
        "SELECT {GAP_COLUMNS} FROM gaps WHERE symbol = ? AND period = ? AND {condition}
         ORDER BY start_time"
    ))
    .bind(symbol)
    .bind(interval.as_str())
    .bind(end)
    .bind(start)
    .fetch_all(&mut *conn)
    .await?;
    Ok(gaps_from_rows(rows))
}

async fn replace(conn: &mut SqliteConnection, old: &[KnownGap], new: &[KnownGap]) -> Result<()> {
    for gap in old {
        sqlx::query("DELETE FROM gaps WHERE symbol = ? AND period = ? AND start_time = ?")
            .bind(&gap.symbol)
            .bind(gap.interval.as_str())
            .bind(gap.start)
            .execute(&mut *conn)
            .await?;
    }
    for gap in new {
        sqlx::query(&format!(
            "INSERT INTO gaps ({GAP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&gap.symbol)
        .bind(gap.interval.as_str())
        .bind(gap.start)
        .bind(gap.end)
        .bind(sources_column(gap))
        .bind(gap.attempts)
        .bind(gap.detected_at)
        .bind(gap.checked_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Takes the buckets of `candles` (ascending, deduplicated) out of the gaps they land in,
/// inside the transaction that writes them.
pub(crate) async fn shrink_gaps(
    conn: &mut SqliteConnection,
    symbol: &str,
    interval: Interval,
    candles: &[Candle],
) -> Result<()> {
    let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
        return Ok(());
    };
    let hit = select(
        conn,
        symbol,
        interval,
        first.open_time,
        last.open_time + 1,
        false,
    )
    .await?;
    if hit.is_empty() {
        return Ok(());
    }
    let filled: Vec<i64> = candles.iter().map(|c| c.open_time).collect();
    let left: Vec<KnownGap> = hit.iter().flat_map(|g| split(g, &filled)).collect();
    replace(conn, &hit, &left).await
}
