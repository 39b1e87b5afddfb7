//! Continuous ingest: each configured series is backfilled once, then polled for as long
//! as the process runs, and each source's latest prices are polled beside it.
//!
//! A series may name several sources in priority order: a poll the first cannot serve
//! (an error, an open circuit) is served by the next, for the same buckets, and each
//! stored candle records the source it came from. Latest prices of every source go to one
//! [`PriceBoard`], which stores the price reconciled across the fresh ones.
//!
//! Closed buckets a poll finds missing are asked for once more from the source that
//! served the poll, then from the sources after it in priority order; what none of them
//! has is recorded as a known gap (see [`crate::repair`]).
//!
//! Every poll starts at the last stored candle rather than after it: that candle may have
//! been stored while its bucket was open, and the upsert replaces it with the newer value
//! until the bucket closes. A failed poll is logged and the next one starts from wherever
//! the store got to, so an outage costs nothing but the wait.
//!
//! Each poll runs in a DEBUG span (`ingest candles`, `ingest prices`), so that an exported
//! trace shows a poll with its upstream calls beneath it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use marketd_domain::Interval;
use marketd_storage::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::backfill::{BackfillCause, backfill};
use crate::reconcile::{PriceBoard, Quote, ReconcileConfig};
use crate::repair::repair_gaps;
use crate::source::{Source, SourceError, now_ms};

pub(crate) const SPAN_TARGET: &str = module_path!();

/// One series to keep up to date.
#[derive(Clone)]
pub struct IngestJob {
    /// In priority order: the first that answers supplies the poll.
    pub sources: Vec<Arc<dyn Source>>,
    pub symbol: String,
    pub interval: Interval,
    /// How much history the first run fetches, in ms; later runs resume from the store.
    pub depth_ms: i64,
    pub poll_every: Duration,
}

