//! Coinbase Exchange: product candles 300 at a time, and latest prices from each
//! product's ticker and 24-hour stats. Coinbase has no 4h or 1w buckets; those are built
//! from 1h and 1d candles.

use std::time::Duration;

use async_trait::async_trait;
use marketd_domain::{Interval, LatestPrice, format_rfc3339_ms};

use serde_json::{Map, Value};

use super::{
    CandlePage, Exchange, Rejected, Source, SourceError, aggregate_candles, first_window,
    keep_between, names_on, now_ms, prices_for_us,
};
use crate::exchange::{Parsed, SymbolTable, coinbase};
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

    /// `GET /products/{product}/{what}` as a JSON object.
    async fn object(&self, product: &str, what: &str) -> Result<Map<String, Value>, SourceError> {
        let path = ["products", product, what];
        let route = match what {
            "ticker" => "/products/{product}/ticker",
            "stats" => "/products/{product}/stats",
            _ => "/products/{product}/{what}",
        };
        let call = Call {
            path: &path,
            route,
            query: Vec::new(),
            cost: 1,
        };
        self.http
            .get(&call, |body| Ok(coinbase::parse_object(body)?))
            .await
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

/// An answer about one product that says nothing about the others: its payload was
/// refused, or the request for it was (a product Coinbase no longer lists answers 404).
fn refuses_only_this_product(err: &SourceError) -> bool {
    match err {
        SourceError::Payload(_) => true,
        SourceError::Status { status, .. } => (400..500).contains(status) && *status != 429,
        _ => false,
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

    /// Two requests per product: the ticker for the last trade and its time, the stats for
    /// the 24-hour open, range and volume. A product whose answer is refused (an error
    /// envelope, a bad or missing value) is left out with its reason, and the others are
    /// kept; a failure of the upstream itself fails the call.
    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>, SourceError> {
        let products = names_on(&self.symbols, Exchange::Coinbase, symbols);
        let mut parsed = Parsed::default();
        for (index, product) in products.into_iter().enumerate() {
            let fetched = async {
                let ticker = self.object(product, "ticker").await?;
                let stats = self.object(product, "stats").await?;
                Ok::<_, SourceError>(coinbase::product_price(product, &ticker, &stats))
            };
            let reason = match fetched.await {
                Ok(Ok(price)) => {
                    parsed.rows.push(price);
                    continue;
                }
                Ok(Err(reason)) => reason,
                Err(err) if refuses_only_this_product(&err) => err.to_string(),
                Err(err) => return Err(err),
            };
            parsed.rejected.push(Rejected {
                index,
                reason: format!("{product}: {reason}"),
            });
        }
        Ok(prices_for_us(
            &self.http,
            &self.symbols,
            Exchange::Coinbase,
            parsed,
        ))
    }

    fn stats(&self) -> SourceStats {
        self.http.stats()
    }
}
