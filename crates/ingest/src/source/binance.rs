//! Binance spot: klines a thousand at a time, and the 24-hour ticker.

use std::time::Duration;

use async_trait::async_trait;
use marketd_domain::{Interval, LatestPrice};

use super::{
    CandlePage, Exchange, Source, SourceError, first_window, keep_between, names_on, now_ms,
    prices_for_us,
};
use crate::exchange::{SymbolTable, binance};
use crate::resilience::{Call, RateLimit, SourceStats, Upstream, UpstreamConfig, WeightLimit};

/// Binance spot's REST API.
#[derive(Debug)]
pub struct Binance {
    http: Upstream,
    symbols: SymbolTable,
}

impl Binance {
    pub const BASE_URL: &'static str = "https://api.binance.com";
    /// Klines per request: the endpoint's maximum.
    pub const PAGE_SIZE: i64 = 1000;
    /// Request weight of one klines call.
    const KLINES_WEIGHT: u32 = 2;
    /// The published budget: 6000 request weight per minute per IP address.
    const WEIGHT_PER_MINUTE: u32 = 6000;

    /// Defaults sized to Binance's published limits. The steady budget is 80 % of the
    /// 6000 weight a minute, leaving room for anything else behind the same address; the
    /// used-weight header stops us at 90 % whatever the cause.
    pub fn default_config() -> UpstreamConfig {
        UpstreamConfig {
            rate_limit: Some(RateLimit {
                cells: Self::WEIGHT_PER_MINUTE / 5 * 4,
                per: Duration::from_secs(60),
                burst: 200,
            }),
            weight_limit: Some(WeightLimit {
                header: "x-mbx-used-weight-1m",
                soft_limit: Self::WEIGHT_PER_MINUTE / 10 * 9,
                window: Duration::from_secs(60),
            }),
            ..UpstreamConfig::new(Self::BASE_URL)
        }
    }

    pub fn new(config: UpstreamConfig, symbols: SymbolTable) -> Result<Self, SourceError> {
        Ok(Self {
            http: Upstream::new(binance::SOURCE, config)?,
            symbols,
        })
    }

    /// The 24-hour ticker's weight grows with the number of symbols asked for.
    fn ticker_weight(symbols: usize) -> u32 {
        match symbols {
            0..=20 => 2,
            21..=100 => 40,
            _ => 80,
        }
    }
}

#[async_trait]
impl Source for Binance {
    fn name(&self) -> &'static str {
        binance::SOURCE
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
            .source_name(Exchange::Binance, symbol)
            .ok_or_else(|| SourceError::UnknownSymbol(symbol.to_owned()))?;
        let span = Self::PAGE_SIZE * interval.millis();
        let Some(window) = first_window(interval, start, end, now_ms(), span) else {
            return Ok(CandlePage::default());
        };
        let call = Call {
            path: &["api", "v3", "klines"],
            route: "/api/v3/klines",
            query: vec![
                ("symbol", pair.to_owned()),
                ("interval", interval.as_str().to_owned()),
                ("startTime", window.start.to_string()),
                // Binance's endTime is inclusive.
                ("endTime", (window.end - 1).to_string()),
                ("limit", Self::PAGE_SIZE.to_string()),
            ],
            cost: Self::KLINES_WEIGHT,
        };
        let parsed = self
            .http
            .get(&call, |body| {
                Ok(binance::parse_klines(body, interval, now_ms())?)
            })
            .await?;
        let (candles, rejected) = keep_between(&self.http, parsed, window.start, window.end);
        Ok(CandlePage {
            candles,
            rejected,
            next_start: window.next,
        })
    }

    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError> {
        let pairs = names_on(&self.symbols, Exchange::Binance, symbols);
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(&pairs)
            .map_err(|e| SourceError::Config(format!("symbol list: {e}")))?;
        let call = Call {
            path: &["api", "v3", "ticker", "24hr"],
            route: "/api/v3/ticker/24hr",
            query: vec![("symbols", list)],
            cost: Self::ticker_weight(pairs.len()),
        };
        let parsed = self
            .http
            .get(&call, |body| Ok(binance::parse_ticker_24hr(body)?))
            .await?;
        Ok(prices_for_us(
            &self.http,
            &self.symbols,
            Exchange::Binance,
            parsed,
        ))
    }

    fn stats(&self) -> SourceStats {
        self.http.stats()
    }
}
