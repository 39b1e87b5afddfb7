//! The Store specification: every test here runs against SQLite and against Postgres,
//! and both must pass it unchanged.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use futures::TryStreamExt;
use marketd_domain::{Bar, Candle, Interval, LatestPrice};
use marketd_storage::{
    Asset, CandleRange, SourceChoice, Store, read_bar_values, read_bars, stream_bars,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Monday 2024-01-01 00:00 UTC.
const MONDAY: i64 = 1_704_067_200_000;

marketd_testkit::store_suite!(
    migrations_are_idempotent,
    upsert_is_idempotent,
    upsert_replaces_changed_values,
    duplicates_in_one_batch_keep_the_last,
    ranges_are_half_open_and_ascending,
    empty_ranges_return_nothing,
    series_track_stored_ranges,
    aggregates_hand_computed_buckets,
    aggregates_every_interval,
    weeks_start_on_monday,
    derived_buckets_report_missing_minutes,
    picks_native_then_finest_divisor,
    paging_returns_every_candle_once,
    derived_paging_returns_every_bucket_once,
    streams_a_whole_range,
    latest_price_keeps_the_newest,
    assets_round_trip,
    an_asset_comes_with_its_series,
    a_lookup_sees_the_writes_before_it,
    awkward_values_and_sources_read_back_exactly,
    values_alone_read_the_same_candles,
);

/// Minute `i` of a synthetic series whose aggregates can be worked out by hand:
/// open = 100 + i, close = open + 0.5, high = open + 1, low = open - 1, volume = 1 + i % 3.
fn synthetic(i: i64, origin: i64, step: i64) -> Candle {
    let open = 100.0 + i as f64;
    Candle {
        open_time: origin + i * step,
        open,
        high: open + 1.0,
        low: open - 1.0,
        close: open + 0.5,
        volume: 1.0 + (i % 3) as f64,
    }
}

fn series(n: i64, origin: i64, step: i64) -> Vec<Candle> {
    (0..n).map(|i| synthetic(i, origin, step)).collect()
}

fn range(symbol: &str, interval: Interval, start: i64, end: i64) -> CandleRange {
    CandleRange {
        symbol: symbol.to_owned(),
        interval,
        start,
        end,
    }
}

async fn all(store: &dyn Store, interval: Interval) -> Vec<Bar> {
    store
        .candles("BTC", interval, i64::MIN, i64::MAX, 1_000_000)
        .await
        .unwrap()
}

async fn migrations_are_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn upsert_is_idempotent(store: Arc<dyn Store>) {
    let candles = series(50, MONDAY, MINUTE);
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    let stored = all(store.as_ref(), Interval::M1).await;
    assert_eq!(stored.len(), 50);
    assert_eq!(stored.iter().map(|b| b.candle).collect::<Vec<_>>(), candles);
    assert!(stored.iter().all(|b| b.source == "test" && b.count == 1));
}

async fn upsert_replaces_changed_values(store: Arc<dyn Store>) {
    let mut candles = series(3, MONDAY, MINUTE);
    store
        .upsert_candles("BTC", Interval::M1, "a", &candles)
        .await
        .unwrap();
    candles[1].close = 101.25;
    candles[1].volume = 42.0;
    store
        .upsert_candles("BTC", Interval::M1, "b", &candles[1..2])
        .await
        .unwrap();
    let stored = all(store.as_ref(), Interval::M1).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].candle, candles[1]);
    assert_eq!(
        (stored[0].source.as_str(), stored[1].source.as_str()),
        ("a", "b")
    );
}

async fn duplicates_in_one_batch_keep_the_last(store: Arc<dyn Store>) {
    let first = synthetic(0, MONDAY, MINUTE);
    let second = Candle {
        close: 100.75,
        ..first
    };
    store
        .upsert_candles("BTC", Interval::M1, "test", &[first, second])
        .await
        .unwrap();
    let stored = all(store.as_ref(), Interval::M1).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].candle.close, 100.75);
}

