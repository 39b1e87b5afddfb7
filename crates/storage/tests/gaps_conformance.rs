//! The known-gap half of the Store specification, run against SQLite and Postgres.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use marketd_domain::{Candle, Interval};
use marketd_storage::{KnownGap, Store};

marketd_testkit::store_suite!(
    a_recorded_gap_is_listed_where_it_overlaps,
    recording_merges_touching_gaps_and_leaves_out_stored_candles,
    candles_written_into_a_gap_shrink_split_and_remove_it,
);

const HOUR: i64 = 3_600_000;

fn candle(hour: i64) -> Candle {
    Candle {
        open_time: hour * HOUR,
        open: 100.0,
        high: 101.0,
        low: 99.0,
        close: 100.5,
        volume: 2.0,
    }
}

async fn write(store: &Arc<dyn Store>, symbol: &str, hours: &[i64]) {
    let candles: Vec<Candle> = hours.iter().copied().map(candle).collect();
    store
        .upsert_candles(symbol, Interval::H1, "binance", &candles)
        .await
        .unwrap();
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn record(store: &Arc<dyn Store>, hours: (i64, i64), sources: &[&str], at: i64) {
    store
        .record_gap(
            "BTC",
            Interval::H1,
            hours.0 * HOUR,
            hours.1 * HOUR,
            &names(sources),
            at,
        )
        .await
        .unwrap();
}

/// The stored gaps of BTC 1h as (first hour, end hour).
async fn spans(store: &Arc<dyn Store>) -> Vec<(i64, i64)> {
    store
        .gaps("BTC", Interval::H1, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|g| (g.start / HOUR, g.end / HOUR))
        .collect()
}

async fn a_recorded_gap_is_listed_where_it_overlaps(store: Arc<dyn Store>) {
    write(&store, "BTC", &[0, 1, 5, 6]).await;
    record(&store, (2, 5), &["binance", "coinbase"], 42).await;
    let expected = KnownGap {
        symbol: "BTC".into(),
        interval: Interval::H1,
        start: 2 * HOUR,
        end: 5 * HOUR,
        sources: names(&["binance", "coinbase"]),
        attempts: 1,
        detected_at: 42,
        checked_at: 42,
    };
    let listed = |start: i64, end: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .gaps("BTC", Interval::H1, start * HOUR, end * HOUR)
                .await
                .unwrap()
        }
    };
    assert_eq!(listed(0, 10).await, std::slice::from_ref(&expected));
    assert_eq!(listed(4, 5).await, [expected], "listed whole, not clipped");
    assert!(listed(0, 2).await.is_empty(), "the end is exclusive");
    assert!(listed(5, 9).await.is_empty());
    assert!(
        store
            .gaps("BTC", Interval::M1, 0, 10 * HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .gaps("ETH", Interval::H1, 0, 10 * HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    // An empty range records nothing.
    record(&store, (8, 8), &["binance"], 43).await;
    assert_eq!(spans(&store).await, [(2, 5)]);
}

async fn recording_merges_touching_gaps_and_leaves_out_stored_candles(store: Arc<dyn Store>) {
    write(&store, "BTC", &[4]).await;
    record(&store, (0, 2), &["kraken"], 10).await;
    record(&store, (7, 9), &["binance"], 20).await;
    assert_eq!(spans(&store).await, [(0, 2), (7, 9)]);
    // Touches the first, overlaps the second, and spans a stored candle.
    record(&store, (2, 8), &["binance", "coinbase"], 30).await;
    let gaps = store
        .gaps("BTC", Interval::H1, i64::MIN, i64::MAX)
        .await
        .unwrap();
    let got: Vec<(i64, i64, Vec<String>, i64, i64, i64)> = gaps
        .into_iter()
        .map(|g| {
            (
                g.start / HOUR,
                g.end / HOUR,
                g.sources,
                g.attempts,
                g.detected_at,
                g.checked_at,
            )
        })
        .collect();
    let sources = names(&["kraken", "binance", "coinbase"]);
    assert_eq!(
        got,
        [
            (0, 4, sources.clone(), 2, 10, 30),
            (5, 9, sources, 2, 10, 30),
        ]
    );
    // Asked again: the count grows.
    record(&store, (0, 4), &["kraken"], 40).await;
    let first = store
        .gaps("BTC", Interval::H1, 0, HOUR)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (first.attempts, first.detected_at, first.checked_at),
        (3, 10, 40)
    );
}

async fn candles_written_into_a_gap_shrink_split_and_remove_it(store: Arc<dyn Store>) {
    record(&store, (10, 20), &["binance"], 1).await;
    record(&store, (30, 32), &["binance"], 1).await;
    // Another series' candles change nothing.
    write(&store, "ETH", &[12, 30]).await;
    assert_eq!(spans(&store).await, [(10, 20), (30, 32)]);

    write(&store, "BTC", &[10, 11]).await;
    assert_eq!(
        spans(&store).await,
        [(12, 20), (30, 32)],
        "shrunk at the start"
    );
    write(&store, "BTC", &[15, 19]).await;
    assert_eq!(
        spans(&store).await,
        [(12, 15), (16, 19), (30, 32)],
        "split and shrunk at the end"
    );
    write(&store, "BTC", &[9, 12, 13, 14, 21, 30, 31]).await;
    assert_eq!(spans(&store).await, [(16, 19)], "filled ones are gone");
    let left = store
        .gaps("BTC", Interval::H1, 0, i64::MAX)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        left.sources,
        names(&["binance"]),
        "what is left keeps its story"
    );
}
