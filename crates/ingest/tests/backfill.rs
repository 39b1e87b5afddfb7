//! Backfill from the local fake exchange into real databases: every scenario runs against
//! SQLite and Postgres, and what ends up stored must be exactly what the upstream had.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "a test fails by panicking, and the throughput run reports on stderr"
)]

#[allow(
    dead_code,
    reason = "shared with the sources suite, which uses all of it"
)]
mod fake_upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_upstream::{FakeUpstream, Fault};
use marketd_domain::{Candle, Interval};
use marketd_ingest::backfill::{BackfillCause, BackfillProgress, Gap, backfill};
use marketd_ingest::exchange::SymbolTable;
use marketd_ingest::repair::repair_gaps;
use marketd_ingest::resilience::{BreakerConfig, RetryPolicy, UpstreamConfig};
use marketd_ingest::source::{Binance, Coinbase, Source, SourceError};
use marketd_storage::{Asset, ConnectOptions, Store, connect};
use marketd_testkit::{Kind, TestDb};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000;
const PAIR: &str = "BTCUSDT";

marketd_testkit::store_suite!(
    stores_exactly_what_the_upstream_had,
    reports_gaps_and_rejections_without_filling_them,
    a_failed_run_resumes_to_the_exact_set,
    rerunning_a_finished_backfill_adds_nothing,
    keeps_an_existing_asset_name,
    missing_buckets_come_from_the_fallback_or_are_recorded_as_gaps,
    a_short_page_is_completed_by_asking_again,
);

/// Short retries so a failing page gives up quickly.
fn binance(fake: &FakeUpstream) -> Binance {
    let config = UpstreamConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        breaker: BreakerConfig {
            failure_threshold: 50,
            cool_down: Duration::from_millis(100),
        },
        ..UpstreamConfig::new(fake.url())
    };
    Binance::new(config, SymbolTable::default()).unwrap()
}

fn coinbase(fake: &FakeUpstream) -> Coinbase {
    let config = UpstreamConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..UpstreamConfig::new(fake.url())
    };
    Coinbase::new(config, SymbolTable::default()).unwrap()
}

