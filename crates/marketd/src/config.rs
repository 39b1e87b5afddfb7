//! One typed configuration, layered: defaults, then an optional TOML file, then
//! `MARKETD_*` environment variables and command-line flags (clap reads both). Every
//! value is checked at start-up so a bad setting fails fast and names itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marketd_api::alerts::{WebhookConfig, WebhookSecret};
use marketd_api::auth::{Pepper, TrustedProxies};
use marketd_domain::{Interval, Symbol};
use serde::{Deserialize, Serialize};

use crate::backfill::SourceName;
use crate::http::{ConnectionLimits, MIN_HEADER_BYTES};
use crate::telemetry::Traces;
use crate::tls::TlsFiles;
use marketd_api::middleware::Settings;
use marketd_api::middleware::body_limit::{BodyLimit, DEFAULT_BODY_LIMIT};
use marketd_api::middleware::timeout::Timeouts;
use marketd_ingest::exchange::SymbolTable;
use marketd_ingest::exchange::symbols::Names;
use marketd_ingest::reconcile::ReconcileConfig;

/// A second: a kept answer is dropped as soon as a write is announced, and this bounds
/// how long one can trail a write nobody announced (another process's, on SQLite).
pub const DEFAULT_RESPONSE_CACHE_MS: u64 = 1_000;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://marketd.db";
/// SQLite runs one writer at a time and each connection is a thread with its own cache,
/// so beyond a few readers more connections only hold memory.
pub const SQLITE_DEFAULT_POOL: u32 = 4;
pub const POSTGRES_DEFAULT_POOL: u32 = 16;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable when standard error is a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

