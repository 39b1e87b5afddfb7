//! Stored signals on SQLite.

use async_trait::async_trait;
use marketd_domain::Interval;

use crate::signals::{
    PROGRESS_COLUMNS, ProgressRow, SignalProgress, SignalStore, SignalUpdate, StoredSignal,
    progress_from_rows, stored_from_rows,
};
use crate::{Result, SqliteStore};

#[async_trait]
impl SignalStore for SqliteStore {
    async fn signal_progress(&self) -> Result<Vec<SignalProgress>> {
        let rows: Vec<ProgressRow> = sqlx::query_as(&format!(
            "SELECT {PROGRESS_COLUMNS} FROM series ORDER BY symbol, period"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(progress_from_rows(rows))
    }

    async fn signal_progress_of(
        &self,
        symbol: &str,
        interval: Interval,
    ) -> Result<Option<SignalProgress>> {
        let rows: Vec<ProgressRow> = sqlx::query_as(&format!(
            "SELECT {PROGRESS_COLUMNS} FROM series WHERE symbol = ? AND period = ?"
        ))
        .bind(symbol)
        .bind(interval.as_str())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(progress_from_rows(rows).pop())
    }

    async fn save_signals(&self, update: &SignalUpdate) -> Result<()> {
        let period = update.interval.as_str();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM signal_changes WHERE symbol = ? AND period = ? AND open_time >= ?",
        )
        .bind(&update.symbol)
        .bind(period)
        .bind(update.replace_from)
        .execute(&mut *tx)
        .await?;
        for change in &update.changes {
            sqlx::query(
                "INSERT INTO signal_changes (symbol, period, strategy, open_time, body)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (symbol, period, strategy, open_time) DO UPDATE SET
                     body = excluded.body",
            )
            .bind(&update.symbol)
            .bind(period)
            .bind(&change.strategy)
            .bind(change.open_time)
            .bind(&change.body)
            .execute(&mut *tx)
            .await?;
        }
        for latest in &update.latest {
            sqlx::query(
                "INSERT INTO signals (symbol, period, strategy, last_open_time, body)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (symbol, period, strategy) DO UPDATE SET
                     last_open_time = excluded.last_open_time, body = excluded.body",
            )
            .bind(&update.symbol)
            .bind(period)
            .bind(&latest.strategy)
            .bind(latest.open_time)
            .bind(&latest.body)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE series SET signals_through = ?, signals_history_from = ?,
                 signals_dirty_from = CASE WHEN revision = ? THEN NULL
                                           ELSE signals_dirty_from END
             WHERE symbol = ? AND period = ?",
        )
        .bind(update.through)
        .bind(update.history_from)
        .bind(update.revision)
        .bind(&update.symbol)
        .bind(period)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_signals(&self, symbol: &str, interval: Interval) -> Result<Vec<StoredSignal>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT strategy, last_open_time, body FROM signals
             WHERE symbol = ? AND period = ? ORDER BY strategy",
        )
        .bind(symbol)
        .bind(interval.as_str())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(stored_from_rows(rows))
    }

    async fn signal_changes(
        &self,
        symbol: &str,
        interval: Interval,
        strategy: &str,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<StoredSignal>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT strategy, open_time, body FROM signal_changes
             WHERE symbol = ? AND period = ? AND strategy = ? AND open_time >= ? AND open_time < ?
             ORDER BY open_time LIMIT ?",
        )
        .bind(symbol)
        .bind(interval.as_str())
        .bind(strategy)
        .bind(start)
        .bind(end)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(stored_from_rows(rows))
    }
}
