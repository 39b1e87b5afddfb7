//! The exchange sources over HTTP, against a local fake upstream: paging over whole ranges,
//! bad payloads, and every failure the resilience layer is there for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod fake_upstream;

use std::time::{Duration, Instant};

use fake_upstream::{FakeUpstream, Fault, Seen, binance_row, wall_ms};
use marketd_domain::{Candle, Interval, format_rfc3339_ms};
use marketd_ingest::exchange::{PayloadError, SymbolTable};
use marketd_ingest::resilience::{
    BreakerConfig, BreakerState, RateLimit, RetryPolicy, UpstreamConfig, WeightLimit,
};
use marketd_ingest::source::{
    Binance, CoinGecko, Coinbase, Kraken, Source, SourceError, candles_in_range,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2024-01-01T00:00:00Z, a Monday.
const T0: i64 = 1_704_067_200_000;

/// Timings short enough for tests, long enough not to be flaky on a busy machine.
fn fast(base: &str) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(750),
        rate_limit: None,
        weight_limit: None,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        breaker: BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_millis(300),
        },
        max_pause: Duration::from_secs(5),
        default_pause: Duration::from_millis(100),
        ..UpstreamConfig::new(base)
    }
}

fn binance(fake: &FakeUpstream) -> Binance {
    Binance::new(fast(&fake.url()), SymbolTable::default()).unwrap()
}

fn coinbase(fake: &FakeUpstream) -> Coinbase {
    Coinbase::new(fast(&fake.url()), SymbolTable::default()).unwrap()
}

fn kraken(fake: &FakeUpstream) -> Kraken {
    Kraken::new(fast(&fake.url()), SymbolTable::default()).unwrap()
}

/// `n` sound candles of `step` from `start`, each one distinct.
fn series(start: i64, step: i64, n: usize) -> Vec<Candle> {
    (0..n)
        .map(|i| {
            let open = 100.0 + i as f64;
            Candle {
                open_time: start + i as i64 * step,
                open,
                high: open + 2.0,
                low: open - 1.0,
                close: open + 0.5,
                volume: 1.0 + (i % 7) as f64,
            }
        })
        .collect()
}

/// Folds candles into buckets of `target` by hand, independently of the code under test.
fn by_hand(target: Interval, fine: &[Candle]) -> Vec<Candle> {
    let mut out: Vec<Candle> = Vec::new();
    for c in fine {
        let bucket = target.bucket_start(c.open_time);
        match out.last_mut() {
            Some(last) if last.open_time == bucket => {
                last.high = last.high.max(c.high);
                last.low = last.low.min(c.low);
                last.close = c.close;
                last.volume += c.volume;
            }
            _ => out.push(Candle {
                open_time: bucket,
                ..*c
            }),
        }
    }
    out
}

fn requests(fake: &FakeUpstream, path: &str) -> Vec<Seen> {
    fake.seen().into_iter().filter(|s| s.path == path).collect()
}

const KLINES: &str = "/api/v3/klines";

#[test]
fn the_default_configurations_are_valid_and_rate_limited() {
    let table = SymbolTable::default;
    let configs = [
        Binance::default_config(),
        Coinbase::default_config(),
        Kraken::default_config(),
        CoinGecko::default_config(),
    ];
    assert!(configs.iter().all(|c| c.rate_limit.is_some()));
    assert!(configs.iter().all(|c| c.base_url.starts_with("https://")));
    let [b, c, k, g] = configs;
    let names = [
        Binance::new(b, table()).unwrap().name(),
        Coinbase::new(c, table()).unwrap().name(),
        Kraken::new(k, table()).unwrap().name(),
        CoinGecko::new(g, table()).unwrap().name(),
    ];
    assert_eq!(names, ["binance", "coinbase", "kraken", "coingecko"]);
}

#[tokio::test]
async fn requests_are_paced_by_the_rate_limit() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTC-USD", "60", series(T0, MIN, 10));
    let config = UpstreamConfig {
        rate_limit: Some(RateLimit {
            cells: 10,
            per: Duration::from_secs(1),
            burst: 1,
        }),
        ..fast(&fake.url())
    };
    let source = Coinbase::new(config, SymbolTable::default()).unwrap();

    for _ in 0..3 {
        source
            .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
            .await
            .unwrap();
    }

    let seen = fake.seen();
    // Two gaps of 100 ms each; arrival jitter may eat a little of that, not a quarter.
    let span = seen[2].at - seen[0].at;
    assert!(
        span >= Duration::from_millis(150),
        "three requests within {span:?}"
    );
}

