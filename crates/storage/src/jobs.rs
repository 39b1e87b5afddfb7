//! Backtest jobs. The request and result are opaque JSON documents to the store; the API
//! owns their shape. A job is claimed by exactly one worker, even across replicas.

use async_trait::async_trait;

use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestJob {
    pub id: String,
    /// The key that submitted it; idempotency keys are scoped to it.
    pub key_id: String,
    pub status: JobStatus,
    pub request: String,
    pub request_hash: String,
    pub idempotency_key: Option<String>,
    pub idempotency_until: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub result: Option<String>,
}

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new queued job. A live idempotency key already used by the same key id is
    /// `StoreError::Conflict`.
    async fn insert_backtest(&self, job: &BacktestJob) -> Result<()>;

    async fn backtest(&self, id: &str) -> Result<Option<BacktestJob>>;

    /// The job an idempotency key named, if it has not expired by `now`; an expired key
    /// is released so it can be used again.
    async fn backtest_by_idempotency_key(
        &self,
        key_id: &str,
        idempotency_key: &str,
        now: i64,
    ) -> Result<Option<BacktestJob>>;

    /// Marks the oldest queued job running and returns it; each job goes to one caller.
    async fn claim_backtest(&self, now: i64) -> Result<Option<BacktestJob>>;

    /// Records the outcome of a running job; false (and nothing changes) when the job is
    /// no longer running, e.g. it was cancelled meanwhile.
    async fn finish_backtest(
        &self,
        id: &str,
        status: JobStatus,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool>;

    /// Cancels a queued or running job; returns the job as it now is.
    async fn cancel_backtest(&self, id: &str, now: i64) -> Result<Option<BacktestJob>>;

    /// After a restart: jobs left running by a dead process go back to the queue (a
    /// backtest is deterministic, so running it again is resuming it).
    async fn requeue_running_backtests(&self) -> Result<u64>;

    /// Queued and running jobs of one key, for its concurrency limit.
    async fn active_backtests(&self, key_id: &str) -> Result<u64>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    key_id: String,
    status: String,
    request: String,
    request_hash: String,
    idempotency_key: Option<String>,
    idempotency_until: Option<i64>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    error: Option<String>,
    result: Option<String>,
}

pub(crate) const JOB_COLUMNS: &str = "id, key_id, status, request, request_hash, \
    idempotency_key, idempotency_until, created_at, started_at, finished_at, error, result";

impl TryFrom<JobRow> for BacktestJob {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self> {
        let status = JobStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("status of backtest {}", row.id)))?;
        Ok(BacktestJob {
            id: row.id,
            key_id: row.key_id,
            status,
            request: row.request,
            request_hash: row.request_hash,
            idempotency_key: row.idempotency_key,
            idempotency_until: row.idempotency_until,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error,
            result: row.result,
        })
    }
}
