//! Kraken: OHLC entries resumed with the `last` cursor. Kraken serves only its 720 most
//! recent entries per interval, whatever `since` says, so older history is not available
//! here; and its weekly buckets are not Monday-aligned, so weeks are built from days.
//! Latest prices of every pair come from one ticker request.

use std::time::Duration;

use async_trait::async_trait;
use marketd_domain::{Interval, LatestPrice};

use super::{
    CandlePage, Exchange, Source, SourceError, aggregate_candles, first_window, keep_between,
    names_on, now_ms, prices_for_us,
};
use crate::exchange::kraken::{self, Ohlc};
use crate::exchange::{PayloadError, SymbolTable};
use crate::resilience::{Call, RateLimit, SourceStats, Upstream, UpstreamConfig};

/// Kraken's public REST API.
#[derive(Debug)]
pub struct Kraken {
    http: Upstream,
    symbols: SymbolTable,
}

impl Kraken {
    pub const BASE_URL: &'static str = "https://api.kraken.com";
    /// The most entries Kraken returns for one pair and interval.
    pub const MAX_ENTRIES: i64 = 720;

    /// Defaults sized to Kraken's public limit of about one request a second.
    pub fn default_config() -> UpstreamConfig {
        UpstreamConfig {
            rate_limit: Some(RateLimit {
                cells: 1,
                per: Duration::from_secs(1),
                burst: 1,
            }),
            ..UpstreamConfig::new(Self::BASE_URL)
        }
    }

    pub fn new(config: UpstreamConfig, symbols: SymbolTable) -> Result<Self, SourceError> {
        Ok(Self {
            http: Upstream::new(kraken::SOURCE, config)?,
            symbols,
        })
    }

    /// The interval requested for `interval`: itself, except weeks, built from days.
    pub fn fetched_interval(interval: Interval) -> Interval {
        match interval {
            Interval::W1 => Interval::D1,
            other => other,
        }
    }

    /// Kraken answers 200 to everything and puts failures in its `error` array; the ones
    /// that mean "busy" or "slow down" are worth retrying.
    fn upstream_error(&self, error: PayloadError) -> SourceError {
        match error {
            PayloadError::Upstream(m) if m.contains("EService:") => SourceError::Unavailable(m),
            PayloadError::Upstream(m)
                if m.contains("EAPI:Rate limit") || m.contains("EGeneral:Too many requests") =>
            {
                SourceError::RateLimited {
                    status: 200,
                    retry_after: self.http.config().default_pause,
                }
            }
            other => other.into(),
        }
    }

    /// An OHLC answer, which must be for the pair asked.
    fn parse(&self, body: &[u8], interval: Interval, asked: &str) -> Result<Ohlc, SourceError> {
        let ohlc =
            kraken::parse_ohlc(body, interval, now_ms()).map_err(|e| self.upstream_error(e))?;
        let answered = self.symbols.by_source_name(Exchange::Kraken, &ohlc.pair);
        if answered.is_none_or(|asset| asset.kraken.as_deref() != Some(asked)) {
            return Err(PayloadError::Shape(format!(
                "asked for {asked}, the answer is for {}",
                ohlc.pair
            ))
            .into());
        }
        Ok(ohlc)
    }
}

#[async_trait]
impl Source for Kraken {
    fn name(&self) -> &'static str {
        kraken::SOURCE
    }

    async fn candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<CandlePage, SourceError> {
        let pair = self
            .symbols
            .source_name(Exchange::Kraken, symbol)
            .ok_or_else(|| SourceError::UnknownSymbol(symbol.to_owned()))?;
        let fine = Self::fetched_interval(interval);
        // Kraken pages by its own cursor, so the window is the whole remaining range.
        let Some(range) = first_window(interval, start, end, now_ms(), i64::MAX) else {
            return Ok(CandlePage::default());
        };
        let call = Call {
            path: &["0", "public", "OHLC"],
            route: "/0/public/OHLC",
            query: vec![
                ("pair", pair.to_owned()),
                ("interval", (fine.millis() / 60_000).to_string()),
                // Entries come after `since`; a second earlier includes the bucket at the
                // start whether Kraken compares strictly or not.
                ("since", (range.start / 1000 - 1).to_string()),
            ],
            cost: 1,
        };
        let ohlc = self
            .http
            .get(&call, |body| self.parse(body, fine, pair))
            .await?;
        let last = ohlc.last.saturating_mul(1000);
        // `last` is the newest committed entry; anything after it is the still-open bucket,
        // and Kraken sends that only at the head of its data.
        let at_head = ohlc.candles.rows.iter().any(|c| c.open_time > last);
        let covered = if at_head {
            range.end
        } else {
            last + fine.millis()
        };
        // An aggregated bucket is complete only up to the last whole one the page covers;
        // the rest comes whole with the next page.
        let boundary = match interval.bucket_start(covered) {
            b if fine != interval && !at_head && b > range.start => b,
            _ => covered,
        }
        .min(range.end);
        let (rows, rejected) = keep_between(&self.http, ohlc.candles, range.start, boundary);
        let candles = if fine == interval {
            rows
        } else {
            aggregate_candles(interval, kraken::SOURCE, rows)
        };
        Ok(CandlePage {
            candles,
            rejected,
            next_start: (!at_head && boundary > range.start && boundary < range.end)
                .then_some(boundary),
        })
    }

    /// Every pair in one request. Kraken's ticker has no 24-hour open: `open_24h` is the
    /// open at 00:00 UTC today (see [`kraken::parse_ticker`]).
    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError> {
        let pairs = names_on(&self.symbols, Exchange::Kraken, symbols);
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let call = Call {
            path: &["0", "public", "Ticker"],
            route: "/0/public/Ticker",
            query: vec![("pair", pairs.join(","))],
            cost: 1,
        };
        let parsed = self
            .http
            .get(&call, |body| {
                kraken::parse_ticker(body, now_ms()).map_err(|e| self.upstream_error(e))
            })
            .await?;
        Ok(prices_for_us(
            &self.http,
            &self.symbols,
            Exchange::Kraken,
            parsed,
        ))
    }

    fn stats(&self) -> SourceStats {
        self.http.stats()
    }
}