/// `n` distinct, sound candles of `step` from `start`.
fn series(start: i64, step: i64, n: usize) -> Vec<Candle> {
    (0..n)
        .map(|i| {
            let open = 100.0 + (i % 997) as f64 + (i / 997) as f64 * 0.25;
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

async fn stored(store: &dyn Store, interval: Interval) -> Vec<Candle> {
    let bars = store
        .candles("BTC", interval, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap();
    assert!(bars.iter().all(|b| b.source == "binance"));
    bars.into_iter().map(|b| b.candle).collect()
}

async fn stores_exactly_what_the_upstream_had(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let upstream = series(T0, HOUR, 2_500);
    fake.candles(PAIR, "1h", upstream.clone());
    let mut seen: Vec<BackfillProgress> = Vec::new();

    let report = backfill(
        store.as_ref(),
        &binance(&fake),
        "BTC",
        Interval::H1,
        T0,
        T0 + 2_500 * HOUR,
        |p| seen.push(p),
    )
    .await
    .unwrap();

    assert_eq!(stored(store.as_ref(), Interval::H1).await, upstream);
    assert_eq!(report.written, 2_500);
    assert_eq!(report.pages, 3);
    assert_eq!((report.rejected, report.gap_buckets), (0, 0));
    assert!(!report.resumed);
    assert_eq!(report.last_written, Some(T0 + 2_499 * HOUR));
    let reached: Vec<i64> = seen.iter().map(|p| p.reached).collect();
    assert_eq!(
        reached,
        [T0 + 1_000 * HOUR, T0 + 2_000 * HOUR, T0 + 2_500 * HOUR]
    );
    let asset = store.asset("BTC").await.unwrap().unwrap();
    assert_eq!(
        (asset.name.as_str(), asset.quote.as_str(), asset.sources),
        ("BTC", "USD", vec!["binance".to_owned()])
    );
}

async fn reports_gaps_and_rejections_without_filling_them(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let mut upstream = series(T0, HOUR, 1_500);
    // A row the parser must refuse: its high is below its low.
    upstream[1_200].high = upstream[1_200].low - 1.0;
    // Missing buckets: one straddling the first page boundary, and the range's tail.
    upstream.retain(|c| {
        let i = (c.open_time - T0) / HOUR;
        !(995..1_003).contains(&i) && i < 1_490
    });
    fake.candles(PAIR, "1h", upstream.clone());

    let report = backfill(
        store.as_ref(),
        &binance(&fake),
        "BTC",
        Interval::H1,
        T0,
        T0 + 1_500 * HOUR,
        |_| {},
    )
    .await
    .unwrap();

    let expected: Vec<Candle> = upstream
        .into_iter()
        .filter(|c| c.open_time != T0 + 1_200 * HOUR)
        .collect();
    assert_eq!(stored(store.as_ref(), Interval::H1).await, expected);
    assert_eq!(report.rejected, 1);
    assert_eq!(report.gap_buckets, 8 + 1 + 10);
    let at = |i: i64| T0 + i * HOUR;
    assert_eq!(
        report.gaps,
        [
            Gap {
                start: at(995),
                end: at(1_003)
            },
            Gap {
                start: at(1_200),
                end: at(1_201)
            },
            Gap {
                start: at(1_490),
                end: at(1_500)
            },
        ]
    );
}

async fn a_failed_run_resumes_to_the_exact_set(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let upstream = series(T0, HOUR, 3_500);
    fake.candles(PAIR, "1h", upstream.clone());
    // Two good pages, then the upstream fails every attempt at the third.
    fake.push([
        Fault::Delay(Duration::ZERO),
        Fault::Delay(Duration::ZERO),
        Fault::Status(503),
        Fault::Status(503),
        Fault::Status(503),
    ]);
    let until = T0 + 3_500 * HOUR;

    let err = backfill(
        store.as_ref(),
        &binance(&fake),
        "BTC",
        Interval::H1,
        T0,
        until,
        |_| {},
    )
    .await
    .unwrap_err();

    assert!(
        matches!(
            err.cause,
            BackfillCause::Source(SourceError::Status { status: 503, .. })
        ),
        "{err}"
    );
    assert_eq!(err.resume_from, Some(T0 + 1_999 * HOUR));
    assert_eq!(err.report.written, 2_000);
    assert!(
        err.to_string()
            .contains("rerun to resume from 2024-03-24T07:00:00Z"),
        "{err}"
    );
    assert_eq!(
        stored(store.as_ref(), Interval::H1).await,
        upstream[..2_000]
    );

    let report = backfill(
        store.as_ref(),
        &binance(&fake),
        "BTC",
        Interval::H1,
        T0,
        until,
        |_| {},
    )
    .await
    .unwrap();

    assert!(report.resumed);
    assert_eq!(report.start, T0 + 1_999 * HOUR);
    assert_eq!(report.written, 1_501);
    assert_eq!(report.gap_buckets, 0);
    assert_eq!(stored(store.as_ref(), Interval::H1).await, upstream);
}

async fn rerunning_a_finished_backfill_adds_nothing(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let upstream = series(T0, MIN, 1_800);
    fake.candles(PAIR, "1m", upstream.clone());
    let source = binance(&fake);
    let until = T0 + 1_800 * MIN;
    let first = backfill(
        store.as_ref(),
        &source,
        "BTC",
        Interval::M1,
        T0,
        until,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(first.written, 1_800);

    let again = backfill(
        store.as_ref(),
        &source,
        "BTC",
        Interval::M1,
        T0,
        until,
        |_| {},
    )
    .await
    .unwrap();

    // Only the last candle is fetched again, in case it was stored while still open.
    assert!(again.resumed);
    assert_eq!((again.written, again.pages), (1, 1));
    assert_eq!(stored(store.as_ref(), Interval::M1).await, upstream);
    let series = store.series(Some("BTC")).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(
        (series[0].first_open_time, series[0].last_open_time),
        (T0, T0 + 1_799 * MIN)
    );
}

async fn keeps_an_existing_asset_name(store: Arc<dyn Store>) {
    store
        .upsert_asset(&Asset {
            symbol: "BTC".into(),
            name: "Bitcoin".into(),
            quote: "USD".into(),
            sources: vec!["coinbase".into()],
            created_at: T0,
        })
        .await
        .unwrap();
    let fake = FakeUpstream::start().await;
    fake.candles(PAIR, "1h", series(T0, HOUR, 10));

    backfill(
        store.as_ref(),
        &binance(&fake),
        "BTC",
        Interval::H1,
        T0,
        T0 + 10 * HOUR,
        |_| {},
    )
    .await
    .unwrap();

    let asset = store.asset("BTC").await.unwrap().unwrap();
    assert_eq!(asset.name, "Bitcoin");
    assert_eq!(asset.sources, ["coinbase", "binance"]);
}

/// `cargo test -p marketd-ingest --release --test backfill -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    const N: usize = 200_000;
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let Some(db) = TestDb::new(kind).await else {
            continue;
        };
        let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let fake = FakeUpstream::start().await;
        let upstream = series(T0, MIN, N);
        fake.candles(PAIR, "1m", upstream);
        let began = Instant::now();
        let report = backfill(
            store.as_ref(),
            &binance(&fake),
            "BTC",
            Interval::M1,
            T0,
            T0 + N as i64 * MIN,
            |_| {},
        )
        .await
        .unwrap();
        let secs = began.elapsed().as_secs_f64();
        assert_eq!(report.written, N as u64);
        eprintln!(
            "{kind:?}: {N} 1m candles in {secs:.2}s, {:.0} candles/s, {} pages",
            N as f64 / secs,
            report.pages
        );
        store.close().await;
    }
}

/// Each stored candle with its source.
async fn stored_with_source(store: &dyn Store) -> Vec<(Candle, String)> {
    store
        .candles("BTC", Interval::H1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.candle, b.source))
        .collect()
}

async fn missing_buckets_come_from_the_fallback_or_are_recorded_as_gaps(store: Arc<dyn Store>) {
    let primary = FakeUpstream::start().await;
    let secondary = FakeUpstream::start().await;
    let full = series(T0, HOUR, 48);
    // Binance lacks hours 10, 11 and 30; Coinbase has 10 and 30 (with its own values, so
    // the origin of each stored candle shows) but not 11.
    let at = |hour: i64| T0 + hour * HOUR;
    let binance_has: Vec<Candle> = full
        .iter()
        .copied()
        .filter(|c| ![at(10), at(11), at(30)].contains(&c.open_time))
        .collect();
    let coinbase_has: Vec<Candle> = full
        .iter()
        .map(|c| Candle {
            close: c.close + 0.25,
            ..*c
        })
        .filter(|c| c.open_time != at(11))
        .collect();
    primary.candles(PAIR, "1h", binance_has.clone());
    secondary.candles("BTC-USD", "3600", coinbase_has.clone());
    let (binance, coinbase) = (binance(&primary), coinbase(&secondary));

    let report = backfill(
        store.as_ref(),
        &binance,
        "BTC",
        Interval::H1,
        T0,
        at(48),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.gap_buckets, 3);
    let sources: [&dyn Source; 2] = [&binance, &coinbase];
    let repair = repair_gaps(
        store.as_ref(),
        &sources,
        "BTC",
        Interval::H1,
        report.start,
        report.end,
    )
    .await
    .unwrap();

    let mut expected: Vec<(Candle, String)> = binance_has
        .iter()
        .map(|c| (*c, "binance".to_owned()))
        .chain(
            coinbase_has
                .iter()
                .filter(|c| [at(10), at(30)].contains(&c.open_time))
                .map(|c| (*c, "coinbase".to_owned())),
        )
        .collect();
    expected.sort_by_key(|(c, _)| c.open_time);
    assert_eq!(stored_with_source(store.as_ref()).await, expected);
    assert_eq!(repair.filled, [("coinbase", 2)]);
    let only_11 = Gap {
        start: at(11),
        end: at(12),
    };
    assert_eq!(repair.recorded, [only_11]);
    let gaps = store.gaps("BTC", Interval::H1, T0, at(48)).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].start, gaps[0].end), (at(11), at(12)));
    assert_eq!(gaps[0].sources, ["binance", "coinbase"]);
    let asset = store.asset("BTC").await.unwrap().unwrap();
    assert_eq!(asset.sources, ["binance", "coinbase"]);
    // Binance was asked once more for each run it lacked before Coinbase was asked.
    let klines: Vec<_> = primary
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/v3/klines")
        .collect();
    assert_eq!(klines.len(), 1 + 2);

    // Coinbase gets hour 11 later: asking again fills it and the gap is gone.
    secondary.candles("BTC-USD", "3600", full.clone());
    let repair = repair_gaps(store.as_ref(), &sources, "BTC", Interval::H1, T0, at(48))
        .await
        .unwrap();
    assert_eq!(repair.filled, [("coinbase", 1)]);
    assert!(repair.recorded.is_empty());
    assert!(
        store
            .gaps("BTC", Interval::H1, T0, at(48))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(stored_with_source(store.as_ref()).await.len(), 48);
}