/// Settings that may come from the TOML file. Every field is optional: the file only
/// overrides what it names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to serve HTTP on.
    pub listen: Option<String>,
    /// A separate address for `/metrics`, which the main address then no longer serves.
    pub metrics_listen: Option<String>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`.
    pub database_url: Option<String>,
    /// Seed and animate simulated demo data.
    pub demo: Option<bool>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: Option<u64>,
    /// Largest database pool.
    pub max_connections: Option<u32>,
    pub log_format: Option<LogFormat>,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<String>,
    /// Where security alerts are POSTed (Standard Webhooks).
    pub security_webhook_url: Option<String>,
    /// Milliseconds GET answers of the data routes are kept in memory; 0 keeps none.
    pub response_cache_ms: Option<u64>,
    /// Seconds a source's latest price counts towards the reconciled price.
    pub price_fresh_secs: Option<u64>,
    /// Percentage by which a source's price may differ from the median of all fresh
    /// sources before it is left out.
    pub price_divergence_pct: Option<f64>,
    /// Seconds a handler may take to start its response (event streams exempt).
    pub handler_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive after its headers.
    pub body_timeout_secs: Option<u64>,
    /// Seconds a client may take to send a request's headers; idle connections close after it.
    pub header_read_timeout_secs: Option<u64>,
    /// Client connections open at once; past it, new ones wait to be accepted.
    pub connection_limit: Option<usize>,
    /// Largest request line plus headers, in bytes.
    pub max_header_bytes: Option<usize>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: Option<usize>,
    /// Comma-separated origins browsers may call from (CORS).
    pub cors_origins: Option<String>,
    /// PEM certificate chain to serve HTTPS with; needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Exchange series to keep current, one `[[ingest]]` table per source.
    #[serde(default)]
    pub ingest: Vec<IngestEntry>,
    /// Exchange names of symbols, `[symbols.PEPE]` tables keyed by our symbol: they change
    /// a default symbol's names or add a symbol.
    #[serde(default)]
    pub symbols: BTreeMap<String, SymbolEntry>,
}

/// One `[symbols.<SYMBOL>]` table: the symbol's name on each exchange. A name left out
/// keeps the default (none for a new symbol); `""` means the exchange does not list it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolEntry {
    /// Binance spot pair, e.g. `PEPEUSDT`.
    pub binance: Option<String>,
    /// Coinbase Exchange product id, e.g. `PEPE-USD`.
    pub coinbase: Option<String>,
    /// Kraken pair as requested, e.g. `PEPEUSD`.
    pub kraken: Option<String>,
    /// Kraken's key for the pair in its answers when it differs from `kraken`
    /// (`XXBTZUSD` for `XBTUSD`).
    pub kraken_response: Option<String>,
    /// CoinGecko coin id, e.g. `pepe`.
    pub coingecko: Option<String>,
}

/// One `[[ingest]]` table as written; [`IngestConfig`] is the checked form. Values stay
/// strings here so that a bad one is reported with its key rather than as a type error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestEntry {
    /// `binance`, `coinbase`, `kraken` or `coingecko` (latest prices only).
    pub source: String,
    /// Our symbols, e.g. `["BTC", "ETH"]`.
    pub symbols: Vec<String>,
    /// Candle intervals, e.g. `["1m", "1h"]`.
    pub intervals: Vec<String>,
    /// History fetched on the first run, e.g. `"7d"`; later runs resume from the store.
    pub depth: Option<String>,
    /// Seconds between polls.
    pub poll_secs: Option<u64>,
    /// Replaces the exchange's base URL, for a mirror.
    pub base_url: Option<String>,
}

/// History the first run fetches when `depth` is not given.
pub const DEFAULT_INGEST_DEPTH: &str = "7d";
/// Seconds between polls when `poll_secs` is not given.
pub const DEFAULT_INGEST_POLL_SECS: u64 = 30;

/// A checked `[[ingest]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    pub source: SourceName,
    pub symbols: Vec<Symbol>,
    pub intervals: Vec<Interval>,
    /// History fetched on the first run.
    pub depth: Duration,
    pub poll_every: Duration,
    pub base_url: Option<String>,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, env = "MARKETD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://…` [default: sqlite://marketd.db]
    #[arg(long, env = "MARKETD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Log format [default: auto]
    #[arg(long, env = "MARKETD_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Serve-only overrides.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeOverrides {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "MARKETD_LISTEN")]
    pub listen: Option<String>,
    /// Serve /metrics on this address only, e.g. 127.0.0.1:9090 [default: on the main address]
    #[arg(long, env = "MARKETD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Seed and animate simulated demo data [default: on for SQLite, off for Postgres]
    #[arg(long, overrides_with = "no_demo")]
    pub demo: bool,
    /// Do not seed demo data.
    #[arg(long)]
    pub no_demo: bool,
    /// Seconds in-flight requests get to finish on shutdown [default: 10]
    #[arg(long, env = "MARKETD_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// Largest database pool [default: 16 on Postgres, 4 on SQLite]
    #[arg(long, env = "MARKETD_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed [default: none]
    #[arg(long, env = "MARKETD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// URL security alerts are POSTed to, signed with MARKETD_SECURITY_WEBHOOK_SECRET
    #[arg(long, env = "MARKETD_SECURITY_WEBHOOK_URL")]
    pub security_webhook_url: Option<String>,
    /// Failed authentications one client address may make per minute before 429s [default: 10]
    #[arg(long, env = "MARKETD_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// Milliseconds GET answers of the data routes are kept in memory, up to 60000; 0 keeps none [default: 1000]
    #[arg(long, env = "MARKETD_RESPONSE_CACHE_MS")]
    pub response_cache_ms: Option<u64>,
    /// Seconds a source's latest price counts towards the reconciled price [default: 120]
    #[arg(long, env = "MARKETD_PRICE_FRESH_SECS")]
    pub price_fresh_secs: Option<u64>,
    /// Percent a source's price may differ from the median before it is left out [default: 2]
    #[arg(long, env = "MARKETD_PRICE_DIVERGENCE_PCT")]
    pub price_divergence_pct: Option<f64>,
    /// Run the config file's [[ingest]] jobs; false turns them off [default: true]
    #[arg(long, env = "MARKETD_INGEST", value_name = "BOOL")]
    pub ingest: Option<bool>,
    /// Seconds a handler may take to start its response; then 503 [default: 10]
    #[arg(long, env = "MARKETD_HANDLER_TIMEOUT_SECS")]
    pub handler_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive after its headers; then 408 [default: 10]
    #[arg(long, env = "MARKETD_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Seconds a client may take to send request headers before it is disconnected [default: 10]
    #[arg(long, env = "MARKETD_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Client connections open at once; past it, new ones wait [default: 10000]
    #[arg(long, env = "MARKETD_CONNECTION_LIMIT")]
    pub connection_limit: Option<usize>,
    /// Largest request line plus headers in bytes; larger is a 431 [default: 16384]
    #[arg(long, env = "MARKETD_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Largest request body in bytes; larger is a 413 [default: 65536]
    #[arg(long, env = "MARKETD_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Comma-separated origins browsers may call the API from, e.g. https://app.example.com [default: none, CORS off]
    #[arg(long, env = "MARKETD_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// PEM certificate chain (leaf first); with --tls-key, serve HTTPS instead of HTTP [default: none]
    #[arg(long, env = "MARKETD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate; reloaded with it on SIGHUP [default: none]
    #[arg(long, env = "MARKETD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where `/metrics` is served instead of `listen`, when set.
    pub metrics_listen: Option<SocketAddr>,
    pub database_url: String,
    pub demo: bool,
    pub shutdown_timeout: Duration,
    pub max_connections: u32,
    pub log_format: LogFormat,
    pub trusted_proxies: TrustedProxies,
    pub security_webhook: Option<WebhookConfig>,
    /// From `MARKETD_KEY_PEPPER` only: a secret never comes from a flag (process lists
    /// show flags) or a config file (files get committed).
    pub key_pepper: Option<Pepper>,
    pub auth_failures_per_minute: u32,
    /// The file's `[[ingest]]` tables; empty when there are none or `MARKETD_INGEST=false`.
    pub ingest: Vec<IngestConfig>,
    /// How latest prices of several sources are reconciled.
    pub prices: ReconcileConfig,
    /// How long GET answers of the data routes are kept in memory; zero keeps none.
    pub response_cache: Duration,
    /// Settings of the HTTP middleware (timeouts).
    pub http: Settings,
    /// What one client connection may cost.
    pub connections: ConnectionLimits,
    /// Serve HTTPS with these; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// OpenTelemetry trace export, from the standard `OTEL_*` variables only: they are
    /// what collectors, sidecars and operators already set.
    pub traces: Traces,
    /// How each exchange names each symbol: the defaults with the file's `[symbols.*]`
    /// tables applied. Every source and `marketd backfill` use it.
    pub symbols: SymbolTable,
    /// The `[symbols.*]` tables as applied, in symbol order, for `config check`.
    pub symbol_overrides: Vec<(Symbol, Names)>,
}

