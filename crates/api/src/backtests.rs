//! The backtest worker pool: a bounded number of workers claim queued jobs from the
//! store, run them off the async threads and record the outcome. Jobs live in the
//! database, so they survive restarts: `start` puts jobs a dead process left running back
//! in the queue (a backtest is deterministic, so re-running it is resuming it).

use std::sync::Arc;
use std::time::Duration;

use marketd_domain::Interval;
use marketd_domain::strategy::{
    BacktestConfig, BacktestResult, Strategy, StrategyKind, backtest_from,
};
use marketd_storage::{BacktestJob, JobStatus, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::routes::history::{closed_candles, periods_per_year};
use crate::state::Clock;

/// How often an idle worker looks for work another replica queued.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// A validated backtest request, as stored with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestSpec {
    pub symbol: String,
    pub interval: String,
    pub strategy: String,
    pub params: Vec<(String, f64)>,
    pub start: i64,
    pub end: i64,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub initial_cash: f64,
}

/// Wakes idle workers when a job is queued here.
#[derive(Debug, Default)]
pub struct JobQueue {
    pub(crate) queued: Notify,
}

impl JobQueue {
    pub fn wake(&self) {
        self.queued.notify_one();
    }
}

/// Requeues jobs a previous process left running, then starts `workers` workers.
pub async fn start(
    store: Arc<dyn Store>,
    queue: Arc<JobQueue>,
    workers: usize,
    clock: Clock,
    shutdown: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    match store.requeue_running_backtests().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "requeued backtests interrupted by a restart"),
        Err(err) => tracing::warn!(error = %err, "could not requeue interrupted backtests"),
    }
    (0..workers.max(1))
        .map(|_| {
            let (store, queue, shutdown) =
                (Arc::clone(&store), Arc::clone(&queue), shutdown.clone());
            tokio::spawn(async move { work(store, queue, clock, shutdown).await })
        })
        .collect()
}

async fn work(
    store: Arc<dyn Store>,
    queue: Arc<JobQueue>,
    clock: Clock,
    shutdown: CancellationToken,
) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match store.claim_backtest(clock()).await {
            Ok(Some(job)) => {
                run(store.as_ref(), &job, clock).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not claim a backtest"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = queue.queued.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

async fn run(store: &dyn Store, job: &BacktestJob, clock: Clock) {
    let outcome = execute(store, job, clock).await;
    let (status, result, error) = match outcome {
        Ok(result) => (JobStatus::Succeeded, Some(result), None),
        Err(reason) => (JobStatus::Failed, None, Some(reason)),
    };
    match store
        .finish_backtest(
            &job.id,
            status,
            result.as_deref(),
            error.as_deref(),
            clock(),
        )
        .await
    {
        Ok(true) => tracing::info!(job = %job.id, status = status.as_str(), "backtest finished"),
        Ok(false) => tracing::info!(job = %job.id, "backtest was cancelled while running"),
        Err(err) => {
            tracing::warn!(job = %job.id, error = %err, "could not record a backtest result")
        }
    }
}

/// Runs one job; the error is the reason recorded with a failed job.
async fn execute(store: &dyn Store, job: &BacktestJob, clock: Clock) -> Result<String, String> {
    let spec: BacktestSpec =
        serde_json::from_str(&job.request).map_err(|e| format!("unreadable request: {e}"))?;
    let interval: Interval = spec
        .interval
        .parse()
        .map_err(|_| format!("unknown interval {}", spec.interval))?;
    let kind = StrategyKind::from_name(&spec.strategy)
        .ok_or_else(|| format!("unknown strategy {}", spec.strategy))?;
    let strategy = Strategy::new(kind, &spec.params).map_err(|e| e.to_string())?;
    let warm = strategy.warm_up() as i64 * interval.millis();
    let until = spec.end.min(clock());
    let (candles, _) = closed_candles(store, &spec.symbol, interval, spec.start - warm, until)
        .await
        .map_err(|e| format!("loading candles: {e}"))?;
    let first_in_range = candles.partition_point(|c| c.open_time < spec.start);
    if candles.len() - first_in_range < 2 {
        return Err(format!(
            "fewer than 2 closed {} candles of {} between start and end",
            spec.interval, spec.symbol
        ));
    }
    let config = BacktestConfig {
        fee_bps: spec.fee_bps,
        slippage_bps: spec.slippage_bps,
        initial_cash: spec.initial_cash,
        periods_per_year: periods_per_year(interval),
    };
    // Signals use the warm-up; trading starts at `start`.
    let from = spec.start;
    let result =
        tokio::task::spawn_blocking(move || backtest_from(&strategy, &candles, &config, from))
            .await
            .map_err(|e| format!("the backtest stopped: {e}"))?
            .map_err(|e| e.to_string())?;
    serde_json::to_string(&StoredResult::from(result)).map_err(|e| e.to_string())
}

/// What is stored for a finished job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResult {
    pub total_return: f64,
    pub cagr: f64,
    pub max_drawdown: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub trade_count: usize,
    pub win_rate: f64,
    pub exposure: f64,
    pub fees_paid: f64,
    pub final_equity: f64,
    pub equity_curve: Vec<(i64, f64)>,
    pub trades: Vec<StoredTrade>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTrade {
    pub entry_time: i64,
    pub entry_price: f64,
    pub exit_time: Option<i64>,
    pub exit_price: Option<f64>,
    pub quantity: f64,
    pub pnl: f64,
    pub return_pct: f64,
    pub fees: f64,
}

impl From<BacktestResult> for StoredResult {
    fn from(r: BacktestResult) -> Self {
        Self {
            total_return: r.total_return,
            cagr: r.cagr,
            max_drawdown: r.max_drawdown,
            sharpe: r.sharpe,
            sortino: r.sortino,
            trade_count: r.trade_count,
            win_rate: r.win_rate,
            exposure: r.exposure,
            fees_paid: r.fees_paid,
            final_equity: r.final_equity,
            equity_curve: r.equity_curve,
            trades: r
                .trades
                .into_iter()
                .map(|t| StoredTrade {
                    entry_time: t.entry_time,
                    entry_price: t.entry_price,
                    exit_time: t.exit_time,
                    exit_price: t.exit_price,
                    quantity: t.quantity,
                    pnl: t.pnl,
                    return_pct: t.return_pct,
                    fees: t.fees,
                })
                .collect(),
        }
    }
}
