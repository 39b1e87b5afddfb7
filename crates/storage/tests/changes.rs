//! Announcements of written candles and prices, on both backends, and on Postgres across
//! processes sharing the database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use marketd_domain::{Candle, Interval, LatestPrice};
use marketd_storage::{Change, Changes, ConnectOptions, Store};

marketd_testkit::store_suite!(own_writes_are_announced);

fn candle(open_time: i64) -> Candle {
    Candle {
        open_time,
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close: 1.5,
        volume: 10.0,
    }
}

fn price(as_of: i64) -> LatestPrice {
    LatestPrice {
        symbol: "BTC".into(),
        price: 100.0,
        open_24h: 90.0,
        high_24h: 110.0,
        low_24h: 80.0,
        volume_24h: 5.0,
        as_of,
        source: "test".into(),
    }
}

/// The next announcement other than `Missed`; the wait only guards against a hang.
async fn next_known(changes: &mut Changes) -> Change {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match changes.next().await {
                Some(Change::Missed) => {}
                Some(change) => return change,
                None => panic!("the feed closed"),
            }
        }
    })
    .await
    .expect("an announcement")
}

async fn own_writes_are_announced(store: Arc<dyn Store>) {
    let mut changes = store.changes();
    if store.backend() == marketd_storage::Backend::Postgres {
        listening(&mut changes).await;
    }
    store
        .upsert_candles("BTC", Interval::H1, "test", &[candle(0), candle(3_600_000)])
        .await
        .unwrap();
    assert_eq!(next_known(&mut changes).await, Change::Candles);
    store.upsert_latest_price(&price(1_000)).await.unwrap();
    assert_eq!(next_known(&mut changes).await, Change::Prices);
}

/// A Postgres listener says `Missed` once it listens: whatever came before is unknown.
async fn listening(changes: &mut Changes) {
    let first = tokio::time::timeout(Duration::from_secs(30), changes.next()).await;
    assert_eq!(first.unwrap(), Some(Change::Missed));
}

/// Two pools stand for two processes: a write through one is heard by the other, and
/// saving signals (which updates `series` without new candles) is not a candle write.
#[tokio::test]
async fn postgres_announces_other_processes_writes() {
    let Some(db) = marketd_testkit::TestDb::postgres().await else {
        return;
    };
    let options = ConnectOptions::default();
    let reader = marketd_storage::connect(&db.url, &options).await.unwrap();
    reader.migrate().await.unwrap();
    let writer = marketd_storage::connect(&db.url, &options).await.unwrap();
    let mut changes = reader.changes();
    listening(&mut changes).await;

    writer
        .upsert_candles("ETH", Interval::H1, "test", &[candle(0)])
        .await
        .unwrap();
    assert_eq!(next_known(&mut changes).await, Change::Candles);

    let progress = writer.signal_progress().await.unwrap();
    assert_eq!(progress.len(), 1);
    writer
        .save_signals(&marketd_storage::SignalUpdate {
            symbol: "ETH".into(),
            interval: Interval::H1,
            revision: progress[0].revision,
            through: 0,
            history_from: 0,
            replace_from: 0,
            changes: Vec::new(),
            latest: Vec::new(),
        })
        .await
        .unwrap();
    // An older price than the stored one is not written, so it is not announced either.
    writer.upsert_latest_price(&price(2_000)).await.unwrap();
    writer.upsert_latest_price(&price(1_000)).await.unwrap();
    writer.upsert_latest_price(&price(3_000)).await.unwrap();
    for _ in 0..2 {
        assert_eq!(next_known(&mut changes).await, Change::Prices);
    }
    let quiet = tokio::time::timeout(Duration::from_millis(300), next_known(&mut changes)).await;
    assert!(quiet.is_err(), "nothing else was written: {quiet:?}");
    writer.close().await;
    reader.close().await;
}