// --- Binance ---------------------------------------------------------------------------

#[tokio::test]
async fn binance_pages_walk_the_whole_range_a_thousand_at_a_time() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 2_600);
    fake.candles("BTCUSDT", "1m", all.clone());
    let source = binance(&fake);

    let page = candles_in_range(&source, "BTC", Interval::M1, T0, T0 + 2_500 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all[..2_500]);
    assert!(page.rejected.is_empty());
    let seen = requests(&fake, KLINES);
    let windows: Vec<(String, String, String)> = seen
        .iter()
        .map(|s| {
            (
                s.query["startTime"].clone(),
                s.query["endTime"].clone(),
                s.query["limit"].clone(),
            )
        })
        .collect();
    let expect = |from: i64, to: i64| {
        (
            (T0 + from * MIN).to_string(),
            (T0 + to * MIN - 1).to_string(),
            "1000".to_owned(),
        )
    };
    assert_eq!(
        windows,
        [expect(0, 1000), expect(1000, 2000), expect(2000, 2500)]
    );
    assert_eq!(seen[0].query["symbol"], "BTCUSDT");
    assert_eq!(seen[0].query["interval"], "1m");
    let stats = source.stats();
    assert_eq!(stats.rows_accepted, 2_500);
    assert_eq!(stats.requests.ok, 3);
}

#[tokio::test]
async fn a_gap_upstream_stays_a_gap() {
    let fake = FakeUpstream::start().await;
    let mut all = series(T0, HOUR, 60);
    all.drain(20..35);
    fake.candles("ETHUSDT", "1h", all.clone());

    let page = candles_in_range(&binance(&fake), "ETH", Interval::H1, T0, T0 + 60 * HOUR)
        .await
        .unwrap();

    assert_eq!(page.candles, all, "nothing missing, nothing invented");
}

#[tokio::test]
async fn bad_rows_are_refused_with_reasons_and_the_rest_kept_in_order() {
    let fake = FakeUpstream::start().await;
    let good = series(T0, MIN, 5);
    let row = |i: usize| binance_row(&good[i], MIN);
    let mut wrong_type = row(2);
    wrong_type[1] = serde_json::json!(true);
    let mut revised = good[3];
    revised.close = revised.open;
    // Out of order, one bucket sent twice (the later copy wins), one row with a boolean
    // for a price, one cut short, one with high below low.
    let mut upside_down = good[4];
    upside_down.high = upside_down.low - 1.0;
    let body = serde_json::json!([
        row(1),
        row(0),
        row(3),
        wrong_type,
        binance_row(&revised, MIN),
        [T0 + 2 * MIN, "1"],
        binance_row(&upside_down, MIN),
    ]);
    fake.push([Fault::Body(body.to_string())]);
    let source = binance(&fake);

    let page = source
        .candles("BTC", Interval::M1, T0, T0 + 5 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, [good[0], good[1], revised]);
    let reasons: Vec<(usize, &str)> = page
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].0 == 2 && reasons[0].1.contains("duplicate"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == 3 && reasons[1].1.contains("open is a boolean"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].0 == 5 && reasons[2].1.contains("2 fields"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].0 == 6 && reasons[3].1.contains("high is below low"),
        "{reasons:?}"
    );
    assert_eq!(source.stats().rows_rejected, 4);
    assert_eq!(source.stats().rows_accepted, 3);
}

