//! Shared application state handed to every handler.

use std::sync::Arc;

use marketd_domain::Interval;
use marketd_ingest::source::Source;
use marketd_storage::Store;

use crate::auth::Auth;
use crate::backtests::JobQueue;
use crate::metrics::HttpMetrics;

/// Milliseconds since the Unix epoch; injectable so tests can fix "now".
pub type Clock = fn() -> i64;

pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What handlers need: the store, the key machinery and a clock.
///
/// Behind one `Arc`: every request clones the state several times (each layer with
/// state, then the handler), and one shared count is far cheaper than one per field,
/// all of them bounced between the cores serving requests.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(store: Arc<dyn Store>, auth: Arc<Auth>) -> Self {
        Self::from(Shared::new(store, auth))
    }
}

impl From<Shared> for AppState {
    fn from(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state itself; built and adjusted as a `Shared`, then frozen into an [`AppState`].
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Auth>,
    /// Wakes backtest workers when a job is queued.
    pub jobs: Arc<JobQueue>,
    pub clock: Clock,
    /// A latest price older than this is reported with `stale: true`.
    pub stale_after_ms: i64,
    pub metrics: Arc<HttpMetrics>,
    pub response_cache: Arc<crate::middleware::response_cache::ResponseCache>,
    pub price_hub: Arc<crate::price_stream::PriceHub>,
    pub streams: Arc<crate::price_stream::StreamCounts>,
    /// Cancelled at shutdown, so long-lived streams can say goodbye.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// What this process ingests, for metrics and readiness.
    pub ingest: Arc<IngestView>,
    /// `/metrics` has an address of its own ([`crate::metrics_app`]); the API's
    /// address answers 404 for it.
    pub metrics_elsewhere: bool,
}

/// The exchange sources and series a process is configured to ingest.
#[derive(Default)]
pub struct IngestView {
    pub sources: Vec<Arc<dyn Source>>,
    pub series: Vec<(String, Interval)>,
}

impl std::fmt::Debug for IngestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestView")
            .field("sources", &self.sources.len())
            .field("series", &self.series)
            .finish()
    }
}

impl Shared {
    pub fn new(store: Arc<dyn Store>, auth: Arc<Auth>) -> Self {
        Self {
            store,
            auth,
            jobs: Arc::new(JobQueue::default()),
            clock: system_clock,
            stale_after_ms: 120_000,
            metrics: Arc::new(crate::metrics::HttpMetrics::new(
                crate::route_templates().iter().map(String::as_str),
            )),
            ingest: Arc::default(),
            response_cache: Arc::default(),
            price_hub: Arc::default(),
            streams: Arc::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            metrics_elsewhere: false,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}