/// The environment variable holding the webhook signing secret (`whsec_…`); never a
/// flag or file setting, so it does not show in process lists or configs.
pub const WEBHOOK_SECRET_ENV: &str = "MARKETD_SECURITY_WEBHOOK_SECRET";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("metrics_listen: {0:?} is not an address such as 127.0.0.1:9090, apart from listen")]
    MetricsListen(String),
    #[error("listen: {0:?} is not an address such as 127.0.0.1:8080")]
    Listen(String),
    #[error("database_url: must start with sqlite:// or postgres://, got {0:?}")]
    DatabaseUrl(String),
    #[error("max_connections: must be between 1 and 1000")]
    MaxConnections,
    #[error("shutdown_timeout_secs: must be between 0 and 3600")]
    ShutdownTimeout,
    #[error("trusted_proxies: {0}")]
    TrustedProxies(String),
    #[error("security_webhook_url: {0}")]
    WebhookUrl(String),
    #[error("auth_failures_per_minute: must be at least 1")]
    AuthFailures,
    #[error("{0}: must be between 1 and 3600 seconds")]
    Timeout(&'static str),
    #[error("connection_limit: must be between 1 and 1000000")]
    ConnectionLimit,
    #[error("max_header_bytes: must be between 8192 and 1048576")]
    MaxHeaderBytes,
    #[error("body_limit_bytes: must be between 1 and 1073741824")]
    BodyLimit,
    #[error("tls_cert and tls_key: set both to serve HTTPS, or neither for plain HTTP")]
    TlsPair,
    #[error("cors_origins: {0}")]
    CorsOrigins(String),
    #[error("MARKETD_KEY_PEPPER: {0}")]
    KeyPepper(marketd_api::auth::PepperError),
    #[error("response_cache_ms: must be at most 60000")]
    ResponseCache,
    #[error("price_fresh_secs: must be between 1 and 86400")]
    PriceFresh,
    #[error("price_divergence_pct: must be a number above 0 and at most 100")]
    PriceDivergence,
    #[error("{0}")]
    Traces(String),
    #[error("symbols.{symbol}: {message}")]
    Symbols { symbol: String, message: String },
    #[error("ingest[{index}].{key}: {message}")]
    Ingest {
        index: usize,
        key: &'static str,
        message: String,
    },
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

impl Config {
    pub fn load(common: &Overrides, serve: &ServeOverrides) -> Result<Self, ConfigError> {
        let file = match &common.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_raw = serve
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_raw
            .parse()
            .map_err(|_| ConfigError::Listen(listen_raw.clone()))?;
        let metrics_listen = match serve.metrics_listen.clone().or(file.metrics_listen) {
            None => None,
            Some(raw) => Some(
                raw.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::MetricsListen(raw.clone()))?,
            ),
        };
        if metrics_listen == Some(listen) {
            return Err(ConfigError::MetricsListen(listen_raw));
        }
        let database_url = common
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let is_sqlite = database_url.starts_with("sqlite:");
        if !is_sqlite
            && !database_url.starts_with("postgres://")
            && !database_url.starts_with("postgresql://")
        {
            return Err(ConfigError::DatabaseUrl(mask_url(&database_url)));
        }
        let (symbols, symbol_overrides) = symbol_table(&file.symbols)?;
        let ingest = if serve.ingest == Some(false) {
            Vec::new()
        } else {
            file.ingest
                .iter()
                .enumerate()
                .map(|(index, entry)| ingest_config(index, entry))
                .collect::<Result<Vec<_>, _>>()?
        };
        // Simulated prices written beside real ones would be indistinguishable from them,
        // so configured ingest turns the demo off unless it is asked for.
        let demo = if serve.no_demo {
            false
        } else if serve.demo {
            true
        } else {
            file.demo.unwrap_or(is_sqlite && ingest.is_empty())
        };
        let max_connections =
            serve
                .max_connections
                .or(file.max_connections)
                .unwrap_or(if is_sqlite {
                    SQLITE_DEFAULT_POOL
                } else {
                    POSTGRES_DEFAULT_POOL
                });
        if !(1..=1000).contains(&max_connections) {
            return Err(ConfigError::MaxConnections);
        }
        let shutdown_secs = serve
            .shutdown_timeout_secs
            .or(file.shutdown_timeout_secs)
            .unwrap_or(10);
        if shutdown_secs > 3600 {
            return Err(ConfigError::ShutdownTimeout);
        }
        let trusted_proxies = TrustedProxies::parse(
            serve
                .trusted_proxies
                .as_deref()
                .or(file.trusted_proxies.as_deref())
                .unwrap_or_default(),
        )
        .map_err(ConfigError::TrustedProxies)?;
        let security_webhook = match serve
            .security_webhook_url
            .clone()
            .or(file.security_webhook_url)
            .filter(|u| !u.trim().is_empty())
        {
            None => None,
            Some(url) => Some(webhook(&url)?),
        };
        let key_pepper = match std::env::var(crate::pepper::PEPPER_ENV) {
            Ok(spec) => Some(Pepper::parse(&spec).map_err(ConfigError::KeyPepper)?),
            Err(_) => None,
        };
        let auth_failures_per_minute = serve.auth_failures_per_minute.unwrap_or(10);
        if auth_failures_per_minute == 0 {
            return Err(ConfigError::AuthFailures);
        }
        let prices = price_reconcile(
            serve.price_fresh_secs.or(file.price_fresh_secs),
            serve.price_divergence_pct.or(file.price_divergence_pct),
        )?;
        let secs =
            |key: &'static str, flag: Option<u64>, file: Option<u64>, default: Duration| match flag
                .or(file)
            {
                None => Ok(default),
                Some(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n)),
                Some(_) => Err(ConfigError::Timeout(key)),
            };
        let defaults = Timeouts::default();
        let timeouts = Timeouts {
            handler: secs(
                "handler_timeout_secs",
                serve.handler_timeout_secs,
                file.handler_timeout_secs,
                defaults.handler,
            )?,
            body: secs(
                "body_timeout_secs",
                serve.body_timeout_secs,
                file.body_timeout_secs,
                defaults.body,
            )?,
        };
        let defaults = ConnectionLimits::default();
        let mut connections = ConnectionLimits {
            header_read_timeout: secs(
                "header_read_timeout_secs",
                serve.header_read_timeout_secs,
                file.header_read_timeout_secs,
                defaults.header_read_timeout,
            )?,
            max_connections: serve
                .connection_limit
                .or(file.connection_limit)
                .unwrap_or(defaults.max_connections),
            max_header_bytes: serve
                .max_header_bytes
                .or(file.max_header_bytes)
                .unwrap_or(defaults.max_header_bytes),
            http2_idle_timeout: defaults.http2_idle_timeout,
        };
        // A request in progress moves no bytes while its handler works: the idle limit
        // must outlast the slowest request the other limits allow.
        connections.http2_idle_timeout = connections
            .http2_idle_timeout
            .max(connections.header_read_timeout + timeouts.body + timeouts.handler);
        if !(1..=1_000_000).contains(&connections.max_connections) {
            return Err(ConfigError::ConnectionLimit);
        }
        if !(MIN_HEADER_BYTES..=1 << 20).contains(&connections.max_header_bytes) {
            return Err(ConfigError::MaxHeaderBytes);
        }
        let body_limit = BodyLimit(
            serve
                .body_limit_bytes
                .or(file.body_limit_bytes)
                .unwrap_or(DEFAULT_BODY_LIMIT),
        );
        if !(1..=1 << 30).contains(&body_limit.0) {
            return Err(ConfigError::BodyLimit);
        }
        let cors_origins = marketd_api::middleware::cors::parse_origins(
            serve
                .cors_origins
                .as_deref()
                .or(file.cors_origins.as_deref())
                .unwrap_or_default(),
        )
        .map_err(ConfigError::CorsOrigins)?;
        let response_cache_ms = serve
            .response_cache_ms
            .or(file.response_cache_ms)
            .unwrap_or(DEFAULT_RESPONSE_CACHE_MS);
        if response_cache_ms > 60_000 {
            return Err(ConfigError::ResponseCache);
        }
        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        let traces = Traces::from_env().map_err(ConfigError::Traces)?;
        Ok(Self {
            traces,
            symbols,
            symbol_overrides,
            response_cache: Duration::from_millis(response_cache_ms),
            tls,
            http: Settings {
                timeouts,
                body_limit,
                header_limit: marketd_api::middleware::header_limit::HeaderLimit(
                    connections.max_header_bytes,
                ),
                cors_origins,
            },
            connections,
            ingest,
            prices,
            auth_failures_per_minute,
            key_pepper,
            trusted_proxies,
            security_webhook,
            listen,
            metrics_listen,
            database_url,
            demo,
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            max_connections,
            log_format: common
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Auto),
        })
    }

    /// The configuration as `marketd config check` prints it, secrets masked.
    pub fn describe(&self) -> String {
        format!(
            "listen = \"{}\"\nmetrics_listen = \"{}\"\ndatabase_url = \"{}\"\ndemo = {}\nshutdown_timeout_secs = {}\nmax_connections = {}\nlog_format = \"{}\"\ntrusted_proxies = {:?}\nsecurity_webhook = {}\nkey_pepper = \"{}\"\ningest_series = {}\nhandler_timeout_secs = {}\nbody_timeout_secs = {}\nheader_read_timeout_secs = {}\nconnection_limit = {}\nmax_header_bytes = {}\nbody_limit_bytes = {}\ncors_origins = {:?}\ntls_cert = {:?}\ntls_key = {:?}\nprice_fresh_secs = {}\nprice_divergence_pct = {}\nresponse_cache_ms = {}\notel_traces_endpoint = \"{}\"\notel_traces_protocol = \"{}\"\notel_traces_gzip = {}\notel_traces_certificate = {:?}\notel_traces_client_certificate = {:?}\notel_traces_client_key = {:?}\n{}",
            self.listen,
            self.metrics_listen
                .map_or_else(|| "same as listen".into(), |a| a.to_string()),
            mask_url(&self.database_url),
            self.demo,
            self.shutdown_timeout.as_secs(),
            self.max_connections,
            match self.log_format {
                LogFormat::Auto => "auto",
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.trusted_proxies,
            if self.security_webhook.is_some() {
                "\"configured\""
            } else {
                "\"none\""
            },
            if self.key_pepper.is_some() {
                "from MARKETD_KEY_PEPPER"
            } else {
                "generated file beside a SQLite database"
            },
            self.ingest
                .iter()
                .map(|i| i.symbols.len() * i.intervals.len())
                .sum::<usize>(),
            self.http.timeouts.handler.as_secs(),
            self.http.timeouts.body.as_secs(),
            self.connections.header_read_timeout.as_secs(),
            self.connections.max_connections,
            self.connections.max_header_bytes,
            self.http.body_limit.0,
            self.http
                .cors_origins
                .iter()
                .map(|o| o.to_str().unwrap_or_default())
                .collect::<Vec<_>>(),
            self.tls
                .as_ref()
                .map_or_else(|| "none".into(), |t| t.cert.display().to_string()),
            self.tls
                .as_ref()
                .map_or_else(|| "none".into(), |t| t.key.display().to_string()),
            self.prices.fresh_for.as_secs(),
            self.prices.max_divergence * 100.0,
            self.response_cache.as_millis(),
            self.traces
                .endpoint
                .as_deref()
                .map_or_else(|| "none".to_owned(), mask_url),
            self.traces.protocol.as_str(),
            self.traces.gzip,
            // Where the files are, never what the key file holds.
            self.traces
                .ca
                .as_ref()
                .map_or_else(|| "none".into(), |ca| ca.path.display().to_string()),
            self.traces
                .client
                .as_ref()
                .map_or_else(|| "none".into(), |c| c.chain.path.display().to_string()),
            self.traces
                .client
                .as_ref()
                .map_or_else(|| "none".into(), |c| c.key.path.display().to_string()),
            self.describe_symbols(),
        )
    }

    /// One `symbols.X = { … }` line per `[symbols.X]` table, with the names it set.
    fn describe_symbols(&self) -> String {
        let mut out = String::new();
        for (symbol, names) in &self.symbol_overrides {
            let set: Vec<String> = [
                ("binance", &names.binance),
                ("coinbase", &names.coinbase),
                ("kraken", &names.kraken),
                ("kraken_response", &names.kraken_response),
                ("coingecko", &names.coingecko),
            ]
            .into_iter()
            .filter_map(|(key, name)| name.as_ref().map(|n| format!("{key} = {n:?}")))
            .collect();
            out.push_str(&format!("symbols.{symbol} = {{ {} }}\n", set.join(", ")));
        }
        out
    }
}