#[tokio::test]
async fn truncated_json_is_refused_whole_and_not_retried() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.push([Fault::Body(format!("[[{T0},\"1.0\",\"2.0\""))]);
    let source = binance(&fake);

    let err = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();

    assert!(
        matches!(err, SourceError::Payload(PayloadError::NotJson(_))),
        "{err}"
    );
    assert_eq!(requests(&fake, KLINES).len(), 1);
    assert_eq!(source.stats().requests.bad_payload, 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_one_succeeds() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 10);
    fake.candles("BTCUSDT", "1m", all.clone());
    fake.push([Fault::Status(500), Fault::Status(502)]);
    let source = binance(&fake);

    let page = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all);
    assert_eq!(requests(&fake, KLINES).len(), 3);
    let stats = source.stats();
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.requests.server_error, 2);
    assert_eq!(stats.requests.ok, 1);
    assert_eq!(stats.breaker, BreakerState::Closed);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.push((0..10).map(|_| Fault::Status(503)));

    let err = binance(&fake)
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();

    assert!(
        matches!(err, SourceError::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(requests(&fake, KLINES).len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    let source = binance(&fake);
    for status in [400, 404] {
        fake.push([Fault::Status(status)]);
        let before = requests(&fake, KLINES).len();
        let err = source
            .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
            .await
            .unwrap_err();
        match err {
            SourceError::Status {
                status: got,
                message,
            } => {
                assert_eq!(got, status);
                assert!(message.contains("injected"), "{message}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(requests(&fake, KLINES).len(), before + 1);
    }
    assert_eq!(source.stats().retries, 0);
    assert_eq!(source.stats().requests.client_error, 2);
    // The upstream answered, so the circuit stays closed.
    assert_eq!(source.stats().breaker, BreakerState::Closed);
}

#[tokio::test]
async fn an_unlisted_symbol_fails_without_a_request() {
    let fake = FakeUpstream::start().await;
    let err = binance(&fake)
        .candles("XMR", Interval::M1, T0, T0 + MIN)
        .await
        .unwrap_err();
    assert_eq!(err, SourceError::UnknownSymbol("XMR".to_owned()));
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_retry_succeeds() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 10);
    fake.candles("BTCUSDT", "1m", all.clone());
    fake.push([Fault::Delay(Duration::from_secs(5))]);
    let source = binance(&fake);

    let started = Instant::now();
    let page = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the slow answer was awaited"
    );
    assert_eq!(requests(&fake, KLINES).len(), 2);
    assert_eq!(source.stats().requests.timeout, 1);
    assert_eq!(source.stats().retries, 1);
}

#[tokio::test]
async fn a_connection_cut_mid_body_is_retried() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 10);
    fake.candles("BTCUSDT", "1m", all.clone());
    fake.push([Fault::Hangup]);
    let source = binance(&fake);

    let page = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all);
    assert_eq!(requests(&fake, KLINES).len(), 2);
    assert_eq!(source.stats().requests.network, 1);
}

#[tokio::test]
async fn retry_after_pauses_that_source_only() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.candles("BTC-USD", "60", series(T0, MIN, 10));
    fake.push([Fault::RetryAfter(429, "1")]);
    let binance = binance(&fake);
    let coinbase = coinbase(&fake);

    let limited = tokio::spawn(async move {
        binance
            .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
            .await
            .map(|page| (page, binance.stats()))
    });
    while fake.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = coinbase
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();
    let (page, stats) = limited.await.unwrap().unwrap();

    assert_eq!(other.candles.len(), 10);
    assert_eq!(page.candles.len(), 10);
    let klines = requests(&fake, KLINES);
    assert_eq!(klines.len(), 2);
    let waited = klines[1].at - klines[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    let coinbase_at = requests(&fake, "/products/BTC-USD/candles")[0].at;
    assert!(
        coinbase_at < klines[0].at + Duration::from_secs(1),
        "the other source waited too"
    );
    assert_eq!(stats.requests.rate_limited, 1);
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn a_418_ban_is_not_retried_and_holds_the_next_call() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.push([Fault::RetryAfter(418, "1")]);
    let source = binance(&fake);

    let err = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::RateLimited {
            status: 418,
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!(requests(&fake, KLINES).len(), 1);

    source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();
    let klines = requests(&fake, KLINES);
    assert_eq!(klines.len(), 2);
    assert!(klines[1].at - klines[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_pause_longer_than_a_caller_may_wait_fails_fast() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.push([Fault::RetryAfter(429, "120")]);
    let source = Binance::new(
        UpstreamConfig {
            max_pause: Duration::from_secs(1),
            ..fast(&fake.url())
        },
        SymbolTable::default(),
    )
    .unwrap();

    let started = Instant::now();
    let first = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();
    let second = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(first, SourceError::RateLimited { status: 429, retry_after } if retry_after == Duration::from_secs(120)),
        "{first}"
    );
    assert!(
        matches!(second, SourceError::Paused { remaining } if remaining > Duration::from_secs(110)),
        "{second}"
    );
    assert_eq!(requests(&fake, KLINES).len(), 1, "the paused call went out");
    assert_eq!(source.stats().paused, 1);
}

#[tokio::test]
async fn the_weight_header_holds_requests_until_the_window_rolls_over() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 10));
    fake.push([Fault::Header("x-mbx-used-weight-1m", "5500".to_owned())]);
    let window = 400;
    let config = UpstreamConfig {
        weight_limit: Some(WeightLimit {
            header: "x-mbx-used-weight-1m",
            soft_limit: 5400,
            window: Duration::from_millis(window as u64),
        }),
        ..fast(&fake.url())
    };
    let source = Binance::new(config, SymbolTable::default()).unwrap();

    for _ in 0..2 {
        source
            .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
            .await
            .unwrap();
    }

    let klines = requests(&fake, KLINES);
    assert!(
        klines[1].wall_ms / window > klines[0].wall_ms / window,
        "second request at {} ms, in the same {window} ms window as the first at {} ms",
        klines[1].wall_ms,
        klines[0].wall_ms
    );
    assert!(wall_ms() >= klines[1].wall_ms);
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_recovers() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 10);
    fake.candles("BTCUSDT", "1m", all.clone());
    let cool_down = Duration::from_millis(300);
    let config = UpstreamConfig {
        retry: RetryPolicy {
            max_attempts: 1,
            ..fast("").retry
        },
        breaker: BreakerConfig {
            failure_threshold: 3,
            cool_down,
        },
        ..fast(&fake.url())
    };
    let source = Binance::new(config, SymbolTable::default()).unwrap();
    let call = || source.candles("BTC", Interval::M1, T0, T0 + 10 * MIN);

    fake.push((0..3).map(|_| Fault::Status(500)));
    for _ in 0..3 {
        assert!(matches!(
            call().await,
            Err(SourceError::Status { status: 500, .. })
        ));
    }
    assert_eq!(source.stats().breaker, BreakerState::Open);
    assert!(matches!(call().await, Err(SourceError::CircuitOpen { .. })));
    assert_eq!(
        requests(&fake, KLINES).len(),
        3,
        "an open circuit sent a request"
    );

    // After the cool-down one probe goes out; it fails, and the circuit opens again.
    tokio::time::sleep(cool_down).await;
    assert_eq!(source.stats().breaker, BreakerState::HalfOpen);
    fake.push([Fault::Status(500)]);
    assert!(matches!(
        call().await,
        Err(SourceError::Status { status: 500, .. })
    ));
    assert_eq!(source.stats().breaker, BreakerState::Open);
    assert!(matches!(call().await, Err(SourceError::CircuitOpen { .. })));

    // The next probe succeeds and closes it.
    tokio::time::sleep(cool_down).await;
    assert_eq!(call().await.unwrap().candles, all);
    assert_eq!(source.stats().breaker, BreakerState::Closed);
    assert_eq!(call().await.unwrap().candles, all);
    let stats = source.stats();
    assert_eq!(stats.short_circuited, 2);
    assert_eq!(requests(&fake, KLINES).len(), 6);
}

