//! The `[[ingest]]` tables turned into running jobs, beside the API in `marketd serve` or
//! on their own in `marketd ingest`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketd_ingest::schedule::{self, IngestJob};
use marketd_ingest::source::Source;
use marketd_storage::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backfill::{SourceName, open_source};
use crate::config::{Config, IngestConfig};

/// An exchange and the base URL it is reached at.
type SourceKey<'a> = (SourceName, Option<&'a str>);

/// One job per symbol and interval. Tables naming the same exchange and base URL share one
/// source, so they share its rate limit and circuit breaker as the exchange sees them as
/// one client.
pub fn jobs(tables: &[IngestConfig]) -> anyhow::Result<Vec<IngestJob>> {
    let mut sources: Vec<(SourceKey<'_>, Arc<dyn Source>)> = Vec::new();
    let mut jobs = Vec::new();
    for table in tables {
        let key = (table.source, table.base_url.as_deref());
        let source = match sources.iter().find(|(k, _)| *k == key) {
            Some((_, source)) => Arc::clone(source),
            None => {
                let source: Arc<dyn Source> =
                    Arc::from(open_source(table.source, table.base_url.as_deref())?);
                sources.push((key, Arc::clone(&source)));
                source
            }
        };
        let depth_ms = i64::try_from(table.depth.as_millis()).unwrap_or(i64::MAX);
        for symbol in &table.symbols {
            for &interval in &table.intervals {
                jobs.push(IngestJob {
                    source: Arc::clone(&source),
                    symbol: symbol.to_string(),
                    interval,
                    depth_ms,
                    poll_every: table.poll_every,
                });
            }
        }
    }
    Ok(jobs)
}

/// Starts `jobs`, logging how many there are when there are any.
pub fn spawn(
    store: &Arc<dyn Store>,
    jobs: Vec<IngestJob>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    if !jobs.is_empty() {
        tracing::info!(series = jobs.len(), "ingest started");
    }
    schedule::spawn(Arc::clone(store), jobs, shutdown.clone())
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
    let jobs = jobs(&config.ingest)?;
    let store = crate::server::open_store(&config).await?;
    let shutdown = CancellationToken::new();
    let handles = spawn(&store, jobs, &shutdown);
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