async fn ranges_are_half_open_and_ascending(store: Arc<dyn Store>) {
    // Written out of order, read back in order.
    let mut candles = series(10, MONDAY, HOUR);
    candles.reverse();
    store
        .upsert_candles("BTC", Interval::H1, "test", &candles)
        .await
        .unwrap();
    let got = store
        .candles(
            "BTC",
            Interval::H1,
            MONDAY + 2 * HOUR,
            MONDAY + 5 * HOUR,
            100,
        )
        .await
        .unwrap();
    let times: Vec<i64> = got.iter().map(|b| b.candle.open_time).collect();
    assert_eq!(
        times,
        vec![MONDAY + 2 * HOUR, MONDAY + 3 * HOUR, MONDAY + 4 * HOUR]
    );
    let limited = store
        .candles("BTC", Interval::H1, MONDAY, MONDAY + DAY, 4)
        .await
        .unwrap();
    assert_eq!(limited.len(), 4);
    assert_eq!(limited[3].candle.open_time, MONDAY + 3 * HOUR);
    // Other symbols and intervals are separate series.
    assert!(
        store
            .candles("ETH", Interval::H1, 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .candles("BTC", Interval::M1, 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn empty_ranges_return_nothing(store: Arc<dyn Store>) {
    store
        .upsert_candles("BTC", Interval::H1, "test", &series(5, MONDAY, HOUR))
        .await
        .unwrap();
    assert!(
        store
            .candles("BTC", Interval::H1, MONDAY, MONDAY, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .candles("BTC", Interval::H1, MONDAY + DAY, MONDAY + 2 * DAY, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .upsert_candles("BTC", Interval::H1, "test", &[])
            .await
            .unwrap(),
        0
    );
    let page = read_bars(
        store.as_ref(),
        &range("BTC", Interval::D1, 0, MONDAY),
        SourceChoice::Derived(Interval::H1),
        10,
    )
    .await
    .unwrap();
    assert!(page.bars.is_empty() && page.next_start.is_none());
}

async fn series_track_stored_ranges(store: Arc<dyn Store>) {
    store
        .upsert_candles("BTC", Interval::H1, "test", &series(5, MONDAY, HOUR))
        .await
        .unwrap();
    store
        .upsert_candles(
            "BTC",
            Interval::H1,
            "test",
            &series(2, MONDAY - 2 * HOUR, HOUR),
        )
        .await
        .unwrap();
    store
        .upsert_candles("ETH", Interval::M1, "test", &series(3, MONDAY, MINUTE))
        .await
        .unwrap();
    let btc = store.series(Some("BTC")).await.unwrap();
    assert_eq!(btc.len(), 1);
    assert_eq!(btc[0].interval, Interval::H1);
    assert_eq!(btc[0].first_open_time, MONDAY - 2 * HOUR);
    assert_eq!(btc[0].last_open_time, MONDAY + 4 * HOUR);
    assert_eq!(store.series(None).await.unwrap().len(), 2);
}

async fn aggregates_hand_computed_buckets(store: Arc<dyn Store>) {
    // Seven minutes: bucket 00:00-00:05 holds minutes 0-4, bucket 00:05 holds 5-6.
    let minutes = [
        (10.0, 11.0, 9.5, 10.5, 2.0),
        (10.5, 12.0, 10.0, 11.5, 1.0),
        (11.5, 11.75, 8.0, 9.0, 4.0),
        (9.0, 9.5, 8.5, 9.25, 0.5),
        (9.25, 10.0, 9.0, 9.75, 1.5),
        (9.75, 13.0, 9.5, 12.5, 3.0),
        (12.5, 12.75, 12.0, 12.25, 2.0),
    ];
    let candles: Vec<Candle> = minutes
        .iter()
        .enumerate()
        .map(|(i, &(open, high, low, close, volume))| Candle {
            open_time: MONDAY + i as i64 * MINUTE,
            open,
            high,
            low,
            close,
            volume,
        })
        .collect();
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    let page = read_bars(
        store.as_ref(),
        &range("BTC", Interval::M5, MONDAY, MONDAY + HOUR),
        SourceChoice::Derived(Interval::M1),
        10,
    )
    .await
    .unwrap();
    let got: Vec<(Candle, u32)> = page.bars.iter().map(|b| (b.candle, b.count)).collect();
    assert_eq!(
        got,
        vec![
            (
                Candle {
                    open_time: MONDAY,
                    open: 10.0,
                    high: 12.0,
                    low: 8.0,
                    close: 9.75,
                    volume: 9.0
                },
                5
            ),
            (
                Candle {
                    open_time: MONDAY + 5 * MINUTE,
                    open: 9.75,
                    high: 13.0,
                    low: 9.5,
                    close: 12.25,
                    volume: 5.0
                },
                2
            ),
        ]
    );
}

async fn aggregates_every_interval(store: Arc<dyn Store>) {
    // Two weeks of minutes from a Monday: every coarser interval has whole buckets.
    let n = 14 * 24 * 60;
    store
        .upsert_candles("BTC", Interval::M1, "test", &series(n, MONDAY, MINUTE))
        .await
        .unwrap();
    for interval in Interval::ALL.into_iter().skip(1) {
        let per_bucket = interval.millis() / MINUTE;
        let page = read_bars(
            store.as_ref(),
            &range("BTC", interval, MONDAY, MONDAY + 14 * DAY),
            SourceChoice::Derived(Interval::M1),
            5_000,
        )
        .await
        .unwrap();
        assert_eq!(page.bars.len() as i64, n / per_bucket, "{interval}");
        for (k, bar) in page.bars.iter().enumerate() {
            let first = k as i64 * per_bucket;
            let last = first + per_bucket - 1;
            let volume: f64 = (first..=last).map(|i| 1.0 + (i % 3) as f64).sum();
            let expected = Candle {
                open_time: MONDAY + k as i64 * interval.millis(),
                open: 100.0 + first as f64,
                high: 101.0 + last as f64,
                low: 99.0 + first as f64,
                close: 100.5 + last as f64,
                volume,
            };
            assert_eq!(bar.candle, expected, "{interval} bucket {k}");
            assert_eq!(i64::from(bar.count), per_bucket);
        }
    }
}

async fn weeks_start_on_monday(store: Arc<dyn Store>) {
    // Hourly candles from Saturday 2023-12-30 to Tuesday 2024-01-02.
    let saturday = MONDAY - 2 * DAY;
    store
        .upsert_candles("BTC", Interval::H1, "test", &series(96, saturday, HOUR))
        .await
        .unwrap();
    let page = read_bars(
        store.as_ref(),
        &range(
            "BTC",
            Interval::W1,
            Interval::W1.bucket_start(saturday),
            MONDAY + 7 * DAY,
        ),
        SourceChoice::Derived(Interval::H1),
        10,
    )
    .await
    .unwrap();
    let got: Vec<(i64, u32)> = page
        .bars
        .iter()
        .map(|b| (b.candle.open_time, b.count))
        .collect();
    assert_eq!(got, vec![(MONDAY - 7 * DAY, 48), (MONDAY, 48)]);
    assert_eq!(page.bars[1].candle.open, 148.0);
}

async fn derived_buckets_report_missing_minutes(store: Arc<dyn Store>) {
    let mut candles = series(15, MONDAY, MINUTE);
    candles.retain(|c| c.open_time != MONDAY + 7 * MINUTE && c.open_time != MONDAY + 8 * MINUTE);
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    let page = read_bars(
        store.as_ref(),
        &range("BTC", Interval::M5, MONDAY, MONDAY + HOUR),
        SourceChoice::Derived(Interval::M1),
        10,
    )
    .await
    .unwrap();
    let counts: Vec<u32> = page.bars.iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![5, 3, 5]);
    // Nothing is invented for the gap: the bucket's volume is the three minutes it holds.
    // Minutes 5, 6 and 9 hold volumes 3, 1 and 1.
    assert_eq!(page.bars[1].candle.volume, 5.0);
}

async fn picks_native_then_finest_divisor(store: Arc<dyn Store>) {
    // Hours for ten days, quarter hours for the last day only.
    store
        .upsert_candles("BTC", Interval::H1, "test", &series(240, MONDAY, HOUR))
        .await
        .unwrap();
    let recent = MONDAY + 9 * DAY;
    store
        .upsert_candles(
            "BTC",
            Interval::M15,
            "test",
            &series(96, recent, 15 * MINUTE),
        )
        .await
        .unwrap();
    let stored = store.series(None).await.unwrap();
    let pick = |symbol, interval, start| SourceChoice::pick(&stored, symbol, interval, start);
    assert_eq!(pick("BTC", Interval::H1, MONDAY), SourceChoice::Native);
    // The finest source that covers the window wins...
    assert_eq!(
        pick("BTC", Interval::H4, recent),
        SourceChoice::Derived(Interval::M15)
    );
    // ...but a short fine history does not hide the longer coarse one.
    assert_eq!(
        pick("BTC", Interval::H4, MONDAY),
        SourceChoice::Derived(Interval::H1)
    );
    assert_eq!(
        pick("BTC", Interval::H4, MONDAY - DAY),
        SourceChoice::Derived(Interval::H1)
    );
    assert_eq!(pick("BTC", Interval::M5, recent), SourceChoice::Unavailable);
    assert_eq!(pick("ETH", Interval::H1, MONDAY), SourceChoice::Unavailable);
}

async fn paging_returns_every_candle_once(store: Arc<dyn Store>) {
    let candles = series(1_000, MONDAY, MINUTE);
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    let window = range(
        "BTC",
        Interval::M1,
        MONDAY + 3 * MINUTE,
        MONDAY + 997 * MINUTE,
    );
    let mut seen = Vec::new();
    let mut start = window.start;
    loop {
        let page = read_bars(
            store.as_ref(),
            &CandleRange {
                start,
                ..window.clone()
            },
            SourceChoice::Native,
            77,
        )
        .await
        .unwrap();
        assert!(page.bars.len() <= 77);
        seen.extend(page.bars.iter().map(|b| b.candle));
        match page.next_start {
            Some(next) => start = next,
            None => break,
        }
    }
    assert_eq!(seen, candles[3..997].to_vec());
}

async fn derived_paging_returns_every_bucket_once(store: Arc<dyn Store>) {
    store
        .upsert_candles("BTC", Interval::M1, "test", &series(600, MONDAY, MINUTE))
        .await
        .unwrap();
    let window = range("BTC", Interval::M15, MONDAY, MONDAY + DAY);
    let whole = read_bars(
        store.as_ref(),
        &window,
        SourceChoice::Derived(Interval::M1),
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(whole.bars.len(), 40);
    let mut seen = Vec::new();
    let mut start = window.start;
    loop {
        let page = read_bars(
            store.as_ref(),
            &CandleRange {
                start,
                ..window.clone()
            },
            SourceChoice::Derived(Interval::M1),
            7,
        )
        .await
        .unwrap();
        seen.extend(page.bars);
        match page.next_start {
            Some(next) => start = next,
            None => break,
        }
    }
    assert_eq!(seen, whole.bars);
}

async fn streams_a_whole_range(store: Arc<dyn Store>) {
    let candles = series(2_500, MONDAY, MINUTE);
    store
        .upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    let pages: Vec<Vec<Bar>> = stream_bars(
        store.clone(),
        range("BTC", Interval::M1, MONDAY, MONDAY + 2 * DAY),
        SourceChoice::Native,
        1_000,
        u64::MAX,
    )
    .try_collect()
    .await
    .unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1_000, 1_000, 500]
    );
    let streamed: Vec<Candle> = pages.into_iter().flatten().map(|b| b.candle).collect();
    assert_eq!(streamed, candles);
    // The row cap stops the stream exactly.
    let capped: Vec<Vec<Bar>> = stream_bars(
        store.clone(),
        range("BTC", Interval::M1, MONDAY, MONDAY + DAY),
        SourceChoice::Native,
        1_000,
        1_234,
    )
    .try_collect()
    .await
    .unwrap();
    assert_eq!(capped.iter().map(Vec::len).sum::<usize>(), 1_234);
}

fn price(symbol: &str, price: f64, as_of: i64) -> LatestPrice {
    LatestPrice {
        symbol: symbol.to_owned(),
        price,
        open_24h: 100.0,
        high_24h: 120.0,
        low_24h: 90.0,
        volume_24h: 5_000.0,
        as_of,
        source: "test".to_owned(),
    }
}

async fn latest_price_keeps_the_newest(store: Arc<dyn Store>) {
    store
        .upsert_latest_price(&price("BTC", 110.0, 2_000))
        .await
        .unwrap();
    store
        .upsert_latest_price(&price("BTC", 105.0, 1_000))
        .await
        .unwrap();
    store
        .upsert_latest_price(&price("ETH", 3.5, 1_500))
        .await
        .unwrap();
    let got = store
        .latest_prices(&["BTC".into(), "ETH".into(), "XRP".into()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![price("BTC", 110.0, 2_000), price("ETH", 3.5, 1_500)]
    );
    store
        .upsert_latest_price(&price("BTC", 111.0, 3_000))
        .await
        .unwrap();
    assert_eq!(
        store.latest_prices(&["BTC".into()]).await.unwrap()[0].price,
        111.0
    );
    assert!(store.latest_prices(&[]).await.unwrap().is_empty());
}

async fn assets_round_trip(store: Arc<dyn Store>) {
    let btc = Asset {
        symbol: "BTC".into(),
        name: "Bitcoin".into(),
        quote: "USD".into(),
        sources: vec!["binance".into(), "simulated".into()],
        created_at: 1,
    };
    let eth = Asset {
        symbol: "ETH".into(),
        name: "Ether".into(),
        sources: vec![],
        ..btc.clone()
    };
    store.upsert_asset(&eth).await.unwrap();
    store.upsert_asset(&btc).await.unwrap();
    store.upsert_asset(&btc).await.unwrap();
    assert_eq!(store.assets().await.unwrap(), vec![btc.clone(), eth]);
    assert_eq!(store.asset("BTC").await.unwrap(), Some(btc));
    assert_eq!(store.asset("NOPE").await.unwrap(), None);
}

async fn an_asset_comes_with_its_series(store: Arc<dyn Store>) {
    let asset = |symbol: &str| Asset {
        symbol: symbol.into(),
        name: symbol.into(),
        quote: "USD".into(),
        sources: vec!["binance".into()],
        created_at: 1,
    };
    for symbol in ["BTC", "ETH"] {
        store.upsert_asset(&asset(symbol)).await.unwrap();
    }
    store
        .upsert_candles("BTC", Interval::H1, "test", &series(5, MONDAY, HOUR))
        .await
        .unwrap();
    store
        .upsert_candles("BTC", Interval::M1, "test", &series(3, MONDAY, MINUTE))
        .await
        .unwrap();
    // Candles of a symbol no asset has are not an asset.
    store
        .upsert_candles("SOL", Interval::M1, "test", &series(3, MONDAY, MINUTE))
        .await
        .unwrap();

    let (btc, mut stored) = store.asset_with_series("BTC").await.unwrap().unwrap();
    assert_eq!(btc, asset("BTC"));
    stored.sort_by_key(|s| s.interval);
    assert_eq!(stored, {
        let mut expected = store.series(Some("BTC")).await.unwrap();
        expected.sort_by_key(|s| s.interval);
        expected
    });
    assert_eq!(stored.len(), 2);

    let (eth, none) = store.asset_with_series("ETH").await.unwrap().unwrap();
    assert_eq!((eth, none), (asset("ETH"), vec![]));
    assert_eq!(store.asset_with_series("SOL").await.unwrap(), None);
    assert_eq!(store.asset_with_series("NOPE").await.unwrap(), None);
}

/// A store may keep what `asset_with_series` read, but never past one of its own writes.
async fn a_lookup_sees_the_writes_before_it(store: Arc<dyn Store>) {
    let mut btc = Asset {
        symbol: "BTC".into(),
        name: "Bitcoin".into(),
        quote: "USD".into(),
        sources: vec!["binance".into()],
        created_at: 1,
    };
    store.upsert_asset(&btc).await.unwrap();
    let ranges = |found: Option<(Asset, Vec<marketd_storage::SeriesInfo>)>| {
        let (asset, mut series) = found.unwrap();
        series.sort_by_key(|s| s.interval);
        let ranges: Vec<_> = series
            .iter()
            .map(|s| (s.interval, s.first_open_time, s.last_open_time))
            .collect();
        (asset.name, ranges)
    };
    assert_eq!(
        ranges(store.asset_with_series("BTC").await.unwrap()),
        ("Bitcoin".into(), vec![])
    );

    store
        .upsert_candles("BTC", Interval::H1, "test", &series(5, MONDAY, HOUR))
        .await
        .unwrap();
    let h1 = (Interval::H1, MONDAY, MONDAY + 4 * HOUR);
    assert_eq!(
        ranges(store.asset_with_series("BTC").await.unwrap()),
        ("Bitcoin".into(), vec![h1])
    );

    // Earlier history, through the batched write a bulk import uses.
    let (batches, receiver) = tokio::sync::mpsc::channel(2);
    batches
        .send(marketd_storage::CandleBatch::Rows(series(
            2,
            MONDAY - 2 * HOUR,
            HOUR,
        )))
        .await
        .unwrap();
    batches
        .send(marketd_storage::CandleBatch::Commit)
        .await
        .unwrap();
    store
        .upsert_candle_batches("BTC", Interval::H1, "test", receiver)
        .await
        .unwrap();
    let h1 = (Interval::H1, MONDAY - 2 * HOUR, MONDAY + 4 * HOUR);
    assert_eq!(
        ranges(store.asset_with_series("BTC").await.unwrap()),
        ("Bitcoin".into(), vec![h1])
    );

    btc.name = "Bitcoin (renamed)".into();
    store.upsert_asset(&btc).await.unwrap();
    assert_eq!(
        ranges(store.asset_with_series("BTC").await.unwrap()),
        ("Bitcoin (renamed)".into(), vec![h1])
    );
}

async fn awkward_values_and_sources_read_back_exactly(store: Arc<dyn Store>) {
    let values = [
        0.1 + 0.2,
        1.0 / 3.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        1e21,
        123_456_789.012_345_68,
        42.0,
        0.0,
    ];
    let candles: Vec<Candle> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| Candle {
            open_time: MONDAY + i as i64 * HOUR,
            open: v,
            high: v,
            low: v / 2.0,
            close: -v,
            volume: v.sqrt(),
        })
        .collect();
    let (plain, awkward) = (candles.split_at(4).0, candles.split_at(4).1);
    store
        .upsert_candles("BTC", Interval::H1, "binance", plain)
        .await
        .unwrap();
    let odd_source = "csv,\"quoted\"\nnext line, ünïcode";
    store
        .upsert_candles("BTC", Interval::H1, odd_source, awkward)
        .await
        .unwrap();
    let read = store
        .candles("BTC", Interval::H1, MONDAY, MONDAY + DAY, 100)
        .await
        .unwrap();
    assert_eq!(read.len(), candles.len());
    for (i, (bar, want)) in read.iter().zip(&candles).enumerate() {
        let bits = |c: &Candle| {
            [c.open, c.high, c.low, c.close, c.volume]
                .map(|v| if v == 0.0 { 0 } else { v.to_bits() })
        };
        assert_eq!(bar.candle.open_time, want.open_time);
        assert_eq!(
            bits(&bar.candle),
            bits(want),
            "candle {i}: {:?}",
            bar.candle
        );
        let source = if i < 4 { "binance" } else { odd_source };
        assert_eq!(bar.source, source);
    }
}

async fn values_alone_read_the_same_candles(store: Arc<dyn Store>) {
    store
        .upsert_candles("BTC", Interval::H1, "binance", &series(30, MONDAY, HOUR))
        .await
        .unwrap();
    store
        .upsert_candles(
            "BTC",
            Interval::H1,
            "kraken",
            &series(30, MONDAY + 30 * HOUR, HOUR),
        )
        .await
        .unwrap();
    let full = store
        .candles("BTC", Interval::H1, MONDAY + 5 * HOUR, MONDAY + DAY * 3, 40)
        .await
        .unwrap();
    let values = store
        .candle_values("BTC", Interval::H1, MONDAY + 5 * HOUR, MONDAY + DAY * 3, 40)
        .await
        .unwrap();
    assert_eq!(full.len(), 40);
    assert_eq!(
        values.iter().map(|b| b.candle).collect::<Vec<_>>(),
        full.iter().map(|b| b.candle).collect::<Vec<_>>()
    );
    // A backend may skip the source; it never makes one up.
    for (value, bar) in values.iter().zip(&full) {
        assert!(
            value.source.is_empty() || value.source == bar.source,
            "{value:?}"
        );
        assert_eq!(value.count, 1);
    }
    assert!(
        store
            .candle_values("BTC", Interval::H1, MONDAY + DAY * 9, MONDAY + DAY * 10, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Paged the same way as whole bars, native and derived.
    for (interval, choice) in [
        (Interval::H1, SourceChoice::Native),
        (Interval::H4, SourceChoice::Derived(Interval::H1)),
    ] {
        let window = range("BTC", interval, MONDAY, MONDAY + 3 * DAY);
        let bars = read_bars(store.as_ref(), &window, choice, 7).await.unwrap();
        let values = read_bar_values(store.as_ref(), &window, choice, 7)
            .await
            .unwrap();
        assert_eq!(values.next_start, bars.next_start, "{interval:?}");
        assert!(values.next_start.is_some());
        assert_eq!(
            values.bars.iter().map(|b| b.candle).collect::<Vec<_>>(),
            bars.bars.iter().map(|b| b.candle).collect::<Vec<_>>(),
            "{interval:?}"
        );
    }
}