#[tokio::test]
async fn an_upstream_that_goes_down_and_comes_back() {
    let mut fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 10);
    fake.candles("BTCUSDT", "1m", all.clone());
    let source = binance(&fake);
    source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();

    fake.go_down().await;
    let err = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(err, SourceError::Connect(_) | SourceError::Transport(_)),
        "{err}"
    );
    let stats = source.stats();
    assert_eq!(stats.requests.network, 3, "every attempt failed to connect");
    assert_eq!(stats.retries, 2);

    fake.come_back().await;
    let page = source
        .candles("BTC", Interval::M1, T0, T0 + 10 * MIN)
        .await
        .unwrap();
    assert_eq!(page.candles, all);
    assert_eq!(source.stats().breaker, BreakerState::Closed);
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let fake = FakeUpstream::start().await;
    fake.candles("BTCUSDT", "1m", series(T0, MIN, 1000));
    let source = Binance::new(
        UpstreamConfig {
            max_body_bytes: 20_000,
            timeout: Duration::from_secs(10),
            ..fast(&fake.url())
        },
        SymbolTable::default(),
    )
    .unwrap();
    let call = || source.candles("BTC", Interval::M1, T0, T0 + 1000 * MIN);

    // Declared too long: refused from the headers.
    assert_eq!(
        call().await.unwrap_err(),
        SourceError::TooLarge { limit: 20_000 }
    );
    // Never ending: refused once the cap is passed, not when the timeout strikes.
    fake.push([Fault::Endless]);
    let started = Instant::now();
    assert_eq!(
        call().await.unwrap_err(),
        SourceError::TooLarge { limit: 20_000 }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(requests(&fake, KLINES).len(), 2, "too large is not retried");
    assert_eq!(source.stats().requests.too_large, 2);
}

