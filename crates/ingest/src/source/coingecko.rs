//! CoinGecko: latest prices of many coins in one request. It has no candles we use.

use std::time::Duration;

use async_trait::async_trait;
use marketd_domain::{Interval, LatestPrice};

use super::{CandlePage, Exchange, Source, SourceError, names_on, prices_for_us};
use crate::exchange::{SymbolTable, coingecko};
use crate::resilience::{Call, RateLimit, SourceStats, Upstream, UpstreamConfig};

/// The currency every price is quoted in.
const VS_CURRENCY: &str = "usd";

/// CoinGecko's public REST API.
#[derive(Debug)]
pub struct CoinGecko {
    http: Upstream,
    symbols: SymbolTable,
}

impl CoinGecko {
    pub const BASE_URL: &'static str = "https://api.coingecko.com";

    /// Defaults sized to the free plan's 30 calls a minute.
    pub fn default_config() -> UpstreamConfig {
        UpstreamConfig {
            rate_limit: Some(RateLimit {
                cells: 30,
                per: Duration::from_secs(60),
                burst: 1,
            }),
            ..UpstreamConfig::new(Self::BASE_URL)
        }
    }

    pub fn new(config: UpstreamConfig, symbols: SymbolTable) -> Result<Self, SourceError> {
        Ok(Self {
            http: Upstream::new(coingecko::SOURCE, config)?,
            symbols,
        })
    }
}

#[async_trait]
impl Source for CoinGecko {
    fn name(&self) -> &'static str {
        coingecko::SOURCE
    }

    async fn candles(
        &self,
        _symbol: &str,
        _interval: Interval,
        _start: i64,
        _end: i64,
    ) -> Result<CandlePage, SourceError> {
        Err(SourceError::Unsupported)
    }

    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError> {
        let ids = names_on(&self.symbols, Exchange::CoinGecko, symbols);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let call = Call {
            path: &["api", "v3", "simple", "price"],
            route: "/api/v3/simple/price",
            query: vec![
                ("ids", ids.join(",")),
                ("vs_currencies", VS_CURRENCY.to_owned()),
                ("include_24hr_vol", "true".to_owned()),
                ("include_24hr_change", "true".to_owned()),
                ("include_last_updated_at", "true".to_owned()),
            ],
            cost: 1,
        };
        let parsed = self
            .http
            .get(&call, |body| {
                Ok(coingecko::parse_simple_price(body, VS_CURRENCY)?)
            })
            .await?;
        Ok(prices_for_us(
            &self.http,
            &self.symbols,
            Exchange::CoinGecko,
            parsed,
        ))
    }

    fn stats(&self) -> SourceStats {
        self.http.stats()
    }
}