impl std::fmt::Debug for IngestJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<&str> = self.sources.iter().map(|s| s.name()).collect();
        f.debug_struct("IngestJob")
            .field("sources", &sources)
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
    prices: ReconcileConfig,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let board = Arc::new(PriceBoard::new(prices));
    let mut handles: Vec<JoinHandle<()>> = by_source(&jobs)
        .into_iter()
        .enumerate()
        .map(|(priority, group)| {
            let (store, board) = (Arc::clone(&store), Arc::clone(&board));
            tokio::spawn(poll_prices(store, board, priority, group, shutdown.clone()))
        })
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
/// base URLs, and each has its own rate limit. Groups come in the order their sources are
/// first named, which is the priority their prices get.
fn by_source(jobs: &[IngestJob]) -> Vec<PriceGroup> {
    let mut groups: Vec<(PriceGroup, BTreeSet<String>)> = Vec::new();
    let mut by_rank: Vec<(usize, &IngestJob, &Arc<dyn Source>)> = jobs
        .iter()
        .flat_map(|job| {
            job.sources
                .iter()
                .enumerate()
                .map(move |(rank, s)| (rank, job, s))
        })
        .collect();
    // Stable: primaries in job order, then first fallbacks, and so on.
    by_rank.sort_by_key(|(rank, _, _)| *rank);
    for (_, job, source) in by_rank {
        let found = groups
            .iter_mut()
            .find(|(g, _)| Arc::ptr_eq(&g.source, source));
        match found {
            Some((group, symbols)) => {
                symbols.insert(job.symbol.clone());
                group.poll_every = group.poll_every.min(job.poll_every);
            }
            None => groups.push((
                PriceGroup {
                    source: Arc::clone(source),
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
    let symbol = job.symbol.as_str();
    let interval = job.interval.as_str();
    let mut failing = false;
    loop {
        // A poll in flight is dropped at shutdown: each page is stored in one transaction,
        // so the worst case is a page the next start fetches again.
        let span = tracing::debug_span!(
            "ingest_poll",
            otel.name = "ingest candles",
            symbol,
            interval
        );
        let polled = tokio::select! {
            () = shutdown.cancelled() => return,
            polled = poll_once(store.as_ref(), &job).instrument(span) => polled,
        };
        match polled {
            Ok((source, written)) => {
                if failing {
                    tracing::info!(source, symbol, interval, "ingest recovered");
                }
                failing = false;
                tracing::debug!(source, symbol, interval, written, "ingest poll done");
            }
            Err(err) => {
                failing = true;
                tracing::warn!(symbol, interval, error = %err, "ingest poll failed on every source; retrying at the next poll");
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

/// Fetches from the last stored candle, or from `depth` ago on the first run, to now,
/// from the first source that can, and returns its name and how many candles it wrote.
async fn poll_once(store: &dyn Store, job: &IngestJob) -> Result<(&'static str, u64), PollError> {
    let mut failure = None;
    for (rank, source) in job.sources.iter().enumerate() {
        // Asked again for each source: a failing one may have stored some pages first,
        // and the next continues after them rather than fetching them twice.
        let since = resume_point(store, job).await?;
        match backfill(
            store,
            source.as_ref(),
            &job.symbol,
            job.interval,
            since,
            i64::MAX,
            |_| {},
        )
        .await
        {
            Ok(report) => {
                let mut written = report.written;
                if report.gap_buckets > 0 {
                    // The sources before this one just failed; asking them again now
                    // would only fail again.
                    let asked: Vec<&dyn Source> =
                        job.sources[rank..].iter().map(AsRef::as_ref).collect();
                    let repaired = repair_gaps(
                        store,
                        &asked,
                        &job.symbol,
                        job.interval,
                        report.start,
                        report.end,
                    )
                    .await?;
                    written += repaired.filled.iter().map(|(_, n)| n).sum::<u64>();
                }
                return Ok((source.name(), written));
            }
            Err(err) if matches!(err.cause, BackfillCause::Store(_)) => return Err(err.into()),
            // A prices-only source (CoinGecko) listed for a series: not a failure.
            Err(err) if matches!(err.cause, BackfillCause::Source(SourceError::Unsupported)) => {}
            Err(err) => {
                if job.sources.len() > 1 {
                    tracing::warn!(
                        source = source.name(),
                        symbol = job.symbol,
                        interval = job.interval.as_str(),
                        error = %err,
                        "source failed; trying the next"
                    );
                }
                failure = Some(err);
            }
        }
    }
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(("none", 0)),
    }
}

/// The last stored candle, or `depth` ago on the first run. Starting at the last stored
/// candle even when it is older than `depth`: a process that was down for a while fills
/// the hole rather than leaving one.
async fn resume_point(store: &dyn Store, job: &IngestJob) -> Result<i64, StoreError> {
    let last = store
        .series(Some(&job.symbol))
        .await?
        .into_iter()
        .find(|s| s.interval == job.interval)
        .map(|s| s.last_open_time);
    Ok(last.unwrap_or_else(|| now_ms().saturating_sub(job.depth_ms)))
}

async fn poll_prices(
    store: Arc<dyn Store>,
    board: Arc<PriceBoard>,
    priority: usize,
    group: PriceGroup,
    shutdown: CancellationToken,
) {
    let source = group.source.name();
    loop {
        let span = tracing::debug_span!("ingest_prices", otel.name = "ingest prices", source);
        let fetched = tokio::select! {
            () = shutdown.cancelled() => return,
            fetched = group.source.latest_prices(&group.symbols).instrument(span) => fetched,
        };
        match fetched {
            // Candles are the point; a source without a ticker simply has no price task.
            Err(SourceError::Unsupported) => return,
            Err(err) => tracing::warn!(source, error = %err, "latest prices poll failed"),
            Ok(prices) => {
                for price in prices {
                    let quote = Quote {
                        priority,
                        price,
                        received_at: now_ms(),
                    };
                    let Some(reconciled) = board.offer(quote, now_ms()) else {
                        continue;
                    };
                    for outlier in &reconciled.outliers {
                        tracing::warn!(
                            source = outlier.source,
                            symbol = reconciled.price.symbol,
                            price = outlier.price,
                            divergence_pct = outlier.divergence * 100.0,
                            "a source's price diverges from the others; left out"
                        );
                    }
                    if let Err(err) = store.upsert_latest_price(&reconciled.price).await {
                        tracing::warn!(source, symbol = reconciled.price.symbol, error = %err, "storing a latest price failed");
                    }
                }
            }
        }
        if !wait(group.poll_every, &shutdown).await {
            return;
        }
    }
}