#[tokio::test]
async fn gzip_bodies_are_unpacked_and_capped_by_their_unpacked_size() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 1000);
    fake.candles("BTCUSDT", "1m", all.clone());
    fake.gzip(true);
    let with_cap = |cap| {
        Binance::new(
            UpstreamConfig {
                max_body_bytes: cap,
                ..fast(&fake.url())
            },
            SymbolTable::default(),
        )
        .unwrap()
    };

    let page = with_cap(1 << 20)
        .candles("BTC", Interval::M1, T0, T0 + 1000 * MIN)
        .await
        .unwrap();
    assert_eq!(page.candles, all);
    let seen = requests(&fake, KLINES);
    assert!(
        seen[0]
            .accept_encoding
            .as_deref()
            .unwrap_or("")
            .contains("gzip")
    );

    // Compressed, the page is far below 60 kB; unpacked it is well above.
    let err = with_cap(60_000)
        .candles("BTC", Interval::M1, T0, T0 + 1000 * MIN)
        .await
        .unwrap_err();
    assert_eq!(err, SourceError::TooLarge { limit: 60_000 });
}

#[tokio::test]
async fn binance_prices_come_back_under_our_symbols() {
    let fake = FakeUpstream::start().await;
    fake.ticker("BTCUSDT", 67_000.0, 66_000.0, T0);
    fake.ticker("ETHUSDT", 3_400.0, 3_500.0, T0);
    let source = binance(&fake);
    let asked: Vec<String> = ["ETH", "btc", "XMR", "NOPE", "BTC"]
        .map(str::to_owned)
        .to_vec();

    let prices = source.latest_prices(&asked).await.unwrap();

    let got: Vec<(&str, f64, f64)> = prices
        .iter()
        .map(|p| (p.symbol.as_str(), p.price, p.open_24h))
        .collect();
    assert_eq!(
        got,
        [("BTC", 67_000.0, 66_000.0), ("ETH", 3_400.0, 3_500.0)]
    );
    assert!(
        prices
            .iter()
            .all(|p| p.source == "binance" && p.as_of == T0)
    );
    let seen = requests(&fake, "/api/v3/ticker/24hr");
    assert_eq!(seen[0].query["symbols"], r#"["ETHUSDT","BTCUSDT"]"#);
}

// --- Coinbase --------------------------------------------------------------------------

#[tokio::test]
async fn coinbase_pages_walk_the_whole_range_300_at_a_time() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 800);
    fake.candles("BTC-USD", "60", all.clone());
    let source = coinbase(&fake);

    let page = candles_in_range(&source, "BTC", Interval::M1, T0, T0 + 700 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all[..700]);
    let seen = requests(&fake, "/products/BTC-USD/candles");
    let windows: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|s| {
            (
                s.query["granularity"].as_str(),
                s.query["start"].as_str(),
                s.query["end"].as_str(),
            )
        })
        .collect();
    let at = |m: i64| format_rfc3339_ms(T0 + m * MIN);
    assert_eq!(
        windows,
        [
            ("60", at(0).as_str(), at(299).as_str()),
            ("60", at(300).as_str(), at(599).as_str()),
            ("60", at(600).as_str(), at(699).as_str()),
        ]
    );
}

#[tokio::test]
async fn coinbase_builds_4h_candles_from_1h() {
    let fake = FakeUpstream::start().await;
    // 40 days of hours with a hole in the middle: 960 hours, four pages of 75 4h buckets.
    let mut hours = series(T0, HOUR, 960);
    hours.drain(401..406);
    fake.candles("ETH-USD", "3600", hours.clone());
    let source = coinbase(&fake);

    let page = candles_in_range(&source, "ETH", Interval::H4, T0, T0 + 40 * DAY)
        .await
        .unwrap();

    assert_eq!(page.candles, by_hand(Interval::H4, &hours));
    assert_eq!(page.candles.len(), 240);
    let seen = requests(&fake, "/products/ETH-USD/candles");
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.query["granularity"] == "3600"));
}

#[tokio::test]
async fn coinbase_builds_monday_weeks_from_days() {
    let fake = FakeUpstream::start().await;
    let days = series(T0 - 3 * DAY, DAY, 60);
    fake.candles("BTC-USD", "86400", days.clone());

    let page = candles_in_range(&coinbase(&fake), "BTC", Interval::W1, T0, T0 + 8 * 7 * DAY)
        .await
        .unwrap();

    let weeks = by_hand(Interval::W1, &days[3..3 + 56]);
    assert_eq!(page.candles, weeks);
    assert!(
        page.candles
            .iter()
            .all(|c| Interval::W1.bucket_start(c.open_time) == c.open_time)
    );
}

