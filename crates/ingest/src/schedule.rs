//! Continuous ingest: each configured series is backfilled once, then polled for as long
//! as the process runs, and each source's latest prices are polled beside it.
//!
//! Every poll starts at the last stored candle rather than after it: that candle may have
//! been stored while its bucket was open, and the upsert replaces it with the newer value
//! until the bucket closes. A failed poll is logged and the next one starts from wherever
//! the store got to, so an outage costs nothing but the wait.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use marketd_domain::Interval;
use marketd_storage::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backfill::backfill;
use crate::source::{Source, SourceError, now_ms};

/// One series to keep up to date.
#[derive(Clone)]
pub struct IngestJob {
    pub source: Arc<dyn Source>,
    pub symbol: String,
    pub interval: Interval,
    /// How much history the first run fetches, in ms; later runs resume from the store.
    pub depth_ms: i64,
    pub poll_every: Duration,
}

impl std::fmt::Debug for IngestJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestJob")
            .field("source", &self.source.name())
            .field("symbol", &self.symbol)
            .field("interval", &self.interval)
            .field("depth_ms", &self.depth_ms)
            .field("poll_every", &self.poll_every)
            .finish()
    }
}

/// Starts one task per job and one latest-price task per source, all running until
/// `shutdown` is cancelled. A job that fails only logs and waits for its next poll, so one
/// unreachable exchange never holds up the others.
pub fn spawn(
    store: Arc<dyn Store>,
    jobs: Vec<IngestJob>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut handles: Vec<JoinHandle<()>> = by_source(&jobs)
        .into_iter()
        .map(|group| tokio::spawn(poll_prices(Arc::clone(&store), group, shutdown.clone())))
        .collect();
    handles.extend(
        jobs.into_iter()
            .map(move |job| tokio::spawn(poll_candles(Arc::clone(&store), job, shutdown.clone()))),
    );
    handles
}

/// The symbols asked of one source instance, and how often to ask.
struct PriceGroup {
    source: Arc<dyn Source>,
    symbols: Vec<String>,
    poll_every: Duration,
}

/// Groups jobs by source instance, not by name: two instances may point at different
/// base URLs, and each has its own rate limit.
fn by_source(jobs: &[IngestJob]) -> Vec<PriceGroup> {
    let mut groups: Vec<(PriceGroup, BTreeSet<String>)> = Vec::new();
    for job in jobs {
        let found = groups
            .iter_mut()
            .find(|(g, _)| Arc::ptr_eq(&g.source, &job.source));
        match found {
            Some((group, symbols)) => {
                symbols.insert(job.symbol.clone());
                group.poll_every = group.poll_every.min(job.poll_every);
            }
            None => groups.push((
                PriceGroup {
                    source: Arc::clone(&job.source),
                    symbols: Vec::new(),
                    poll_every: job.poll_every,
                },
                BTreeSet::from([job.symbol.clone()]),
            )),
        }
    }
    groups
        .into_iter()
        .map(|(mut group, symbols)| {
            group.symbols = symbols.into_iter().collect();
            group
        })
        .collect()
}

/// Waits `every`, or returns `false` when shutdown came first.
async fn wait(every: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(every) => true,
    }
}

async fn poll_candles(store: Arc<dyn Store>, job: IngestJob, shutdown: CancellationToken) {
    let source = job.source.name();
    let symbol = job.symbol.as_str();
    let interval = job.interval.as_str();
    let mut failing = false;
    loop {
        // A poll in flight is dropped at shutdown: each page is stored in one transaction,
        // so the worst case is a page the next start fetches again.
        let polled = tokio::select! {
            () = shutdown.cancelled() => return,
            polled = poll_once(store.as_ref(), &job) => polled,
        };
        match polled {
            Ok(written) => {
                if failing {
                    tracing::info!(source, symbol, interval, "ingest recovered");
                }
                failing = false;
                tracing::debug!(source, symbol, interval, written, "ingest poll done");
            }
            Err(err) => {
                failing = true;
                tracing::warn!(source, symbol, interval, error = %err, "ingest poll failed; retrying at the next poll");
            }
        }
        if !wait(job.poll_every, &shutdown).await {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backfill(#[from] crate::backfill::BackfillError),
}

/// Fetches from the last stored candle, or from `depth` ago on the first run, to now, and
/// returns how many candles were written.
async fn poll_once(store: &dyn Store, job: &IngestJob) -> Result<u64, PollError> {
    let last = store
        .series(Some(&job.symbol))
        .await?
        .into_iter()
        .find(|s| s.interval == job.interval)
        .map(|s| s.last_open_time);
    // Starting at the last stored candle even when it is older than `depth`: a process
    // that was down for a while fills the hole rather than leaving one.
    let since = last.unwrap_or_else(|| now_ms().saturating_sub(job.depth_ms));
    let report = backfill(
        store,
        job.source.as_ref(),
        &job.symbol,
        job.interval,
        since,
        i64::MAX,
        |_| {},
    )
    .await?;
    Ok(report.written)
}

async fn poll_prices(store: Arc<dyn Store>, group: PriceGroup, shutdown: CancellationToken) {
    let source = group.source.name();
    loop {
        let fetched = tokio::select! {
            () = shutdown.cancelled() => return,
            fetched = group.source.latest_prices(&group.symbols) => fetched,
        };
        match fetched {
            // Candles are the point; a source without a ticker simply has no price task.
            Err(SourceError::Unsupported) => return,
            Err(err) => tracing::warn!(source, error = %err, "latest prices poll failed"),
            Ok(prices) => {
                for price in prices {
                    if let Err(err) = store.upsert_latest_price(&price).await {
                        tracing::warn!(source, symbol = price.symbol, error = %err, "storing a latest price failed");
                    }
                }
            }
        }
        if !wait(group.poll_every, &shutdown).await {
            return;
        }
    }
}
