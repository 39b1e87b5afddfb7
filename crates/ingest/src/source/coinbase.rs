//! Coinbase Exchange: product candles 300 at a time. Coinbase has no 4h or 1w buckets;
//! those are built from 1h and 1d candles.

use std::time::Duration;

use async_trait::async_trait;
use marketd_domain::{Interval, LatestPrice, format_rfc3339_ms};

use super::{
    CandlePage, Exchange, Source, SourceError, aggregate_candles, first_window, keep_between,
    now_ms,
};
use crate::exchange::{SymbolTable, coinbase};
use crate::resilience::{Call, RateLimit, SourceStats, Upstream, UpstreamConfig};

/// Coinbase Exchange's public REST API.
#[derive(Debug)]
pub struct Coinbase {
    http: Upstream,
    symbols: SymbolTable,
}

impl Coinbase {
    pub const BASE_URL: &'static str = "https://api.exchange.coinbase.com";
    /// Buckets per request: more and Coinbase refuses the request.
    pub const PAGE_SIZE: i64 = 300;

    /// Defaults sized to Coinbase's published limit of 10 public requests a second per
    /// address; 8 leaves room for anything else behind it.
    pub fn default_config() -> UpstreamConfig {
        UpstreamConfig {
            rate_limit: Some(RateLimit {
                cells: 8,
                per: Duration::from_secs(1),
                burst: 8,
            }),
            ..UpstreamConfig::new(Self::BASE_URL)
        }
    }

    pub fn new(config: UpstreamConfig, symbols: SymbolTable) -> Result<Self, SourceError> {
        Ok(Self {
            http: Upstream::new(coinbase::SOURCE, config)?,
            symbols,
        })
    }

    /// The granularity requested for `interval`: itself when Coinbase offers it, else the
    /// finer one it is aggregated from.
    pub fn fetched_interval(interval: Interval) -> Interval {
        match interval {
            Interval::H4 => Interval::H1,
            Interval::W1 => Interval::D1,
            other => other,
        }
    }
}

#[async_trait]
impl Source for Coinbase {
    fn name(&self) -> &'static str {
        coinbase::SOURCE
    }

    async fn candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<CandlePage, SourceError> {
        let product = self
            .symbols
            .source_name(Exchange::Coinbase, symbol)
            .ok_or_else(|| SourceError::UnknownSymbol(symbol.to_owned()))?;
        let fine = Self::fetched_interval(interval);
        // Whole target buckets per page, so no aggregated bucket is split between pages.
        let per_bucket = interval.millis() / fine.millis();
        let span = Self::PAGE_SIZE / per_bucket * per_bucket * fine.millis();
        let Some(window) = first_window(interval, start, end, now_ms(), span) else {
            return Ok(CandlePage::default());
        };
        let path = ["products", product, "candles"];
        let call = Call {
            path: &path,
            route: "/products/{product}/candles",
            query: vec![
                ("granularity", (fine.millis() / 1000).to_string()),
                ("start", format_rfc3339_ms(window.start)),
                // Coinbase's end is inclusive: name the last bucket, or get 301 and a refusal.
                ("end", format_rfc3339_ms(window.end - fine.millis())),
            ],
            cost: 1,
        };
        let parsed = self
            .http
            .get(&call, |body| {
                Ok(coinbase::parse_candles(body, fine, now_ms())?)
            })
            .await?;
        let (rows, rejected) = keep_between(&self.http, parsed, window.start, window.end);
        let candles = if fine == interval {
            rows
        } else {
            aggregate_candles(interval, coinbase::SOURCE, rows)
        };
        Ok(CandlePage {
            candles,
            rejected,
            next_start: window.next,
        })
    }

    /// Not offered yet: the ticker carries no 24-hour open, and the 24-hour stats carry no
    /// time. CoinGecko and Binance serve prices.
    async fn latest_prices(&self, _symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError> {
        Err(SourceError::Unsupported)
    }

    fn stats(&self) -> SourceStats {
        self.http.stats()
    }
}
