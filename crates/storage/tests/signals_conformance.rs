//! The stored-signal half of the Store specification, run against SQLite and Postgres.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use marketd_domain::{Candle, Interval};
use marketd_storage::{SignalProgress, SignalUpdate, Store, StoredSignal};

marketd_testkit::store_suite!(
    candle_writes_mark_series_dirty_from_their_earliest_candle,
    saving_clears_the_mark_only_at_the_revision_read,
    saves_replace_changes_from_a_point_and_upsert_latest,
);

const HOUR: i64 = 3_600_000;

fn candle(i: i64) -> Candle {
    let close = 100.0 + i as f64;
    Candle {
        open_time: i * HOUR,
        open: close,
        high: close + 1.0,
        low: close - 1.0,
        close,
        volume: 10.0,
    }
}

fn candles(range: std::ops::Range<i64>) -> Vec<Candle> {
    range.map(candle).collect()
}

async fn write(store: &Arc<dyn Store>, hours: std::ops::Range<i64>) {
    store
        .upsert_candles("BTC", Interval::H1, "t", &candles(hours))
        .await
        .unwrap();
}

async fn progress(store: &Arc<dyn Store>) -> SignalProgress {
    store
        .signal_progress_of("BTC", Interval::H1)
        .await
        .unwrap()
        .unwrap()
}

fn doc(strategy: &str, open_time: i64) -> StoredSignal {
    StoredSignal {
        strategy: strategy.to_owned(),
        open_time,
        body: format!("{{\"strategy\":\"{strategy}\",\"at\":{open_time}}}"),
    }
}

fn update(
    revision: i64,
    through: i64,
    replace_from: i64,
    changes: Vec<StoredSignal>,
) -> SignalUpdate {
    SignalUpdate {
        symbol: "BTC".into(),
        interval: Interval::H1,
        revision,
        through,
        history_from: 0,
        replace_from,
        latest: vec![doc("ema_cross", through), doc("macd_cross", through)],
        changes,
    }
}

async fn candle_writes_mark_series_dirty_from_their_earliest_candle(store: Arc<dyn Store>) {
    assert!(store.signal_progress().await.unwrap().is_empty());
    write(&store, 10..20).await;
    let now = progress(&store).await;
    assert_eq!(now.revision, 1);
    assert_eq!(now.dirty_from, Some(10 * HOUR));
    assert_eq!((now.through, now.history_from), (None, None));
    // A later write keeps the earliest mark; an earlier one lowers it.
    write(&store, 15..25).await;
    write(&store, 5..7).await;
    let now = progress(&store).await;
    assert_eq!(now.revision, 3);
    assert_eq!(now.dirty_from, Some(5 * HOUR));
    assert_eq!(now.series.first_open_time, 5 * HOUR);
    assert_eq!(now.series.last_open_time, 24 * HOUR);
    assert!(
        store
            .signal_progress_of("BTC", Interval::M1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.signal_progress().await.unwrap(), vec![now]);
}

async fn saving_clears_the_mark_only_at_the_revision_read(store: Arc<dyn Store>) {
    write(&store, 0..10).await;
    let read = progress(&store).await;
    // A candle lands between reading the bookkeeping and saving: the mark must survive,
    // or the engine would never look at that candle.
    write(&store, 9..11).await;
    store
        .save_signals(&update(read.revision, 9 * HOUR, i64::MIN, vec![]))
        .await
        .unwrap();
    let after = progress(&store).await;
    assert_eq!(after.through, Some(9 * HOUR));
    assert_eq!(after.history_from, Some(0));
    assert_eq!(
        after.dirty_from,
        Some(0),
        "a write after the read keeps the series dirty"
    );
    store
        .save_signals(&update(after.revision, 10 * HOUR, i64::MIN, vec![]))
        .await
        .unwrap();
    let clean = progress(&store).await;
    assert_eq!((clean.through, clean.dirty_from), (Some(10 * HOUR), None));
}

async fn saves_replace_changes_from_a_point_and_upsert_latest(store: Arc<dyn Store>) {
    write(&store, 0..10).await;
    let first = vec![
        doc("ema_cross", HOUR),
        doc("ema_cross", 4 * HOUR),
        doc("macd_cross", 6 * HOUR),
    ];
    store
        .save_signals(&update(1, 8 * HOUR, i64::MIN, first))
        .await
        .unwrap();
    // Candles from 5h on were revised: changes before stay, those from 5h are replaced.
    store
        .save_signals(&update(
            1,
            9 * HOUR,
            5 * HOUR,
            vec![doc("macd_cross", 7 * HOUR)],
        ))
        .await
        .unwrap();
    let ema = store
        .signal_changes("BTC", Interval::H1, "ema_cross", 0, 100 * HOUR, 10)
        .await
        .unwrap();
    assert_eq!(
        ema,
        vec![doc("ema_cross", HOUR), doc("ema_cross", 4 * HOUR)]
    );
    let macd = store
        .signal_changes("BTC", Interval::H1, "macd_cross", 0, 100 * HOUR, 10)
        .await
        .unwrap();
    assert_eq!(macd, vec![doc("macd_cross", 7 * HOUR)]);
    // The range is half open and the limit holds.
    let page = store
        .signal_changes("BTC", Interval::H1, "ema_cross", HOUR, 4 * HOUR, 10)
        .await
        .unwrap();
    assert_eq!(page, vec![doc("ema_cross", HOUR)]);
    let limited = store
        .signal_changes("BTC", Interval::H1, "ema_cross", 0, 100 * HOUR, 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let latest = store.latest_signals("BTC", Interval::H1).await.unwrap();
    assert_eq!(
        latest,
        vec![doc("ema_cross", 9 * HOUR), doc("macd_cross", 9 * HOUR)]
    );
    assert!(
        store
            .latest_signals("ETH", Interval::H1)
            .await
            .unwrap()
            .is_empty()
    );
}