/// The default symbol table with the file's `[symbols.*]` tables applied, each checked.
fn symbol_table(
    tables: &BTreeMap<String, SymbolEntry>,
) -> Result<(SymbolTable, Vec<(Symbol, Names)>), ConfigError> {
    let mut table = SymbolTable::default();
    let mut applied = Vec::with_capacity(tables.len());
    for (raw, entry) in tables {
        let bad = |message: String| ConfigError::Symbols {
            symbol: raw.clone(),
            message,
        };
        let symbol = Symbol::parse(raw).map_err(|e| bad(format!("not a symbol: {e}")))?;
        if applied.iter().any(|(s, _): &(Symbol, Names)| *s == symbol) {
            return Err(bad("listed twice (symbols are not case-sensitive)".into()));
        }
        let names = Names {
            binance: entry.binance.clone(),
            coinbase: entry.coinbase.clone(),
            kraken: entry.kraken.clone(),
            kraken_response: entry.kraken_response.clone(),
            coingecko: entry.coingecko.clone(),
        };
        if names == Names::default() {
            return Err(bad(
                "name at least one of binance, coinbase, kraken, kraken_response, coingecko".into(),
            ));
        }
        table
            .set_names(symbol.as_str(), &names)
            .map_err(|message| ConfigError::Symbols {
                symbol: format!(
                    "{symbol}.{}",
                    message.split_once(':').map_or("", |(k, _)| k)
                ),
                message: message
                    .split_once(": ")
                    .map_or(message.clone(), |(_, m)| m.to_owned()),
            })?;
        applied.push((symbol, names));
    }
    Ok((table, applied))
}