#[tokio::test]
async fn coinbase_candles_come_newest_first_and_arrive_ascending() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, 5 * MIN, 12);
    fake.candles("SOL-USD", "300", all.clone());
    let page = coinbase(&fake)
        .candles("SOL", Interval::M5, T0, T0 + 60 * MIN)
        .await
        .unwrap();
    assert_eq!(page.candles, all);
    assert_eq!(page.next_start, None);
}

#[tokio::test]
async fn coingecko_serves_no_candles() {
    let fake = FakeUpstream::start().await;
    let gecko = CoinGecko::new(fast(&fake.url()), SymbolTable::default()).unwrap();
    assert_eq!(
        gecko
            .candles("BTC", Interval::H1, T0, T0 + HOUR)
            .await
            .unwrap_err(),
        SourceError::Unsupported
    );
    assert!(fake.seen().is_empty());
}

fn fixture_json(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/exchange/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn coinbase_prices_come_from_ticker_and_stats_and_bad_products_are_left_out() {
    let fake = FakeUpstream::start().await;
    let (ticker, stats) = (
        fixture_json("coinbase_ticker.json"),
        fixture_json("coinbase_stats.json"),
    );
    fake.coinbase_ticker("BTC-USD", ticker.clone(), stats.clone());
    let mut bad_price = ticker.clone();
    bad_price["price"] = "-3".into();
    fake.coinbase_ticker("ETH-USD", bad_price, stats.clone());
    let mut no_open = stats.clone();
    no_open.as_object_mut().unwrap().remove("open");
    fake.coinbase_ticker("SOL-USD", ticker.clone(), no_open);
    let mut wrong_type = ticker;
    wrong_type["price"] = serde_json::json!({"value": 1});
    fake.coinbase_ticker("ADA-USD", wrong_type, stats);
    // DOGE-USD is not listed by the fake: a 404 for that product only.
    let source = coinbase(&fake);
    let asked: Vec<String> = ["ETH", "BTC", "SOL", "ADA", "DOGE", "BNB", "NOPE"]
        .map(str::to_owned)
        .to_vec();

    let prices = source.latest_prices(&asked).await.unwrap();

    let got: Vec<(&str, f64, f64, i64, &str)> = prices
        .iter()
        .map(|p| {
            (
                p.symbol.as_str(),
                p.price,
                p.open_24h,
                p.as_of,
                p.source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("BTC", 6268.48, 5414.18, 1_584_663_777_833, "coinbase")]
    );
    let stats = source.stats();
    assert_eq!((stats.rows_accepted, stats.rows_rejected), (1, 4));
    // BNB is not listed on Coinbase, so it is never asked for; after DOGE's ticker came
    // back 404 there was no point in asking for its stats.
    let mut paths: Vec<String> = fake.seen().into_iter().map(|s| s.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/products/ADA-USD/stats",
            "/products/ADA-USD/ticker",
            "/products/BTC-USD/stats",
            "/products/BTC-USD/ticker",
            "/products/DOGE-USD/ticker",
            "/products/ETH-USD/stats",
            "/products/ETH-USD/ticker",
            "/products/SOL-USD/stats",
            "/products/SOL-USD/ticker",
        ]
    );
}

#[tokio::test]
async fn coinbase_prices_fail_whole_when_the_upstream_does() {
    let fake = FakeUpstream::start().await;
    fake.coinbase_ticker(
        "BTC-USD",
        fixture_json("coinbase_ticker.json"),
        fixture_json("coinbase_stats.json"),
    );
    fake.push([Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    let err = coinbase(&fake)
        .latest_prices(&["BTC".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Status { status: 503, .. }),
        "{err:?}"
    );
}

// --- Kraken ----------------------------------------------------------------------------

#[tokio::test]
async fn kraken_follows_the_last_cursor() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, MIN, 300);
    fake.candles("XBTUSD", "1", all.clone());
    fake.kraken_answers_as("XBTUSD", "XXBTZUSD");
    fake.kraken_page(100);
    let source = kraken(&fake);

    let page = candles_in_range(&source, "BTC", Interval::M1, T0, T0 + 250 * MIN)
        .await
        .unwrap();

    assert_eq!(page.candles, all[..250]);
    let since: Vec<i64> = requests(&fake, "/0/public/OHLC")
        .iter()
        .map(|s| s.query["since"].parse().unwrap())
        .collect();
    let s = T0 / 1000;
    assert_eq!(since, [s - 1, s + 100 * 60 - 1, s + 200 * 60 - 1]);
}

#[tokio::test]
async fn kraken_stops_at_the_still_open_bucket() {
    let fake = FakeUpstream::start().await;
    let head = Interval::M1.bucket_start(wall_ms());
    let all = series(head - 40 * MIN, MIN, 41);
    fake.candles("ETHUSD", "1", all.clone());
    fake.kraken_answers_as("ETHUSD", "XETHZUSD");

    let page = kraken(&fake)
        .candles("ETH", Interval::M1, head - 30 * MIN, i64::MAX)
        .await
        .unwrap();

    assert_eq!(page.candles, all[10..]);
    assert_eq!(page.next_start, None);
}

#[tokio::test]
async fn kraken_builds_monday_weeks_from_days_across_pages() {
    let fake = FakeUpstream::start().await;
    let days = series(T0, DAY, 70);
    fake.candles("SOLUSD", "1440", days.clone());
    // Ten days a page: every page ends in the middle of a week.
    fake.kraken_page(10);

    let page = candles_in_range(&kraken(&fake), "SOL", Interval::W1, T0, T0 + 10 * 7 * DAY)
        .await
        .unwrap();

    assert_eq!(page.candles, by_hand(Interval::W1, &days));
    assert_eq!(page.candles.len(), 10);
}

#[tokio::test]
async fn kraken_busy_is_retried_and_unknown_pairs_are_not() {
    let fake = FakeUpstream::start().await;
    let all = series(T0, 15 * MIN, 8);
    fake.candles("XBTUSD", "15", all.clone());
    fake.push([Fault::Body(
        r#"{"error":["EService:Unavailable"]}"#.to_owned(),
    )]);
    let source = kraken(&fake);

    let page = source
        .candles("BTC", Interval::M15, T0, T0 + 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(page.candles, all);
    assert_eq!(requests(&fake, "/0/public/OHLC").len(), 2);

    let err = source
        .candles("ETH", Interval::M15, T0, T0 + 2 * HOUR)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::Payload(PayloadError::Upstream(
            "EQuery:Unknown asset pair".to_owned()
        ))
    );
    assert_eq!(requests(&fake, "/0/public/OHLC").len(), 3);
}

#[tokio::test]
async fn kraken_answering_for_another_pair_is_refused() {
    let fake = FakeUpstream::start().await;
    fake.candles("XBTUSD", "60", series(T0, HOUR, 3));
    fake.kraken_answers_as("XBTUSD", "XETHZUSD");
    let err = kraken(&fake)
        .candles("BTC", Interval::H1, T0, T0 + 3 * HOUR)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Payload(PayloadError::Shape(m)) if m.contains("XETHZUSD")),
        "{err}"
    );
}

