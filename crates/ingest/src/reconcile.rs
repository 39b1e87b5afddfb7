//! One latest price per symbol out of several sources' quotes.
//!
//! Each source's newest quote is kept with the time it arrived. A quote is fresh for
//! [`ReconcileConfig::fresh_for`]; the price is the median of the fresh quotes, after
//! leaving out any that diverges from the median by more than
//! [`ReconcileConfig::max_divergence`] (logged). When only two sources are fresh and they
//! disagree, neither is the outlier by arithmetic: the one of higher priority is kept.
//! When no quote is fresh nothing new is stored, so the API keeps serving the last stored
//! price, marked stale by its age.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use marketd_domain::LatestPrice;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconcileConfig {
    /// How long a quote counts after it arrived.
    pub fresh_for: Duration,
    /// Largest relative distance from the median a quote may have and still count, e.g.
    /// `0.02` for 2 %.
    pub max_divergence: f64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(120),
            max_divergence: 0.02,
        }
    }
}

/// A source's quote for one symbol. `priority` orders sources (0 first) as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub priority: usize,
    pub price: LatestPrice,
    /// When marketd received it, Unix ms.
    pub received_at: i64,
}

/// A quote left out because it diverged from the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub source: String,
    pub price: f64,
    /// Relative distance from the median of the fresh quotes.
    pub divergence: f64,
}

/// The reconciled price and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub price: LatestPrice,
    pub outliers: Vec<Outlier>,
}

