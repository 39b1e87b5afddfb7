//! Waits for a pooled connection are measured where they happen: in the store, around
//! taking a connection.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use marketd_storage::{ConnectOptions, PgStore, Store};
use marketd_testkit::TestDb;

fn one_connection() -> ConnectOptions {
    ConnectOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_query_behind_a_busy_pool_is_counted_with_its_wait() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = PgStore::connect(&db.url, &one_connection()).await.unwrap();
    store.migrate().await.unwrap();
    let before = store.pool_stats().waits;

    let held = store.pool().acquire().await.unwrap();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.assets().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(held);
    reader.await.unwrap().unwrap();

    let after = store.pool_stats().waits;
    assert_eq!(after.count, before.count + 1, "{after:?}");
    assert!(after.sum_micros - before.sum_micros >= 140_000, "{after:?}");
    // Buckets up to 0.1 s did not take it; the 1 s bucket did.
    assert_eq!(after.at_most[3], before.at_most[3], "{after:?}");
    assert_eq!(after.at_most[4], before.at_most[4] + 1, "{after:?}");
}

#[tokio::test]
async fn every_read_and_write_takes_a_counted_connection() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres().await]
        .into_iter()
        .flatten()
    {
        let store = marketd_storage::connect(&db.url, &one_connection())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let before = store.pool_stats().waits.count;
        store.assets().await.unwrap();
        store.series(None).await.unwrap();
        let candle = marketd_domain::Candle {
            open_time: 0,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
        };
        store
            .upsert_candles("BTC", marketd_domain::Interval::H1, "test", &[candle])
            .await
            .unwrap();
        // An empty write returns before touching the database.
        store
            .upsert_candles("BTC", marketd_domain::Interval::H1, "test", &[])
            .await
            .unwrap();
        let after = store.pool_stats().waits;
        assert_eq!(after.count, before + 3, "{}: {after:?}", db.url);
        assert_eq!(after.at_most[5], after.count, "{}: {after:?}", db.url);
    }
}