#[tokio::test]
async fn kraken_prices_come_in_one_request_and_bad_pairs_are_left_out() {
    let fake = FakeUpstream::start().await;
    let documented = fixture_json("kraken_ticker.json")["result"]["XXBTZUSD"].clone();
    fake.kraken_ticker("XBTUSD", "XXBTZUSD", documented.clone());
    let mut negative = documented.clone();
    negative["c"] = serde_json::json!(["-1.5", "1"]);
    fake.kraken_ticker("ETHUSD", "XETHZUSD", negative);
    let mut missing = documented;
    missing.as_object_mut().unwrap().remove("v");
    fake.kraken_ticker("SOLUSD", "SOLUSD", missing);
    let source = kraken(&fake);
    let asked: Vec<String> = ["SOL", "BTC", "ETH", "BNB"].map(str::to_owned).to_vec();

    let before = wall_ms();
    let prices = source.latest_prices(&asked).await.unwrap();

    assert_eq!(prices.len(), 1, "{prices:?}");
    let btc = &prices[0];
    assert_eq!(
        (btc.symbol.as_str(), btc.price, btc.open_24h, btc.volume_24h),
        ("BTC", 30_303.2, 30_502.8, 4_412.736_017_99)
    );
    assert_eq!((btc.high_24h, btc.low_24h), (31_631.0, 29_868.3));
    assert!(btc.as_of >= before && btc.as_of <= wall_ms());
    assert_eq!(btc.source, "kraken");
    let stats = source.stats();
    assert_eq!((stats.rows_accepted, stats.rows_rejected), (1, 2));
    let seen = requests(&fake, "/0/public/Ticker");
    assert_eq!(seen.len(), 1);
    // BNB is not listed on Kraken.
    assert_eq!(seen[0].query["pair"], "SOLUSD,XBTUSD,ETHUSD");
}

