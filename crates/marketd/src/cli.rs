//! The command line: `serve` (the default), `migrate`, `import`, `backfill`, `ingest`, `keys`,
//! `openapi`, `config check`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use marketd_domain::{Interval, Symbol};

use crate::config::{Config, Overrides, ServeOverrides};

#[derive(Debug, Parser)]
#[command(
    name = "marketd",
    version,
    about = "Crypto market data over a documented REST API"
)]
struct Cli {
    #[command(flatten)]
    common: Overrides,
    #[command(flatten)]
    serve: ServeOverrides,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default when no command is given).
    Serve(ServeOverrides),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Import candles from a CSV file, all or nothing.
    Import {
        /// CSV with header `open_time,open,high,low,close,volume` (open_time RFC 3339 or
        /// Unix ms), or a Binance kline file without header.
        file: PathBuf,
        /// Symbol the candles belong to, e.g. BTC.
        #[arg(long, value_parser = parse_symbol)]
        symbol: Symbol,
        /// Interval of the candles: 1m 5m 15m 1h 4h 1d 1w.
        #[arg(long, value_parser = parse_interval)]
        interval: Interval,
        /// Source name stored with the candles.
        #[arg(long, default_value = "csv")]
        source: String,
        /// Import the good rows even when some rows are bad.
        #[arg(long)]
        skip_bad_rows: bool,
    },
    /// Fetch candle history from an exchange, resuming where an earlier run stopped.
    Backfill(crate::backfill::BackfillArgs),
    /// Run the config file's [[ingest]] jobs without the API, until SIGINT/SIGTERM.
    Ingest,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage API keys directly in the database.
    Keys {
        #[command(subcommand)]
        command: crate::keys::KeysCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets masked; fail on a bad setting.
    Check(ServeOverrides),
}

pub(crate) fn parse_symbol(raw: &str) -> Result<Symbol, String> {
    Symbol::parse(raw).map_err(|e| e.to_string())
}

pub(crate) fn parse_interval(raw: &str) -> Result<Interval, String> {
    raw.parse()
        .map_err(|e: marketd_domain::interval::UnknownInterval| e.to_string())
}

/// Starts logging (and trace export when the `OTEL_*` variables ask for it); the value
/// flushes the last spans when dropped, so a command keeps it until it is done.
fn init_tracing(config: &Config) -> anyhow::Result<crate::telemetry::Telemetry> {
    crate::telemetry::init(config.log_format, &config.traces)
}

/// Runs the command line; the process exit code says whether it succeeded.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        common,
        serve,
        command,
    } = cli;
    match command {
        None => serve_with(&common, &serve).await,
        Some(Command::Serve(own)) => serve_with(&common, &merge(serve, own)).await,
        Some(Command::Migrate) => {
            let config = Config::load(&common, &serve)?;
            let _telemetry = init_tracing(&config)?;
            let store = crate::server::open_store(&config).await?;
            store.close().await;
            writeln!(std::io::stderr(), "migrations applied")?;
            Ok(())
        }
        Some(Command::Import {
            file,
            symbol,
            interval,
            source,
            skip_bad_rows,
        }) => {
            let config = Config::load(&common, &serve)?;
            let store = crate::server::open_store(&config).await?;
            let began = std::time::Instant::now();
            let result = crate::import::run(
                store.as_ref(),
                &file,
                &symbol,
                interval,
                &source,
                skip_bad_rows,
            )
            .await;
            store.close().await;
            let written = result?;
            writeln!(
                std::io::stderr(),
                "imported {written} {interval} candles for {symbol} in {:.1}s",
                began.elapsed().as_secs_f64()
            )?;
            Ok(())
        }
        Some(Command::Backfill(args)) => {
            let config = Config::load(&common, &serve)?;
            let _telemetry = init_tracing(&config)?;
            let store = crate::server::open_store(&config).await?;
            let result = crate::backfill::run(store.as_ref(), &args, &config.symbols).await;
            store.close().await;
            result
        }
        Some(Command::Ingest) => {
            let config = Config::load(&common, &serve)?;
            let _telemetry = init_tracing(&config)?;
            crate::ingest::run(config).await
        }
        Some(Command::Keys { command }) => {
            let config = Config::load(&common, &serve)?;
            let _telemetry = init_tracing(&config)?;
            let pepper = crate::pepper::load(config.key_pepper.as_ref(), &config.database_url)?;
            let store = crate::server::open_store(&config).await?;
            let keyring = marketd_api::auth::Keyring::new(std::sync::Arc::clone(&store), pepper);
            let result = crate::keys::run(&keyring, command).await;
            store.close().await;
            result
        }
        Some(Command::Openapi) => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", openapi_json())?;
            Ok(())
        }
        Some(Command::Config {
            command: ConfigCommand::Check(own),
        }) => {
            let config = Config::load(&common, &merge(serve, own))?;
            write!(std::io::stdout().lock(), "{}", config.describe())?;
            Ok(())
        }
    }
}

/// Flags given after `serve` win over the same flags given before it.
fn merge(outer: ServeOverrides, inner: ServeOverrides) -> ServeOverrides {
    ServeOverrides {
        listen: inner.listen.or(outer.listen),
        metrics_listen: inner.metrics_listen.or(outer.metrics_listen),
        demo: inner.demo || (outer.demo && !inner.no_demo),
        no_demo: inner.no_demo || (outer.no_demo && !inner.demo),
        shutdown_timeout_secs: inner.shutdown_timeout_secs.or(outer.shutdown_timeout_secs),
        max_connections: inner.max_connections.or(outer.max_connections),
        trusted_proxies: inner.trusted_proxies.or(outer.trusted_proxies),
        security_webhook_url: inner.security_webhook_url.or(outer.security_webhook_url),
        auth_failures_per_minute: inner
            .auth_failures_per_minute
            .or(outer.auth_failures_per_minute),
        price_fresh_secs: inner.price_fresh_secs.or(outer.price_fresh_secs),
        response_cache_ms: inner.response_cache_ms.or(outer.response_cache_ms),
        price_divergence_pct: inner.price_divergence_pct.or(outer.price_divergence_pct),
        ingest: inner.ingest.or(outer.ingest),
        handler_timeout_secs: inner.handler_timeout_secs.or(outer.handler_timeout_secs),
        body_timeout_secs: inner.body_timeout_secs.or(outer.body_timeout_secs),
        header_read_timeout_secs: inner
            .header_read_timeout_secs
            .or(outer.header_read_timeout_secs),
        connection_limit: inner.connection_limit.or(outer.connection_limit),
        max_header_bytes: inner.max_header_bytes.or(outer.max_header_bytes),
        body_limit_bytes: inner.body_limit_bytes.or(outer.body_limit_bytes),
        cors_origins: inner.cors_origins.or(outer.cors_origins),
        tls_cert: inner.tls_cert.or(outer.tls_cert),
        tls_key: inner.tls_key.or(outer.tls_key),
    }
}

async fn serve_with(common: &Overrides, serve: &ServeOverrides) -> anyhow::Result<()> {
    let config = Config::load(common, serve)?;
    let _telemetry = init_tracing(&config)?;
    crate::server::serve(config).await
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    marketd_api::openapi().to_pretty_json().unwrap_or_default()
}
