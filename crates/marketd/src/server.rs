//! Wiring: open the store, seed the demo, serve HTTP, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketd_api::AppState;
use marketd_api::auth::{Auth, AuthConfig};
use marketd_api::middleware::header_limit::HeaderLimit;
use marketd_api::middleware::response_cache::ResponseCache;
use marketd_ingest::demo::{self, DemoOptions};
use marketd_storage::{ConnectOptions, Store, connect};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, mask_url};
use crate::tls::Certificates;

/// Backtests run at once per process; each holds one core while it computes.
const BACKTEST_WORKERS: usize = 2;

/// How long start-up waits for an unreachable database before giving up.
const DATABASE_WAIT: Duration = Duration::from_secs(30);

/// Opens the store and applies migrations, retrying while the database is unreachable
/// (a Postgres container that starts alongside marketd takes a few seconds).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = ConnectOptions {
        max_connections: config.max_connections,
        ..ConnectOptions::default()
    };
    let store = connect(&config.database_url, &options)
        .await
        .with_context(|| format!("opening {}", mask_url(&config.database_url)))?;
    let deadline = tokio::time::Instant::now() + DATABASE_WAIT;
    let mut delay = Duration::from_millis(200);
    loop {
        match store.migrate().await {
            Ok(()) => return Ok(store),
            Err(err) if err.is_unavailable() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
            Err(err) => return Err(err).context("applying migrations"),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    /// The key machinery, so an embedding program (or a test) can issue keys.
    pub auth: Arc<Auth>,
    /// The certificates served with when HTTPS is on, so they can be reloaded.
    pub tls: Option<Arc<Certificates>>,
    /// Where `/metrics` is served, when it has an address of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts serving on `config.listen` (port 0 picks a free one) and returns at once.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    // Built before anything is spawned, so a bad source setting leaves nothing running.
    let ingest_jobs = crate::ingest::jobs(&config.ingest, &config.symbols)?;
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(
            Certificates::load(files.clone()).context("loading the TLS certificate")?,
        )),
        None => None,
    };
    let store = open_store(config).await?;
    let shutdown = CancellationToken::new();
    // Registered before anything is spawned, as it can fail.
    #[cfg(unix)]
    let reloads = tls
        .as_ref()
        .map(|certificates| {
            crate::tls::reload_on_hangup(Arc::clone(certificates), shutdown.clone())
                .context("listening for SIGHUP")
        })
        .transpose()?;
    let mut background = Vec::new();
    #[cfg(unix)]
    background.extend(reloads.map(tokio::spawn));
    if config.demo {
        let began = std::time::Instant::now();
        let report = demo::seed(
            store.as_ref(),
            marketd_api::state::system_clock(),
            &DemoOptions::default(),
        )
        .await
        .context("seeding demo data")?;
        tracing::info!(
            assets = report.assets,
            candles = report.candles,
            elapsed_ms = began.elapsed().as_millis() as u64,
            "demo data ready"
        );
        background.push(demo::spawn_live(
            Arc::clone(&store),
            DemoOptions::default().tick,
            shutdown.clone(),
            marketd_api::state::system_clock,
        ));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("binding the metrics address {at}"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let pepper = crate::pepper::load(config.key_pepper.as_ref(), &config.database_url)?;
    let mut auth_config = AuthConfig::new(pepper);
    auth_config.trusted_proxies = config.trusted_proxies.clone();
    auth_config.webhook = config.security_webhook.clone();
    auth_config.failures_per_minute = config.auth_failures_per_minute;
    let auth = Arc::new(Auth::new(Arc::clone(&store), auth_config).map_err(anyhow::Error::msg)?);
    crate::keys::bootstrap(
        &auth,
        config.demo,
        &reachable_base(addr, config.tls.is_some()),
    )
    .await
    .context("issuing start-up keys")?;
    background.push(tokio::spawn(
        Arc::clone(&auth).maintain(marketd_api::state::system_clock, shutdown.clone()),
    ));
    let mut state = marketd_api::state::Shared::new(Arc::clone(&store), Arc::clone(&auth));
    state.ingest = Arc::new(crate::ingest::view(&ingest_jobs));
    state.shutdown = shutdown.clone();
    state.metrics_elsewhere = metrics_listener.is_some();
    state.response_cache = Arc::new(ResponseCache::new(
        config.response_cache,
        marketd_api::middleware::response_cache::DEFAULT_CACHE_BYTES,
    ));
    let state = AppState::from(state);
    background
        .push(Arc::clone(&state.response_cache).spawn_clearing(store.changes(), shutdown.clone()));
    background.push(Arc::clone(&state.price_hub).spawn(
        Arc::clone(&store),
        Arc::clone(&state.response_cache),
        shutdown.clone(),
    ));
    background.extend(
        marketd_api::backtests::start(
            Arc::clone(&store),
            Arc::clone(&state.jobs),
            BACKTEST_WORKERS,
            marketd_api::state::system_clock,
            shutdown.clone(),
        )
        .await,
    );
    background.push(marketd_api::signal_engine::spawn(
        Arc::clone(&store),
        marketd_api::state::system_clock,
        Arc::clone(&state.response_cache),
        shutdown.clone(),
    ));
    // After the last fallible step, so a failed start leaves no poller hitting an exchange.
    background.extend(crate::ingest::spawn(
        &store,
        ingest_jobs,
        config.prices,
        &shutdown,
    ));
    if let Some(listener) = metrics_listener {
        let metrics = marketd_api::metrics_app(state.clone());
        let (limits, token, grace) = (
            config.connections,
            shutdown.clone(),
            config.shutdown_timeout,
        );
        // Plain HTTP: the address is meant for a scraper on a private network.
        background.push(tokio::spawn(async move {
            crate::http::serve(listener, metrics, limits, None, token, grace).await;
        }));
    }
    // The limit is a connection setting; the layer answers it with a problem document
    // for heads the server's read buffer (twice the limit) still takes in.
    let settings = marketd_api::middleware::Settings {
        header_limit: HeaderLimit(config.connections.max_header_bytes),
        ..config.http.clone()
    };
    let app = marketd_api::app(state, &settings);
    let grace = config.shutdown_timeout;
    let limits = config.connections;
    let token = shutdown.clone();
    let certificates = tls.clone();
    let handle = tokio::spawn(async move {
        crate::http::serve(listener, app, limits, certificates, token, grace).await;
        for task in background {
            let _ = task.await;
        }
        store.close().await;
        Ok(())
    });
    Ok(Running {
        addr,
        shutdown,
        auth,
        tls,
        metrics_addr,
        handle,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn termination() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// `marketd serve`: runs until SIGINT/SIGTERM, then drains and exits.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(&config).await?;
    let scheme = if running.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        addr = %running.addr,
        docs = %format!("{scheme}://{}/docs", running.addr),
        database = %mask_url(&config.database_url),
        "marketd listening"
    );
    if let Some(at) = running.metrics_addr {
        tracing::info!(metrics = %format!("http://{at}/metrics"), "metrics listening");
    }
    termination().await;
    tracing::info!("shutting down");
    running.shutdown.cancel();
    running.handle.await.context("server task")?
}

/// A base URL a local client can reach `addr` at: a wildcard address is reached over
/// loopback.
fn reachable_base(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    format!("{scheme}://{}", SocketAddr::new(host, addr.port()))
}