#[tokio::test]
async fn kraken_price_errors_are_errors() {
    let fake = FakeUpstream::start().await;
    // The fake lists no pair, so Kraken's own error comes back.
    let err = kraken(&fake)
        .latest_prices(&["BTC".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::Payload(PayloadError::Upstream("EQuery:Unknown asset pair".into()))
    );
    fake.push([Fault::Body(
        r#"{"error":["EService:Unavailable"]}"#.to_owned(),
    )]);
    fake.kraken_ticker(
        "XBTUSD",
        "XXBTZUSD",
        fixture_json("kraken_ticker.json")["result"]["XXBTZUSD"].clone(),
    );
    let prices = kraken(&fake)
        .latest_prices(&["BTC".to_owned()])
        .await
        .unwrap();
    assert_eq!(prices.len(), 1, "a busy answer is retried");
}

// --- CoinGecko -------------------------------------------------------------------------

#[tokio::test]
async fn coingecko_prices_come_back_under_our_symbols() {
    let fake = FakeUpstream::start().await;
    let updated = T0 / 1000;
    fake.quote("bitcoin", 110.0, 10.0, updated);
    fake.quote("solana", 90.0, -10.0, updated);
    let source = CoinGecko::new(fast(&fake.url()), SymbolTable::default()).unwrap();
    let asked: Vec<String> = ["SOL", "BTC", "NOPE"].map(str::to_owned).to_vec();

    let prices = source.latest_prices(&asked).await.unwrap();

    let got: Vec<(&str, f64)> = prices
        .iter()
        .map(|p| (p.symbol.as_str(), p.price))
        .collect();
    assert_eq!(got, [("BTC", 110.0), ("SOL", 90.0)]);
    assert!((prices[0].open_24h - 100.0).abs() < 1e-9);
    assert!(
        prices
            .iter()
            .all(|p| p.as_of == T0 && p.source == "coingecko")
    );
    let seen = requests(&fake, "/api/v3/simple/price");
    assert_eq!(seen[0].query["ids"], "solana,bitcoin");
    assert_eq!(seen[0].query["vs_currencies"], "usd");
    assert_eq!(source.stats().rows_accepted, 2);
}

// --- Configured names ------------------------------------------------------------------

#[tokio::test]
async fn configured_names_are_the_ones_asked_for() {
    use marketd_ingest::exchange::symbols::Names;

    let fake = FakeUpstream::start().await;
    let mut table = SymbolTable::default();
    table
        .set_names(
            "PEPE",
            &Names {
                binance: Some("PEPEUSDT".into()),
                kraken: Some("PEPEUSD".into()),
                ..Names::default()
            },
        )
        .unwrap();
    let upstream = series(T0, HOUR, 5);
    fake.candles("PEPEUSDT", "1h", upstream.clone());
    fake.ticker("PEPEUSDT", 0.0000121, 0.00001, T0);
    let mut pepe = fixture_json("kraken_ticker.json")["result"]["XXBTZUSD"].clone();
    pepe["c"] = serde_json::json!(["30000.5", "1"]);
    fake.kraken_ticker("PEPEUSD", "PEPEUSD", pepe);

    let binance = Binance::new(fast(&fake.url()), table.clone()).unwrap();
    let page = candles_in_range(&binance, "PEPE", Interval::H1, T0, T0 + 5 * HOUR)
        .await
        .unwrap();
    assert_eq!(page.candles, upstream);
    let prices = binance.latest_prices(&["PEPE".to_owned()]).await.unwrap();
    assert_eq!(
        (prices[0].symbol.as_str(), prices[0].price),
        ("PEPE", 0.0000121)
    );
    let kraken = Kraken::new(fast(&fake.url()), table).unwrap();
    let prices = kraken.latest_prices(&["PEPE".to_owned()]).await.unwrap();
    assert_eq!(
        (prices[0].symbol.as_str(), prices[0].price),
        ("PEPE", 30_000.5)
    );
    let seen = fake.seen();
    assert_eq!(seen[0].query["symbol"], "PEPEUSDT");
    assert_eq!(seen[1].query["symbols"], r#"["PEPEUSDT"]"#);
    assert_eq!(seen[2].query["pair"], "PEPEUSD");
    // With the default table PEPE is listed nowhere, and nothing is asked.
    let plain = Binance::new(fast(&fake.url()), SymbolTable::default()).unwrap();
    assert_eq!(
        plain
            .candles("PEPE", Interval::H1, T0, T0 + HOUR)
            .await
            .unwrap_err(),
        SourceError::UnknownSymbol("PEPE".into())
    );
    assert_eq!(fake.seen().len(), 3);
}