/// Reconciles `quotes` (any order, one per source) as of `now`; `None` when none is fresh.
///
/// The price is the median of the quotes kept; the 24-hour figures come from the kept
/// quote of highest priority, since they are only comparable within one source; `as_of`
/// is the newest kept observation; `source` names every kept source, by priority, joined
/// with `+`.
pub fn reconcile(quotes: &[Quote], now: i64, config: &ReconcileConfig) -> Option<Reconciled> {
    let fresh_ms = i64::try_from(config.fresh_for.as_millis()).unwrap_or(i64::MAX);
    let mut fresh: Vec<&Quote> = quotes
        .iter()
        .filter(|q| now.saturating_sub(q.received_at) <= fresh_ms)
        .filter(|q| q.price.price.is_finite() && q.price.price > 0.0)
        .collect();
    fresh.sort_by_key(|q| q.priority);
    let center = median(fresh.iter().map(|q| q.price.price))?;
    let divergence = |q: &Quote| (q.price.price - center).abs() / center;
    let (mut kept, mut left_out): (Vec<&Quote>, Vec<&Quote>) = fresh
        .iter()
        .partition(|q| divergence(q) <= config.max_divergence);
    if kept.is_empty() {
        // Two quotes far apart (more cannot all diverge from their median): trust priority.
        kept.push(fresh[0]);
        left_out.retain(|q| q.priority != fresh[0].priority);
    }
    let lead = &kept[0].price;
    let price = median(kept.iter().map(|q| q.price.price))?;
    Some(Reconciled {
        price: LatestPrice {
            symbol: lead.symbol.clone(),
            price,
            as_of: kept
                .iter()
                .map(|q| q.price.as_of)
                .max()
                .unwrap_or(lead.as_of),
            source: kept
                .iter()
                .map(|q| q.price.source.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            ..lead.clone()
        },
        outliers: left_out
            .iter()
            .map(|q| Outlier {
                source: q.price.source.clone(),
                price: q.price.price,
                divergence: divergence(q),
            })
            .collect(),
    })
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The newest quote of every (symbol, source), shared by the price pollers of all sources.
#[derive(Debug, Default)]
pub struct PriceBoard {
    config: ReconcileConfig,
    quotes: Mutex<HashMap<String, Vec<Quote>>>,
}

impl PriceBoard {
    pub fn new(config: ReconcileConfig) -> Self {
        Self {
            config,
            quotes: Mutex::default(),
        }
    }

    /// Records `quote` (replacing the same source's older one) and reconciles its symbol.
    pub fn offer(&self, quote: Quote, now: i64) -> Option<Reconciled> {
        let mut quotes = self
            .quotes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let of_symbol = quotes.entry(quote.price.symbol.clone()).or_default();
        of_symbol.retain(|q| q.priority != quote.priority);
        of_symbol.push(quote);
        reconcile(of_symbol, now, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn quote(priority: usize, source: &str, price: f64, age_s: i64) -> Quote {
        Quote {
            priority,
            price: LatestPrice {
                symbol: "BTC".into(),
                price,
                open_24h: price * 0.9 + priority as f64,
                high_24h: price * 1.1,
                low_24h: price * 0.8,
                volume_24h: 10.0 * (priority + 1) as f64,
                as_of: NOW - age_s * 1_000 - 500,
                source: source.into(),
            },
            received_at: NOW - age_s * 1_000,
        }
    }

    fn run(quotes: &[Quote]) -> Option<Reconciled> {
        reconcile(quotes, NOW, &ReconcileConfig::default())
    }

    #[test]
    fn one_fresh_quote_is_the_price() {
        let got = run(&[quote(0, "binance", 100.0, 1)]).unwrap();
        assert_eq!(got.price, quote(0, "binance", 100.0, 1).price);
        assert!(got.outliers.is_empty());
    }

    #[test]
    fn the_median_of_agreeing_sources_with_the_leaders_day_figures() {
        let quotes = [
            quote(2, "coingecko", 100.4, 3),
            quote(0, "binance", 100.0, 2),
            quote(1, "coinbase", 100.2, 1),
        ];
        let got = run(&quotes).unwrap();
        assert_eq!(got.price.price, 100.2);
        assert_eq!(got.price.source, "binance+coinbase+coingecko");
        assert_eq!(got.price.open_24h, quotes[1].price.open_24h);
        assert_eq!(got.price.volume_24h, quotes[1].price.volume_24h);
        assert_eq!(
            got.price.as_of, quotes[2].price.as_of,
            "the newest observation"
        );
        let even = run(&quotes[1..]).unwrap();
        assert!((even.price.price - 100.1).abs() < 1e-9);
    }

    #[test]
    fn a_diverging_source_is_left_out_and_named() {
        let quotes = [
            quote(0, "binance", 100.0, 1),
            quote(1, "coinbase", 100.5, 1),
            quote(2, "coingecko", 120.0, 1),
        ];
        let got = run(&quotes).unwrap();
        assert!((got.price.price - 100.25).abs() < 1e-9);
        assert_eq!(got.price.source, "binance+coinbase");
        assert_eq!(got.outliers.len(), 1);
        assert_eq!(got.outliers[0].source, "coingecko");
        assert!((got.outliers[0].divergence - 19.5 / 100.5).abs() < 1e-9);
    }

    #[test]
    fn two_disagreeing_sources_keep_the_one_of_higher_priority() {
        let quotes = [quote(1, "coinbase", 90.0, 1), quote(0, "binance", 110.0, 1)];
        let got = run(&quotes).unwrap();
        assert_eq!(
            (got.price.price, got.price.source.as_str()),
            (110.0, "binance")
        );
        assert_eq!(got.outliers.len(), 1);
        assert_eq!(got.outliers[0].source, "coinbase");
    }

    #[test]
    fn stale_and_broken_quotes_do_not_count() {
        let quotes = [
            quote(0, "binance", 100.0, 600),
            quote(1, "coinbase", 105.0, 1),
            quote(2, "kraken", f64::NAN, 1),
            quote(3, "coingecko", 0.0, 1),
        ];
        let got = run(&quotes).unwrap();
        assert_eq!(
            (got.price.price, got.price.source.as_str()),
            (105.0, "coinbase")
        );
        assert!(run(&quotes[..1]).is_none(), "nothing fresh, nothing new");
    }

    #[test]
    fn the_board_keeps_one_quote_per_source() {
        let board = PriceBoard::new(ReconcileConfig::default());
        board.offer(quote(0, "binance", 100.0, 5), NOW);
        board.offer(quote(1, "coinbase", 101.0, 5), NOW);
        let got = board.offer(quote(0, "binance", 102.0, 1), NOW).unwrap();
        assert!((got.price.price - 101.5).abs() < 1e-9);
        assert_eq!(got.price.source, "binance+coinbase");
    }
}
