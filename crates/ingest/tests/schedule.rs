//! Scheduled ingest against the local fake exchange and real databases: the store follows
//! the upstream through new candles, an open candle that changes, and an outage. Timing is
//! never asserted exactly: each check waits for its condition with a generous deadline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

#[allow(
    dead_code,
    reason = "shared with the sources suite, which uses all of it"
)]
mod fake_upstream;

use std::sync::Arc;
use std::time::Duration;

use fake_upstream::{FakeUpstream, wall_ms};
use marketd_domain::{Candle, Interval};
use marketd_ingest::exchange::SymbolTable;
use marketd_ingest::reconcile::ReconcileConfig;
use marketd_ingest::resilience::{BreakerConfig, RetryPolicy, UpstreamConfig};
use marketd_ingest::schedule::{IngestJob, spawn};
use marketd_ingest::source::{Binance, CoinGecko, Coinbase, Source};
use marketd_storage::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000;
const PAIR: &str = "BTCUSDT";
const POLL: Duration = Duration::from_millis(50);
/// Far beyond what any condition needs on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

marketd_testkit::store_suite!(
    follows_new_and_changing_candles,
    catches_up_after_an_outage,
    a_failing_job_does_not_hold_up_the_others,
    shutdown_stops_every_task,
    falls_back_to_the_next_source_and_reconciles_prices,
    a_poll_fills_missing_minutes_from_the_fallback_and_records_the_rest,
);

/// Short retries and a breaker that stays closed, so a failed poll ends quickly.
fn quick(fake: &FakeUpstream) -> UpstreamConfig {
    UpstreamConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        breaker: BreakerConfig {
            failure_threshold: 1_000,
            cool_down: Duration::from_millis(50),
        },
        ..UpstreamConfig::new(fake.url())
    }
}

fn binance(fake: &FakeUpstream) -> Arc<dyn Source> {
    Arc::new(Binance::new(quick(fake), SymbolTable::default()).unwrap())
}

fn job(source: &Arc<dyn Source>, symbol: &str) -> IngestJob {
    IngestJob {
        sources: vec![Arc::clone(source)],
        symbol: symbol.to_owned(),
        interval: Interval::M1,
        depth_ms: 60 * MIN,
        poll_every: POLL,
    }
}

fn candle(open_time: i64, close: f64) -> Candle {
    Candle {
        open_time,
        open: 100.0,
        high: close.max(100.0) + 1.0,
        low: close.min(100.0) - 1.0,
        close,
        volume: 3.0,
    }
}

/// The closed minutes of the last half hour, ending before the open one; the candle
/// older than the job's depth must not be fetched.
fn recent_history() -> (Candle, Vec<Candle>) {
    let open_bucket = wall_ms() / MIN * MIN;
    let too_old = candle(open_bucket - 90 * MIN, 99.0);
    let recent = (1..=30)
        .rev()
        .map(|i| candle(open_bucket - i * MIN, 100.0 + i as f64))
        .collect();
    (too_old, recent)
}

async fn stored(store: &dyn Store, symbol: &str) -> Vec<Candle> {
    store
        .candles(symbol, Interval::M1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.candle)
        .collect()
}