async fn a_short_page_is_completed_by_asking_again(store: Arc<dyn Store>) {
    let fake = FakeUpstream::start().await;
    let upstream = series(T0, HOUR, 24);
    fake.candles(PAIR, "1h", upstream.clone());
    // The first answer comes back without hours 5 to 7; the upstream has them.
    let short: Vec<serde_json::Value> = upstream
        .iter()
        .filter(|c| !(T0 + 5 * HOUR..T0 + 8 * HOUR).contains(&c.open_time))
        .map(|c| fake_upstream::binance_row(c, HOUR))
        .collect();
    fake.push([Fault::Body(serde_json::Value::Array(short).to_string())]);
    let source = binance(&fake);

    let report = backfill(
        store.as_ref(),
        &source,
        "BTC",
        Interval::H1,
        T0,
        T0 + 24 * HOUR,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.gap_buckets, 3);
    let repair = repair_gaps(
        store.as_ref(),
        &[&source],
        "BTC",
        Interval::H1,
        report.start,
        report.end,
    )
    .await
    .unwrap();
    assert_eq!(repair.filled, [("binance", 3)]);
    assert!(repair.recorded.is_empty());
    assert_eq!(stored(store.as_ref(), Interval::H1).await, upstream);
    assert!(
        store
            .gaps("BTC", Interval::H1, T0, T0 + 24 * HOUR)
            .await
            .unwrap()
            .is_empty()
    );
}
