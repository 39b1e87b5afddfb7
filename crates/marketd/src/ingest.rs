//! The `[[ingest]]` tables turned into running jobs, beside the API in `marketd serve` or
//! on their own in `marketd ingest`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketd_api::state::IngestView;
use marketd_ingest::exchange::SymbolTable;
use marketd_ingest::reconcile::ReconcileConfig;
use marketd_ingest::schedule::{self, IngestJob};
use marketd_ingest::source::Source;
use marketd_storage::{Lease, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backfill::{SourceName, open_source};
use crate::config::{Config, IngestConfig};

/// An exchange and the base URL it is reached at.
type SourceKey<'a> = (SourceName, Option<&'a str>);

/// One job per symbol and interval. Tables naming the same exchange and base URL share one
/// source, so they share its rate limit and circuit breaker as the exchange sees them as
/// one client. When several tables list the same symbol and interval, the first is its
/// primary source and the later ones its fallbacks, in order; the primary's table sets
/// the depth and poll period.
pub fn jobs(tables: &[IngestConfig], symbols: &SymbolTable) -> anyhow::Result<Vec<IngestJob>> {
    let mut sources: Vec<(SourceKey<'_>, Arc<dyn Source>)> = Vec::new();
    let mut jobs = Vec::new();
    for table in tables {
        let key = (table.source, table.base_url.as_deref());
        let source = match sources.iter().find(|(k, _)| *k == key) {
            Some((_, source)) => Arc::clone(source),
            None => {
                let source: Arc<dyn Source> = Arc::from(open_source(
                    table.source,
                    table.base_url.as_deref(),
                    symbols,
                )?);
                sources.push((key, Arc::clone(&source)));
                source
            }
        };
        let depth_ms = i64::try_from(table.depth.as_millis()).unwrap_or(i64::MAX);
        for symbol in &table.symbols {
            for &interval in &table.intervals {
                let symbol = symbol.to_string();
                let listed = jobs
                    .iter_mut()
                    .find(|j: &&mut IngestJob| j.symbol == symbol && j.interval == interval);
                match listed {
                    Some(job) => {
                        if !job.sources.iter().any(|s| Arc::ptr_eq(s, &source)) {
                            job.sources.push(Arc::clone(&source));
                        }
                    }
                    None => jobs.push(IngestJob {
                        sources: vec![Arc::clone(&source)],
                        symbol,
                        interval,
                        depth_ms,
                        poll_every: table.poll_every,
                    }),
                }
            }
        }
    }
    Ok(jobs)
}

/// The sources (each instance once) and series of `jobs`, for metrics and readiness.
pub fn view(jobs: &[IngestJob]) -> IngestView {
    let mut view = IngestView::default();
    for job in jobs {
        for source in &job.sources {
            if !view.sources.iter().any(|s| Arc::ptr_eq(s, source)) {
                view.sources.push(Arc::clone(source));
            }
        }
        view.series.push((job.symbol.clone(), job.interval));
    }
    view
}

/// How often a replica that does not lead ingest tries to, and how often the leader
/// checks that it still does. A leader that exits or dies frees its lock as its
/// connection closes, so another replica takes over within about this long.
pub const LEADERSHIP_CHECK: Duration = Duration::from_secs(1);

/// The name every replica's leadership lock is taken under.
const INGEST_LEADERSHIP: &str = "marketd ingest";

/// Starts `jobs` under leadership: of all processes sharing the database, only the one
/// holding the ingest lock polls the exchanges; the others stand by to take over.
pub fn spawn(
    store: &Arc<dyn Store>,
    jobs: Vec<IngestJob>,
    prices: ReconcileConfig,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let task = lead_and_ingest(Arc::clone(store), jobs, prices, shutdown.clone());
    vec![tokio::spawn(task)]
}

async fn lead_and_ingest(
    store: Arc<dyn Store>,
    jobs: Vec<IngestJob>,
    prices: ReconcileConfig,
    shutdown: CancellationToken,
) {
    while let Some(mut lease) = lead(store.as_ref(), &shutdown).await {
        tracing::info!(series = jobs.len(), "leading ingest");
        let ingesting = shutdown.child_token();
        let handles = schedule::spawn(Arc::clone(&store), jobs.clone(), prices, ingesting.clone());
        let lost = loop {
            tokio::select! {
                () = shutdown.cancelled() => break false,
                () = tokio::time::sleep(LEADERSHIP_CHECK) => {
                    if !lease.still_held().await {
                        break true;
                    }
                }
            }
        };
        // Another replica may already lead: stop before giving the lock up for good.
        ingesting.cancel();
        for handle in handles {
            let _ = handle.await;
        }
        lease.release().await;
        if !lost {
            return;
        }
        tracing::warn!("lost ingest leadership with the database connection; ingest paused");
    }
}

/// Waits for leadership; `None` on shutdown.
async fn lead(store: &dyn Store, shutdown: &CancellationToken) -> Option<Box<dyn Lease>> {
    let mut standing_by = false;
    loop {
        match store.try_lead(INGEST_LEADERSHIP).await {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) if !standing_by => {
                standing_by = true;
                tracing::info!("another replica leads ingest; standing by to take over");
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot reach the database to take ingest leadership");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(LEADERSHIP_CHECK) => {}
        }
    }
}

/// How long `marketd ingest` waits for its jobs after SIGINT/SIGTERM; they stop at their
/// next await, so this only matters if the database hangs.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `marketd ingest`: the configured jobs without the API, until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.ingest.is_empty() {
        anyhow::bail!(
            "nothing to ingest: add [[ingest]] tables to the --config file (and do not set MARKETD_INGEST=false)"
        );
    }
    let jobs = jobs(&config.ingest, &config.symbols)?;
    let store = crate::server::open_store(&config).await?;
    let shutdown = CancellationToken::new();
    let handles = spawn(&store, jobs, config.prices, &shutdown);
    crate::server::termination().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    let joined = tokio::time::timeout(STOP_GRACE, async {
        for handle in handles {
            let _ = handle.await;
        }
    })
    .await;
    if joined.is_err() {
        tracing::warn!("ingest tasks did not stop in time");
    }
    store.close().await;
    joined.context("stopping ingest")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use marketd_domain::Interval;

    use super::*;
    use crate::backfill::SourceName;

    fn table(source: SourceName, symbols: &[&str], poll_secs: u64) -> IngestConfig {
        IngestConfig {
            source,
            symbols: symbols.iter().map(|s| s.parse().unwrap()).collect(),
            intervals: vec![Interval::H1],
            depth: Duration::from_secs(86_400),
            poll_every: Duration::from_secs(poll_secs),
            base_url: None,
        }
    }

    #[test]
    fn later_tables_for_a_series_are_its_fallbacks_in_order() {
        let tables = [
            table(SourceName::Binance, &["BTC"], 30),
            table(SourceName::Coinbase, &["BTC", "ETH"], 60),
            table(SourceName::Coingecko, &["BTC"], 90),
        ];
        let jobs = jobs(&tables, &SymbolTable::default()).unwrap();
        let listed: Vec<(&str, Vec<&str>, u64)> = jobs
            .iter()
            .map(|j| {
                let names = j.sources.iter().map(|s| s.name()).collect();
                (j.symbol.as_str(), names, j.poll_every.as_secs())
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("BTC", vec!["binance", "coinbase", "coingecko"], 30),
                ("ETH", vec!["coinbase"], 60),
            ]
        );
        // One source instance per table, shared by the jobs that name it.
        assert!(Arc::ptr_eq(&jobs[0].sources[1], &jobs[1].sources[0]));
    }
}
