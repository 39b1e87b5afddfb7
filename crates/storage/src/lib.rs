//! The Store: one API over Postgres (production) and SQLite (the embedded default).
//!
//! Each backend has its own SQL and migrations; both must pass the same conformance
//! suite (`tests/conformance.rs`), which is what keeps them interchangeable.

mod asset_cache;
mod changes;
mod error;
mod gaps;
mod jobs;
mod keys;
mod leader;
mod model;
mod packed;
mod pool_waits;
mod postgres;
mod postgres_copy;
mod postgres_gaps;
mod postgres_jobs;
mod postgres_keys;
mod postgres_pages;
mod postgres_signals;
mod read;
mod signals;
mod sqlite;
mod sqlite_gaps;
mod sqlite_jobs;
mod sqlite_keys;
mod sqlite_pages;
mod sqlite_signals;

pub use changes::{CHANNEL as CHANGES_CHANNEL, Change, Changes};
pub use error::StoreError;
pub use gaps::{GapStore, KnownGap};
pub use jobs::{BacktestJob, JobStatus, JobStore};
pub use keys::KeyStore;
pub use leader::{Lease, lock_key};
pub use model::{Asset, SeriesInfo};
pub use pool_waits::{POOL_WAIT_BUCKETS, PoolWaitStats};
pub use postgres::PgStore;
pub use read::{BarPage, CandleRange, SourceChoice, read_bar_values, read_bars, stream_bars};
pub use signals::{SignalProgress, SignalStore, SignalUpdate, StoredSignal};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use marketd_domain::{Bar, Candle, Interval, LatestPrice};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A snapshot of a store's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections, busy or idle.
    pub size: u32,
    pub idle: u32,
    /// The most the pool may open.
    pub max: u32,
    /// How long database work has waited for a connection.
    pub waits: PoolWaitStats,
}

/// Which database a Store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything marketd persists. Implementations must behave identically; the
/// conformance suite is the specification.
#[async_trait]
pub trait Store: KeyStore + JobStore + SignalStore + GapStore {
    fn backend(&self) -> Backend;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    async fn upsert_asset(&self, asset: &Asset) -> Result<()>;
    async fn assets(&self) -> Result<Vec<Asset>>;
    async fn asset(&self, symbol: &str) -> Result<Option<Asset>>;

    /// The stored (symbol, interval) series, optionally for one symbol only.
    async fn series(&self, symbol: Option<&str>) -> Result<Vec<SeriesInfo>>;

    /// One asset and its stored series, in one round trip: every candle read needs both.
    /// `None` when no asset has the symbol.
    async fn asset_with_series(&self, symbol: &str) -> Result<Option<(Asset, Vec<SeriesInfo>)>>;

    /// Inserts or replaces candles keyed by (symbol, interval, open_time), all in one
    /// transaction: a retried write neither duplicates nor loses a row, and a failed one
    /// leaves nothing behind. Known gaps the candles land in shrink in the same
    /// transaction. Candles must already be validated and aligned. Returns the number of
    /// rows written.
    async fn upsert_candles(
        &self,
        symbol: &str,
        interval: Interval,
        source: &str,
        candles: &[Candle],
    ) -> Result<u64>;

    /// The same write as [`Store::upsert_candles`] of everything `batches` brings, made once
    /// [`CandleBatch::Commit`] arrives; if the sender goes away first, nothing is written
    /// and the answer is [`StoreError::Aborted`]. Lets a caller write while it is still
    /// reading its input: Postgres streams the rows into the table as they come.
    async fn upsert_candle_batches(
        &self,
        symbol: &str,
        interval: Interval,
        source: &str,
        mut batches: tokio::sync::mpsc::Receiver<CandleBatch>,
    ) -> Result<u64> {
        let mut all = Vec::new();
        loop {
            match batches.recv().await {
                Some(CandleBatch::Rows(rows)) => all.extend(rows),
                Some(CandleBatch::Commit) => break,
                None => return Err(StoreError::Aborted),
            }
        }
        self.upsert_candles(symbol, interval, source, &all).await
    }

    /// Natively stored candles with `start <= open_time < end`, ascending, at most
    /// `limit`. Without `with_source`, each bar's `source` may be left empty.
    async fn read_candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
        with_source: bool,
    ) -> Result<Vec<Bar>>;

    /// [`Self::read_candles`] with every bar's source.
    async fn candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<Bar>> {
        self.read_candles(symbol, interval, start, end, limit, true)
            .await
    }

    /// [`Self::candles`] for callers that compute on the values alone: each bar's
    /// `source` may be left empty, which spares a backend reading and allocating it for
    /// every row.
    async fn candle_values(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<Bar>> {
        self.read_candles(symbol, interval, start, end, limit, false)
            .await
    }

    /// Stores a price unless a newer one is already stored.
    async fn upsert_latest_price(&self, price: &LatestPrice) -> Result<()>;

    /// Latest prices of the given symbols; symbols without one are simply absent.
    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>>;

    /// Connections of the pool now, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// Announcements of written candles and prices; see [`Changes`]. On Postgres they
    /// cover every process sharing the database, on SQLite this process's writes only.
    fn changes(&self) -> Changes;

    /// Takes leadership of `job` among the processes sharing this database, if no other
    /// holds it; see [`Lease`].
    async fn try_lead(&self, job: &str) -> Result<Option<Box<dyn Lease>>>;

    /// Closes the pool, waiting for checked-out connections to return.
    async fn close(&self);
}

/// One message of a streamed candle write; see [`Store::upsert_candle_batches`].
#[derive(Debug)]
pub enum CandleBatch {
    /// Validated, aligned candles, in any order; a later duplicate wins, as in one
    /// `upsert_candles`.
    Rows(Vec<Candle>),
    /// Everything was sent: write it.
    Commit,
}

/// Opens the store a URL names: `sqlite://path` (created when missing) or `postgres://…`.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// Pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// Keeps the last of each open_time, in ascending order: one statement may not touch a
/// row twice on Postgres, and "last write wins" is what a retried batch means.
pub(crate) fn dedupe_candles(candles: &[Candle]) -> Vec<Candle> {
    let mut sorted: Vec<Candle> = candles.to_vec();
    // A stable sort keeps equal open_times in arrival order, so the later duplicate wins.
    sorted.sort_by_key(|c| c.open_time);
    let mut out: Vec<Candle> = Vec::with_capacity(sorted.len());
    for candle in sorted {
        match out.last_mut() {
            Some(last) if last.open_time == candle.open_time => *last = candle,
            _ => out.push(candle),
        }
    }
    out
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