fn ingest_config(index: usize, entry: &IngestEntry) -> Result<IngestConfig, ConfigError> {
    let bad = |key: &'static str, message: String| ConfigError::Ingest {
        index,
        key,
        message,
    };
    let source = match entry.source.as_str() {
        "binance" => SourceName::Binance,
        "coinbase" => SourceName::Coinbase,
        "kraken" => SourceName::Kraken,
        "coingecko" => SourceName::Coingecko,
        other => {
            return Err(bad(
                "source",
                format!("{other:?} is not a source; use binance, coinbase, kraken or coingecko"),
            ));
        }
    };
    if entry.symbols.is_empty() {
        return Err(bad("symbols", "list at least one symbol".into()));
    }
    let symbols = entry
        .symbols
        .iter()
        .map(|raw| Symbol::parse(raw).map_err(|e| bad("symbols", format!("{raw:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if entry.intervals.is_empty() {
        return Err(bad("intervals", "list at least one interval".into()));
    }
    let intervals = entry
        .intervals
        .iter()
        .map(|raw| {
            raw.parse::<Interval>().map_err(|_| {
                bad(
                    "intervals",
                    format!("{raw:?} is not an interval; use 1m 5m 15m 1h 4h 1d 1w"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let depth_raw = entry.depth.as_deref().unwrap_or(DEFAULT_INGEST_DEPTH);
    let depth = parse_depth(depth_raw).ok_or_else(|| {
        bad(
            "depth",
            format!("{depth_raw:?} is not a span such as 90m, 12h, 7d or 2w (at most 3650d)"),
        )
    })?;
    let poll_secs = entry.poll_secs.unwrap_or(DEFAULT_INGEST_POLL_SECS);
    if !(1..=86_400).contains(&poll_secs) {
        return Err(bad("poll_secs", "must be between 1 and 86400".into()));
    }
    let base_url = match &entry.base_url {
        None => None,
        Some(url) => {
            reqwest::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| bad("base_url", format!("{url:?} is not an http(s) URL")))?;
            Some(url.clone())
        }
    };
    Ok(IngestConfig {
        source,
        symbols,
        intervals,
        depth,
        poll_every: Duration::from_secs(poll_secs),
        base_url,
    })
}

/// `<count><unit>` with unit `m`, `h`, `d` or `w`; positive and at most ten years, so that
/// a typo cannot ask an exchange for its whole history.
fn parse_depth(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.len().checked_sub(1)?;
    let (count, unit) = raw.split_at_checked(split)?;
    let count: u64 = count.parse().ok()?;
    let unit_secs = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let secs = count.checked_mul(unit_secs)?;
    (1..=3_650 * 86_400)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

fn webhook(url: &str) -> Result<WebhookConfig, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| ConfigError::WebhookUrl("must be an http(s) URL".into()))?;
    let secret = std::env::var(WEBHOOK_SECRET_ENV).map_err(|_| {
        ConfigError::WebhookUrl(format!("{WEBHOOK_SECRET_ENV} must be set to sign alerts"))
    })?;
    let secret = WebhookSecret::parse(&secret)
        .map_err(|e| ConfigError::WebhookUrl(format!("{WEBHOOK_SECRET_ENV}: {e}")))?;
    Ok(WebhookConfig::new(parsed, secret))
}

/// Replaces the password of a URL's user-info with `****`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:****@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn price_reconcile(
    fresh_secs: Option<u64>,
    divergence_pct: Option<f64>,
) -> Result<ReconcileConfig, ConfigError> {
    let defaults = ReconcileConfig::default();
    let fresh_for = match fresh_secs {
        None => defaults.fresh_for,
        Some(secs) if (1..=86_400).contains(&secs) => Duration::from_secs(secs),
        Some(_) => return Err(ConfigError::PriceFresh),
    };
    let max_divergence = match divergence_pct {
        None => defaults.max_divergence,
        Some(pct) if pct > 0.0 && pct <= 100.0 => pct / 100.0,
        Some(_) => return Err(ConfigError::PriceDivergence),
    };
    Ok(ReconcileConfig {
        fresh_for,
        max_divergence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://u:secret@db:5432/m"),
            "postgres://u:****@db:5432/m"
        );
        assert_eq!(mask_url("postgres://u@db/m"), "postgres://u@db/m");
        assert_eq!(mask_url("sqlite://marketd.db"), "sqlite://marketd.db");
    }

    #[test]
    fn layers_flags_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndatabase_url = \"postgres://p@h/d\"\n",
        )
        .unwrap();
        let common = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        let config = Config::load(&common, &ServeOverrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert!(!config.demo, "demo is off by default on Postgres");
        let flags = ServeOverrides {
            listen: Some("127.0.0.1:1".into()),
            ..ServeOverrides::default()
        };
        assert_eq!(
            Config::load(&common, &flags).unwrap().listen.to_string(),
            "127.0.0.1:1"
        );
    }

    fn load_file(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, text).unwrap();
        let common = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        Config::load(&common, &ServeOverrides::default())
    }

    #[test]
    fn reads_ingest_tables() {
        let config = load_file(
            "[[ingest]]\nsource = \"binance\"\nsymbols = [\"BTC\", \"ETH\"]\nintervals = [\"1m\", \"1h\"]\ndepth = \"7d\"\npoll_secs = 30\n\n[[ingest]]\nsource = \"kraken\"\nsymbols = [\"SOL\"]\nintervals = [\"1d\"]\nbase_url = \"http://127.0.0.1:9\"\n",
        )
        .unwrap();
        assert_eq!(
            config.ingest,
            [
                IngestConfig {
                    source: SourceName::Binance,
                    symbols: vec![Symbol::parse("BTC").unwrap(), Symbol::parse("ETH").unwrap()],
                    intervals: vec![Interval::M1, Interval::H1],
                    depth: Duration::from_secs(7 * 86_400),
                    poll_every: Duration::from_secs(30),
                    base_url: None,
                },
                IngestConfig {
                    source: SourceName::Kraken,
                    symbols: vec![Symbol::parse("SOL").unwrap()],
                    intervals: vec![Interval::D1],
                    depth: Duration::from_secs(7 * 86_400),
                    poll_every: Duration::from_secs(DEFAULT_INGEST_POLL_SECS),
                    base_url: Some("http://127.0.0.1:9".into()),
                },
            ]
        );
        assert!(!config.demo, "real data turns the demo off");
        assert!(config.describe().contains("ingest_series = 5"));
        assert!(load_file("").unwrap().ingest.is_empty());
    }

    #[test]
    fn a_bad_ingest_setting_names_its_key() {
        let table = |extra: &str| {
            format!("[[ingest]]\nsource = \"binance\"\nsymbols = [\"BTC\"]\n{extra}\n")
        };
        let err = load_file(&table("intervals = [\"1m\", \"2m\"]")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ingest[0].intervals: \"2m\" is not an interval; use 1m 5m 15m 1h 4h 1d 1w"
        );
        let err = load_file(&table("intervals = [\"1m\"]\ndepth = \"7 days\"")).unwrap_err();
        assert!(err.to_string().starts_with("ingest[0].depth:"), "{err}");
        let err = load_file(&table("intervals = [\"1m\"]\npoll_secs = 0")).unwrap_err();
        assert!(err.to_string().starts_with("ingest[0].poll_secs:"), "{err}");
        let err = load_file(&table("intervals = [\"1m\"]\nbase_url = \"ftp://x\"")).unwrap_err();
        assert!(err.to_string().starts_with("ingest[0].base_url:"), "{err}");
        let err = load_file(&table("intervals = [\"1m\"]\nsource2 = 1")).unwrap_err();
        assert!(err.to_string().contains("source2"), "{err}");
        let err = load_file(
            "[[ingest]]\nsource = \"bitstamp\"\nsymbols = [\"BTC\"]\nintervals = [\"1m\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("ingest[0].source:"), "{err}");
    }

    #[test]
    fn symbol_tables_change_and_add_names() {
        use marketd_ingest::exchange::symbols::Source;

        let config = load_file(
            "[symbols.PEPE]\nbinance = \"PEPEUSDT\"\ncoinbase = \"PEPE-USD\"\nkraken = \"PEPEUSD\"\ncoingecko = \"pepe\"\n\n[symbols.btc]\ncoinbase = \"\"\nkraken = \"XBTUSDT\"\nkraken_response = \"XXBTZUSDT\"\n",
        )
        .unwrap();
        let table = &config.symbols;
        assert_eq!(table.source_name(Source::Binance, "PEPE"), Some("PEPEUSDT"));
        assert_eq!(
            table.source_name(Source::Coinbase, "PEPE"),
            Some("PEPE-USD")
        );
        assert_eq!(table.source_name(Source::Kraken, "PEPE"), Some("PEPEUSD"));
        assert_eq!(table.source_name(Source::CoinGecko, "PEPE"), Some("pepe"));
        assert_eq!(table.source_name(Source::Coinbase, "BTC"), None, "unlisted");
        assert_eq!(table.source_name(Source::Kraken, "BTC"), Some("XBTUSDT"));
        assert_eq!(
            table
                .by_source_name(Source::Kraken, "XXBTZUSDT")
                .map(|a| a.symbol.as_str()),
            Some("BTC")
        );
        assert_eq!(
            table.source_name(Source::Binance, "BTC"),
            Some("BTCUSDT"),
            "kept"
        );
        assert_eq!(table.source_name(Source::Binance, "ETH"), Some("ETHUSDT"));
        let described = config.describe();
        assert!(
            described.contains(
                "symbols.BTC = { coinbase = \"\", kraken = \"XBTUSDT\", kraken_response = \"XXBTZUSDT\" }\n"
            ),
            "{described}"
        );
        assert!(
            described.contains("symbols.PEPE = { binance = \"PEPEUSDT\", coinbase = \"PEPE-USD\", kraken = \"PEPEUSD\", coingecko = \"pepe\" }\n"),
            "{described}"
        );
        assert_eq!(load_file("").unwrap().symbols, SymbolTable::default());
    }

    #[test]
    fn a_bad_symbol_table_names_its_key() {
        for (text, message) in [
            (
                "[symbols.PEPE]\nbinance = \"pepe-usdt\"\n",
                "symbols.PEPE.binance: \"pepe-usdt\" is not a name this exchange uses; expected uppercase letters and digits, such as PEPEUSDT (at most 20 characters)",
            ),
            (
                "[symbols.PEPE]\ncoinbase = \"PEPE/USD\"\n",
                "symbols.PEPE.coinbase: \"PEPE/USD\" is not a name",
            ),
            (
                "[symbols.PEPE]\nkraken = \"XBTUSD\"\n",
                "symbols.PEPE.kraken: \"XBTUSD\" already names BTC on this exchange",
            ),
            (
                "[symbols.\"PE-PE\"]\nbinance = \"PEPEUSDT\"\n",
                "symbols.PE-PE: not a symbol:",
            ),
            ("[symbols.PEPE]\n", "symbols.PEPE: name at least one of"),
            (
                "[symbols.pepe]\nbinance = \"PEPEUSDT\"\n[symbols.PEPE]\ncoingecko = \"pepe\"\n",
                "listed twice",
            ),
        ] {
            let err = load_file(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
        let err = load_file("[symbols.PEPE]\nbitstamp = \"PEPEUSD\"\n").unwrap_err();
        assert!(err.to_string().contains("bitstamp"), "{err}");
    }

    #[test]
    fn the_default_pool_suits_the_backend_and_a_chosen_size_wins() {
        let sqlite = load_file("database_url = \"sqlite://m.db\"\n").unwrap();
        assert_eq!(sqlite.max_connections, SQLITE_DEFAULT_POOL);
        let postgres = load_file("database_url = \"postgres://p@h/d\"\n").unwrap();
        assert_eq!(postgres.max_connections, POSTGRES_DEFAULT_POOL);
        let chosen = load_file("database_url = \"sqlite://m.db\"\nmax_connections = 12\n").unwrap();
        assert_eq!(chosen.max_connections, 12);
    }

    #[test]
    fn http_limits_come_from_the_file_and_flags_and_are_checked() {
        let config = load_file(
            "handler_timeout_secs = 3\nheader_read_timeout_secs = 4\nconnection_limit = 50\nmax_header_bytes = 9000\n",
        )
        .unwrap();
        assert_eq!(config.http.timeouts.handler, Duration::from_secs(3));
        assert_eq!(config.http.timeouts.body, Duration::from_secs(10));
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(4)
        );
        assert_eq!(config.connections.max_connections, 50);
        assert_eq!(config.connections.max_header_bytes, 9000);
        assert_eq!(config.http.body_limit, BodyLimit(DEFAULT_BODY_LIMIT));
        assert!(
            config.http.cors_origins.is_empty(),
            "CORS is off by default"
        );
        let described = config.describe();
        assert!(
            described.contains("handler_timeout_secs = 3\n"),
            "{described}"
        );
        assert!(described.contains("connection_limit = 50\n"), "{described}");
        assert!(described.contains("cors_origins = []\n"), "{described}");

        let flags = ServeOverrides {
            body_timeout_secs: Some(2),
            ..ServeOverrides::default()
        };
        let config = Config::load(&Overrides::default(), &flags).unwrap();
        assert_eq!(config.http.timeouts.body, Duration::from_secs(2));
        let flags = ServeOverrides {
            cors_origins: Some("https://a.example, http://localhost:5173".into()),
            ..ServeOverrides::default()
        };
        let described = Config::load(&Overrides::default(), &flags)
            .unwrap()
            .describe();
        assert!(
            described
                .contains("cors_origins = [\"https://a.example\", \"http://localhost:5173\"]\n"),
            "{described}"
        );

        for bad in [
            "handler_timeout_secs = 0",
            "body_timeout_secs = 3601",
            "header_read_timeout_secs = 0",
            "connection_limit = 0",
            "max_header_bytes = 4096",
            "body_limit_bytes = 0",
            "cors_origins = \"https://app.example.com/path\"",
        ] {
            let err = load_file(bad).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.starts_with(&format!("{key}:")), "{bad}: {err}");
        }
    }

    #[test]
    fn https_needs_both_a_certificate_and_a_key() {
        let config = load_file("").unwrap();
        assert_eq!(config.tls, None, "plain HTTP by default");
        assert!(
            config
                .describe()
                .contains("tls_cert = \"none\"\ntls_key = \"none\"\n")
        );

        let config =
            load_file("tls_cert = \"/etc/m/cert.pem\"\ntls_key = \"/etc/m/key.pem\"\n").unwrap();
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "/etc/m/cert.pem".into(),
                key: "/etc/m/key.pem".into(),
            })
        );
        let described = config.describe();
        assert!(
            described.contains("tls_cert = \"/etc/m/cert.pem\"\ntls_key = \"/etc/m/key.pem\"\n"),
            "{described}"
        );

        let err = load_file("tls_cert = \"/etc/m/cert.pem\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("tls_cert and tls_key:"),
            "{err}"
        );
        let flags = ServeOverrides {
            tls_key: Some("/etc/m/key.pem".into()),
            ..ServeOverrides::default()
        };
        let err = Config::load(&Overrides::default(), &flags).unwrap_err();
        assert!(
            err.to_string().starts_with("tls_cert and tls_key:"),
            "{err}"
        );
    }

    #[test]
    fn depths_are_counts_with_a_unit() {
        assert_eq!(parse_depth("90m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_depth("2w"), Some(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "0d", "7", "7s", "-1d", "3651d", "1.5h"] {
            assert_eq!(parse_depth(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_settings_name_themselves() {
        let bad = ServeOverrides {
            listen: Some("nowhere".into()),
            ..ServeOverrides::default()
        };
        let err = Config::load(&Overrides::default(), &bad).unwrap_err();
        assert!(err.to_string().starts_with("listen:"));
        for metrics in ["nowhere", "127.0.0.1:8080"] {
            let bad = ServeOverrides {
                metrics_listen: Some(metrics.into()),
                ..ServeOverrides::default()
            };
            let err = Config::load(&Overrides::default(), &bad).unwrap_err();
            assert!(err.to_string().starts_with("metrics_listen:"), "{err}");
        }
        let apart = ServeOverrides {
            metrics_listen: Some("127.0.0.1:9090".into()),
            ..ServeOverrides::default()
        };
        let config = Config::load(&Overrides::default(), &apart).unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert!(
            config
                .describe()
                .contains("metrics_listen = \"127.0.0.1:9090\"\n")
        );
        let common = Overrides {
            database_url: Some("mysql://x".into()),
            ..Overrides::default()
        };
        let err = Config::load(&common, &ServeOverrides::default()).unwrap_err();
        assert!(err.to_string().starts_with("database_url:"));
        for (fresh, pct, key) in [
            (Some(0), None, "price_fresh_secs:"),
            (None, Some(0.0), "price_divergence_pct:"),
            (None, Some(f64::NAN), "price_divergence_pct:"),
            (None, Some(150.0), "price_divergence_pct:"),
        ] {
            let bad = ServeOverrides {
                price_fresh_secs: fresh,
                price_divergence_pct: pct,
                ..ServeOverrides::default()
            };
            let err = Config::load(&Overrides::default(), &bad).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        let tuned = ServeOverrides {
            price_fresh_secs: Some(30),
            price_divergence_pct: Some(0.5),
            ..ServeOverrides::default()
        };
        let config = Config::load(&Overrides::default(), &tuned).unwrap();
        assert_eq!(config.prices.fresh_for, Duration::from_secs(30));
        assert!((config.prices.max_divergence - 0.005).abs() < 1e-12);
    }
}