/// Waits until the stored series is exactly `expected`.
async fn converges(store: &dyn Store, symbol: &str, expected: &[Candle]) {
    let waited = tokio::time::timeout(DEADLINE, async {
        while stored(store, symbol).await != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if waited.is_err() {
        let got = stored(store, symbol).await;
        panic!(
            "{symbol} never matched the upstream: {} stored, {} expected; last stored {:?}, last expected {:?}",
            got.len(),
            expected.len(),
            got.last(),
            expected.last()
        );
    }
}

async fn stop(shutdown: &CancellationToken, handles: Vec<JoinHandle<()>>) {
    shutdown.cancel();
    for handle in handles {
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("a task outlived shutdown")
            .expect("a task panicked");
    }
}

async fn follows_new_and_changing_candles(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let (too_old, mut upstream) = recent_history();
    let mut offered = vec![too_old];
    offered.extend(upstream.iter().copied());
    fake.candles(PAIR, "1m", offered.clone());
    fake.ticker(PAIR, 101.5, 100.0, wall_ms());
    let shutdown = CancellationToken::new();
    let handles = spawn(
        Arc::clone(&store),
        vec![job(&binance(&fake), "BTC")],
        ReconcileConfig::default(),
        shutdown.clone(),
    );

    converges(store.as_ref(), "BTC", &upstream).await;
    let price = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(price) = store
                .latest_prices(&["BTC".to_owned()])
                .await
                .unwrap()
                .pop()
            {
                return price;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the latest price was never stored");
    assert_eq!((price.price, price.source.as_str()), (101.5, "binance"));

    // The bucket now open starts trading, and its candle keeps changing until it closes.
    let open_bucket = wall_ms() / MIN * MIN;
    upstream.retain(|c| c.open_time < open_bucket);
    upstream.push(candle(open_bucket, 100.5));
    offered = upstream.clone();
    fake.candles(PAIR, "1m", offered);
    converges(store.as_ref(), "BTC", &upstream).await;

    if let Some(open) = upstream.last_mut() {
        *open = candle(open.open_time, 104.25);
    }
    fake.candles(PAIR, "1m", upstream.clone());
    converges(store.as_ref(), "BTC", &upstream).await;

    stop(&shutdown, handles).await;
}

async fn catches_up_after_an_outage(store: Arc<dyn Store>) {
    let mut fake = FakeUpstream::start().await;
    let (_, mut upstream) = recent_history();
    let open_bucket = wall_ms() / MIN * MIN;
    // The last closed minute arrives later, while the upstream is down.
    let late = upstream.pop().unwrap();
    fake.candles(PAIR, "1m", upstream.clone());
    let shutdown = CancellationToken::new();
    let handles = spawn(
        Arc::clone(&store),
        vec![job(&binance(&fake), "BTC")],
        ReconcileConfig::default(),
        shutdown.clone(),
    );
    converges(store.as_ref(), "BTC", &upstream).await;

    fake.go_down().await;
    upstream.push(late);
    upstream.push(candle(open_bucket, 100.75));
    fake.candles(PAIR, "1m", upstream.clone());
    // Several polls fail in this time.
    tokio::time::sleep(POLL * 8).await;
    assert!(
        handles.iter().all(|h| !h.is_finished()),
        "an outage ended a task"
    );
    fake.come_back().await;
    converges(store.as_ref(), "BTC", &upstream).await;

    stop(&shutdown, handles).await;
}

async fn a_failing_job_does_not_hold_up_the_others(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let (_, upstream) = recent_history();
    fake.candles(PAIR, "1m", upstream.clone());
    let shutdown = CancellationToken::new();
    // The fake does not list ETHUSDT, so every ETH poll fails.
    let handles = spawn(
        Arc::clone(&store),
        vec![job(&binance(&fake), "ETH"), job(&binance(&fake), "BTC")],
        ReconcileConfig::default(),
        shutdown.clone(),
    );
    converges(store.as_ref(), "BTC", &upstream).await;
    let polled_eth = || {
        fake.seen()
            .iter()
            .filter(|s| s.query.get("symbol").map(String::as_str) == Some("ETHUSDT"))
            .count()
    };
    let before = polled_eth();
    tokio::time::timeout(DEADLINE, async {
        while polled_eth() < before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a failing job stopped polling");
    assert!(stored(store.as_ref(), "ETH").await.is_empty());

    stop(&shutdown, handles).await;
}

async fn shutdown_stops_every_task(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let (_, upstream) = recent_history();
    fake.candles(PAIR, "1m", upstream.clone());
    fake.ticker(PAIR, 101.5, 100.0, wall_ms());
    let shutdown = CancellationToken::new();
    let handles = spawn(
        Arc::clone(&store),
        vec![job(&binance(&fake), "BTC")],
        ReconcileConfig::default(),
        shutdown.clone(),
    );
    assert_eq!(handles.len(), 2, "one candle task and one price task");
    converges(store.as_ref(), "BTC", &upstream).await;

    stop(&shutdown, handles).await;
    let requests = fake.seen().len();
    tokio::time::sleep(POLL * 6).await;
    assert_eq!(fake.seen().len(), requests, "a stopped task kept polling");
}

async fn latest_price(store: &dyn Store, wanted: impl Fn(f64, &str) -> bool) -> (f64, String) {
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            let latest = store
                .latest_prices(&["BTC".to_owned()])
                .await
                .unwrap()
                .pop();
            if let Some(price) = latest.filter(|p| wanted(p.price, &p.source)) {
                return (price.price, price.source);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let last = store
        .latest_prices(&["BTC".to_owned()])
        .await
        .unwrap()
        .pop();
    found.unwrap_or_else(|_| panic!("the expected price was never stored; last {last:?}"))
}

async fn falls_back_to_the_next_source_and_reconciles_prices(store: Arc<dyn Store>) {
    let mut primary = FakeUpstream::start().await;
    let secondary = FakeUpstream::start().await;
    let (_, mut upstream) = recent_history();
    // The fallback's candles differ, so where each stored candle came from shows.
    let fallback: Vec<Candle> = upstream
        .iter()
        .map(|c| candle(c.open_time, c.close + 0.5))
        .collect();
    primary.candles(PAIR, "1m", upstream.clone());
    primary.ticker(PAIR, 100.0, 99.0, wall_ms());
    secondary.candles("BTC-USD", "60", fallback.clone());
    secondary.quote("bitcoin", 101.0, 1.0, wall_ms() / 1000);
    primary.go_down().await;

    let sources: Vec<Arc<dyn Source>> = vec![
        binance(&primary),
        Arc::new(Coinbase::new(quick(&secondary), SymbolTable::default()).unwrap()),
        Arc::new(CoinGecko::new(quick(&secondary), SymbolTable::default()).unwrap()),
    ];
    let job = IngestJob {
        sources,
        ..job(&binance(&primary), "BTC")
    };
    let shutdown = CancellationToken::new();
    let handles = spawn(
        Arc::clone(&store),
        vec![job],
        ReconcileConfig::default(),
        shutdown.clone(),
    );
    // The primary is down: the same buckets come from the fallback, marked as its own.
    converges(store.as_ref(), "BTC", &fallback).await;
    let bars = store
        .candles("BTC", Interval::M1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap();
    assert!(bars.iter().all(|b| b.source == "coinbase"), "{:?}", bars[0]);
    // Only CoinGecko answers for prices.
    assert_eq!(
        latest_price(store.as_ref(), |_, _| true).await,
        (101.0, "coingecko".to_owned())
    );

    // The primary returns: a new candle comes from it, and the price is the median of both.
    primary.come_back().await;
    let open_bucket = wall_ms() / MIN * MIN;
    upstream.retain(|c| c.open_time < open_bucket);
    upstream.push(candle(open_bucket, 103.0));
    primary.candles(PAIR, "1m", upstream.clone());
    let newest = tokio::time::timeout(DEADLINE, async {
        loop {
            let bars = store
                .candles("BTC", Interval::M1, open_bucket, i64::MAX, 1)
                .await
                .unwrap();
            if let Some(bar) = bars.into_iter().next().filter(|b| b.source == "binance") {
                return bar;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the primary never supplied the new candle");
    assert_eq!(newest.candle, candle(open_bucket, 103.0));
    let (price, source) = latest_price(store.as_ref(), |_, s| s.contains('+')).await;
    assert!((price - 100.5).abs() < 1e-9, "{price}");
    assert_eq!(source, "binance+coingecko");

    // CoinGecko drifts 40 % away: with two sources, the primary's price stands alone.
    primary.ticker(PAIR, 100.0, 99.0, wall_ms() + 1_000);
    secondary.quote("bitcoin", 140.0, 1.0, wall_ms() / 1000);
    let alone = latest_price(store.as_ref(), |_, s| s == "binance").await;
    assert_eq!(alone, (100.0, "binance".to_owned()));

    stop(&shutdown, handles).await;
}

async fn a_poll_fills_missing_minutes_from_the_fallback_and_records_the_rest(
    store: Arc<dyn Store>,
) {
    let primary = FakeUpstream::start().await;
    let secondary = FakeUpstream::start().await;
    let (_, upstream) = recent_history();
    let (lacking_both, lacking_binance) = (upstream[10].open_time, upstream[20].open_time);
    let fallback: Vec<Candle> = upstream
        .iter()
        .filter(|c| c.open_time != lacking_both)
        .map(|c| candle(c.open_time, c.close + 0.5))
        .collect();
    let primary_has: Vec<Candle> = upstream
        .iter()
        .copied()
        .filter(|c| ![lacking_both, lacking_binance].contains(&c.open_time))
        .collect();
    primary.candles(PAIR, "1m", primary_has.clone());
    secondary.candles("BTC-USD", "60", fallback.clone());
    let sources: Vec<Arc<dyn Source>> = vec![
        binance(&primary),
        Arc::new(Coinbase::new(quick(&secondary), SymbolTable::default()).unwrap()),
    ];
    let job = IngestJob {
        sources,
        ..job(&binance(&primary), "BTC")
    };
    let shutdown = CancellationToken::new();
    let handles = spawn(
        Arc::clone(&store),
        vec![job],
        ReconcileConfig::default(),
        shutdown.clone(),
    );

    let mut expected = primary_has;
    expected.extend(fallback.iter().filter(|c| c.open_time == lacking_binance));
    expected.sort_by_key(|c| c.open_time);
    converges(store.as_ref(), "BTC", &expected).await;
    let known = tokio::time::timeout(DEADLINE, async {
        loop {
            let gaps = store
                .gaps("BTC", Interval::M1, lacking_both, lacking_both + MIN)
                .await
                .unwrap();
            if !gaps.is_empty() {
                return gaps;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the gap was never recorded");
    assert_eq!(
        (known[0].start, known[0].end),
        (lacking_both, lacking_both + MIN)
    );
    assert_eq!(known[0].sources, ["binance", "coinbase"]);
    let bars = store
        .candles("BTC", Interval::M1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap();
    let from_coinbase: Vec<i64> = bars
        .iter()
        .filter(|b| b.source == "coinbase")
        .map(|b| b.candle.open_time)
        .collect();
    assert_eq!(from_coinbase, [lacking_binance]);

    stop(&shutdown, handles).await;
}
