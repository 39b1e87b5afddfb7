//! Backtest jobs on SQLite.

use async_trait::async_trait;

use crate::jobs::{BacktestJob, JOB_COLUMNS, JobRow, JobStatus, JobStore};
use crate::{Result, SqliteStore};

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_backtest(&self, job: &BacktestJob) -> Result<()> {
        sqlx::query(
            "INSERT INTO backtests (id, key_id, status, request, request_hash, idempotency_key,
                 idempotency_until, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.id)
        .bind(&job.key_id)
        .bind(job.status.as_str())
        .bind(&job.request)
        .bind(&job.request_hash)
        .bind(job.idempotency_key.as_deref())
        .bind(job.idempotency_until)
        .bind(job.created_at)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn backtest(&self, id: &str) -> Result<Option<BacktestJob>> {
        let row: Option<JobRow> =
            sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM backtests WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.map(BacktestJob::try_from).transpose()
    }

    async fn backtest_by_idempotency_key(
        &self,
        key_id: &str,
        idempotency_key: &str,
        now: i64,
    ) -> Result<Option<BacktestJob>> {
        sqlx::query(
            "UPDATE backtests SET idempotency_key = NULL
             WHERE key_id = ? AND idempotency_key = ? AND idempotency_until <= ?",
        )
        .bind(key_id)
        .bind(idempotency_key)
        .bind(now)
        .execute(&mut *self.conn().await?)
        .await?;
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM backtests WHERE key_id = ? AND idempotency_key = ?"
        ))
        .bind(key_id)
        .bind(idempotency_key)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.map(BacktestJob::try_from).transpose()
    }

    async fn claim_backtest(&self, now: i64) -> Result<Option<BacktestJob>> {
        // One statement under SQLite's single writer: two claimers never get one job.
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "UPDATE backtests SET status = 'running', started_at = ?
             WHERE id = (SELECT id FROM backtests WHERE status = 'queued'
                         ORDER BY created_at, id LIMIT 1)
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.map(BacktestJob::try_from).transpose()
    }

    async fn finish_backtest(
        &self,
        id: &str,
        status: JobStatus,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE backtests SET status = ?, result = ?, error = ?, finished_at = ?
             WHERE id = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn cancel_backtest(&self, id: &str, now: i64) -> Result<Option<BacktestJob>> {
        sqlx::query(
            "UPDATE backtests SET status = 'cancelled', finished_at = ?
             WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?;
        self.backtest(id).await
    }

    async fn requeue_running_backtests(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE backtests SET status = 'queued', started_at = NULL WHERE status = 'running'",
        )
        .execute(&mut *self.conn().await?)
        .await?
        .rows_affected())
    }

    async fn active_backtests(&self, key_id: &str) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM backtests WHERE key_id = ? AND status IN ('queued', 'running')",
        )
        .bind(key_id)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
