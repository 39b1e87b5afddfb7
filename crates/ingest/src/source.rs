//! Exchanges behind one trait: candles page by page over a time range, and latest prices.
//!
//! Each implementation maps our symbols to the exchange's names, builds the exchange's
//! requests, sends them through its own [`Upstream`](crate::resilience::Upstream) and
//! parses the answers with the pure parsers of [`crate::exchange`]. Nothing here stores
//! anything: pages go back to the caller, who decides what to keep.

pub mod binance;
pub mod coinbase;
pub mod coingecko;
pub mod kraken;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use marketd_domain::{Bar, Candle, Interval, LatestPrice};

pub use crate::exchange::Rejected;
use crate::exchange::symbols::Source as Exchange;
use crate::exchange::{Parsed, PayloadError, SymbolTable};
use crate::resilience::SourceStats;

pub use binance::Binance;
pub use coinbase::Coinbase;
pub use coingecko::CoinGecko;
pub use kraken::Kraken;

/// An upstream of market data.
#[async_trait]
pub trait Source: Send + Sync {
    /// `"binance"`, `"coinbase"`, `"kraken"`, `"coingecko"`: the name stored with its data.
    fn name(&self) -> &'static str;

    /// Closed and open candles with `open_time` in `[start, end)` (Unix ms), ascending, at
    /// most one upstream page per call. `Ok` carries the rows refused one by one; `Err` is
    /// for transport and HTTP failures and for payloads refused whole.
    async fn candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<CandlePage, SourceError>;

    /// The latest 24-hour snapshot of each symbol this source lists; symbols it does not
    /// list are left out rather than failing the others.
    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError>;

    /// Request counters and circuit state, for metrics and readiness.
    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }
}

/// One page of candles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandlePage {
    pub candles: Vec<Candle>,
    /// Rows the upstream sent that failed a check, with the reason. Indexes are positions
    /// in the upstream's payload.
    pub rejected: Vec<Rejected>,
    /// Where the next page starts; `None` when the range is done.
    pub next_start: Option<i64>,
}

/// Why a call to a source failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("this source does not serve that")]
    Unsupported,
    #[error("{0} is not listed on this source")]
    UnknownSymbol(String),
    #[error("the request timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the connection failed: {0}")]
    Transport(String),
    #[error("the upstream answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the upstream is overloaded: {0}")]
    Unavailable(String),
    #[error("rate limited (HTTP {status}); the source is paused for {retry_after:?}")]
    RateLimited { status: u16, retry_after: Duration },
    #[error("the source is paused by the upstream for another {remaining:?}")]
    Paused { remaining: Duration },
    #[error("the source's circuit is open; next probe in {retry_in:?}")]
    CircuitOpen { retry_in: Duration },
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("invalid source configuration: {0}")]
    Config(String),
}

impl SourceError {
    /// Worth another attempt within the same call: the failure is likely transient and the
    /// request was not at fault. 418 is a ban that lengthens if we keep asking.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Timeout
            | SourceError::Connect(_)
            | SourceError::Transport(_)
            | SourceError::Unavailable(_) => true,
            SourceError::Status { status, .. } => *status >= 500,
            SourceError::RateLimited { status, .. } => *status != 418,
            _ => false,
        }
    }
}

/// Walks every page of `[start, end)` and returns them joined. Suits bounded ranges; a
/// long backfill should walk page by page and store as it goes.
pub async fn candles_in_range(
    source: &dyn Source,
    symbol: &str,
    interval: Interval,
    start: i64,
    end: i64,
) -> Result<CandlePage, SourceError> {
    let mut all = CandlePage::default();
    let mut from = start;
    loop {
        let page = source.candles(symbol, interval, from, end).await?;
        all.candles.extend(page.candles);
        all.rejected.extend(page.rejected);
        match page.next_start {
            // A cursor that does not move would loop forever.
            Some(next) if next > from => from = next,
            _ => return Ok(all),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The stretch of a requested range that one upstream page covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
    /// The start of the following page, if the range goes on past this one.
    pub next: Option<i64>,
}

/// Cuts the first page of at most `span` ms out of `[start, end)`. Both ends are rounded
/// up to buckets of `interval`, which keeps exactly the buckets whose open time lies in the
/// range and lets an aggregated bucket be built from all of its finer rows. The end is
/// also clipped after the bucket open at `now`: later buckets do not exist yet, and
/// without the clip a far-future end would page forever. `None` when nothing is left.
pub(crate) fn first_window(
    interval: Interval,
    start: i64,
    end: i64,
    now: i64,
    span: i64,
) -> Option<Window> {
    let open_bucket_end = interval.bucket_start(now) + interval.millis();
    // Clamped before rounding so the rounding cannot overflow; no market data predates 1970.
    let start = interval.ceil(start.clamp(0, open_bucket_end));
    let end = interval.ceil(end.min(open_bucket_end));
    if start >= end {
        return None;
    }
    let window_end = end.min(start.saturating_add(span));
    Some(Window {
        start,
        end: window_end,
        next: (window_end < end).then_some(window_end),
    })
}

/// Keeps the parsed candles inside `[start, end)` and counts the outcome. Rows outside were
/// not asked for (Coinbase may send a few before `start`) and are dropped silently.
pub(crate) fn keep_between(
    upstream: &crate::resilience::Upstream,
    parsed: Parsed<Candle>,
    start: i64,
    end: i64,
) -> (Vec<Candle>, Vec<Rejected>) {
    let candles: Vec<Candle> = parsed
        .rows
        .into_iter()
        .filter(|c| (start..end).contains(&c.open_time))
        .collect();
    upstream.record_rows(candles.len(), parsed.rejected.len());
    (candles, parsed.rejected)
}

/// Our symbols' names on `exchange`, in order, without duplicates; unlisted ones left out.
pub(crate) fn names_on<'a>(
    table: &'a SymbolTable,
    exchange: Exchange,
    symbols: &[String],
) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::with_capacity(symbols.len());
    for name in symbols
        .iter()
        .filter_map(|s| table.source_name(exchange, s))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Renames parsed prices from the exchange's names to ours and counts the outcome. A row
/// for a name we do not know is refused: we never asked for it.
pub(crate) fn prices_for_us(
    upstream: &crate::resilience::Upstream,
    table: &SymbolTable,
    exchange: Exchange,
    parsed: Parsed<LatestPrice>,
) -> Vec<LatestPrice> {
    let mut rejected = parsed.rejected.len();
    for refusal in &parsed.rejected {
        tracing::warn!(source = upstream.name(), reason = %refusal.reason, "price refused");
    }
    let mut prices = Vec::with_capacity(parsed.rows.len());
    for mut price in parsed.rows {
        match table.by_source_name(exchange, &price.symbol) {
            Some(asset) => {
                price.symbol.clone_from(&asset.symbol);
                prices.push(price);
            }
            None => {
                tracing::warn!(source = upstream.name(), name = %price.symbol, "price for an unknown name");
                rejected += 1;
            }
        }
    }
    prices.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    upstream.record_rows(prices.len(), rejected);
    prices
}

/// Folds ascending candles of a finer interval into `target` buckets.
pub(crate) fn aggregate_candles(target: Interval, source: &str, fine: Vec<Candle>) -> Vec<Candle> {
    let bars = fine.into_iter().map(|candle| Bar {
        candle,
        source: source.to_owned(),
        count: 1,
    });
    marketd_domain::aggregate(target, bars)
        .into_iter()
        .map(|bar| bar.candle)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn windows_round_the_start_up_and_clip_at_the_open_bucket() {
        let now = 1_000 * MIN + 30_000;
        assert_eq!(
            first_window(Interval::M1, 10 * MIN + 1, 2_000 * MIN, now, 100 * MIN),
            Some(Window {
                start: 11 * MIN,
                end: 111 * MIN,
                next: Some(111 * MIN),
            })
        );
        // The open bucket (1000) is the last one served, so the range ends at 1001.
        assert_eq!(
            first_window(Interval::M1, 950 * MIN, i64::MAX, now, 100 * MIN),
            Some(Window {
                start: 950 * MIN,
                end: 1_001 * MIN,
                next: None,
            })
        );
        assert_eq!(first_window(Interval::M1, 5 * MIN, 5 * MIN, now, MIN), None);
        // A 4h bucket opening before the end is whole, however early the end falls in it.
        let h4 = Interval::H4.millis();
        assert_eq!(
            first_window(Interval::H4, h4, 2 * h4 + 1, now, 100 * h4),
            Some(Window {
                start: h4,
                end: 3 * h4,
                next: None,
            })
        );
        assert_eq!(
            first_window(Interval::M1, 2_000 * MIN, 3_000 * MIN, now, MIN),
            None
        );
    }

    #[test]
    fn retryable_errors_are_transient_ones() {
        let status = |status| SourceError::Status {
            status,
            message: String::new(),
        };
        let limited = |status| SourceError::RateLimited {
            status,
            retry_after: Duration::ZERO,
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(limited(429).is_retryable());
        assert!(!limited(418).is_retryable());
        assert!(SourceError::Timeout.is_retryable());
        assert!(!SourceError::TooLarge { limit: 1 }.is_retryable());
        assert!(!SourceError::Payload(PayloadError::NotJson(String::new())).is_retryable());
    }
}
