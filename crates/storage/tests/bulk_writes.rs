//! Large candle writes (imports, long backfills), which Postgres streams with COPY: they
//! must store exactly what the row-by-row path stores, on both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use marketd_domain::{Candle, Interval};
use marketd_storage::{CandleBatch, ConnectOptions, Store, StoreError};
use sqlx::Connection as _;

const MINUTE: i64 = 60_000;
const ORIGIN: i64 = 1_704_067_200_000;
/// Above the size at which Postgres switches to COPY.
const ROWS: i64 = 30_000;

marketd_testkit::store_suite!(
    a_large_write_into_an_empty_range_stores_every_row,
    a_large_write_over_stored_rows_replaces_them,
    streamed_batches_write_what_one_upsert_would,
    streamed_batches_over_stored_rows_replace_them,
    abandoned_batches_write_nothing
);

fn candle(i: i64, bump: f64) -> Candle {
    let open = 100.0 + (i % 977) as f64 * 0.25 + bump;
    Candle {
        open_time: ORIGIN + i * MINUTE,
        open,
        high: open + 1.5,
        low: open - 1.25,
        close: open + 0.125,
        volume: (i % 13) as f64 + 0.5,
    }
}

async fn stored(store: &dyn Store) -> Vec<(Candle, String)> {
    store
        .candles("BTC", Interval::M1, i64::MIN, i64::MAX, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|bar| (bar.candle, bar.source))
        .collect()
}

async fn a_large_write_into_an_empty_range_stores_every_row(store: Arc<dyn Store>) {
    let candles: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    let written = store
        .upsert_candles("BTC", Interval::M1, "import", &candles)
        .await
        .unwrap();
    assert_eq!(written, ROWS as u64);
    let rows = stored(store.as_ref()).await;
    assert_eq!(rows.len(), candles.len());
    assert!(rows.iter().all(|(_, source)| source == "import"));
    assert_eq!(
        rows.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        candles
    );
    let series = store.series(Some("BTC")).await.unwrap();
    assert_eq!(series[0].first_open_time, ORIGIN);
    assert_eq!(series[0].last_open_time, ORIGIN + (ROWS - 1) * MINUTE);
}

async fn a_large_write_over_stored_rows_replaces_them(store: Arc<dyn Store>) {
    let first: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    store
        .upsert_candles("BTC", Interval::M1, "a", &first)
        .await
        .unwrap();
    // The second half again with new values, and as many new rows after it.
    let second: Vec<Candle> = (ROWS / 2..ROWS + ROWS / 2)
        .map(|i| candle(i, 3.0))
        .collect();
    let written = store
        .upsert_candles("BTC", Interval::M1, "b", &second)
        .await
        .unwrap();
    assert_eq!(written, ROWS as u64);
    let rows = stored(store.as_ref()).await;
    let expected: Vec<(Candle, String)> = first[..(ROWS / 2) as usize]
        .iter()
        .map(|c| (*c, "a".to_owned()))
        .chain(second.iter().map(|c| (*c, "b".to_owned())))
        .collect();
    assert_eq!(rows, expected);
}

/// Another writer commits a candle inside the range after the bulk write found it empty:
/// COPY then meets a duplicate key, and the write must still succeed, as an upsert.
#[tokio::test]
async fn postgres_bulk_write_survives_a_racing_writer() {
    let Some(db) = marketd_testkit::TestDb::postgres().await else {
        return;
    };
    let store = marketd_storage::connect(&db.url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut racer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut racer).await.unwrap();
    sqlx::query(
        "INSERT INTO candles (symbol, period, open_time, open, high, low, close, volume,
                              source, updated_at)
         VALUES ('BTC', '1m', $1, 1, 1, 1, 1, 1, 'racer', 0)",
    )
    .bind(ORIGIN + 100 * MINUTE)
    .execute(&mut racer)
    .await
    .unwrap();

    let candles: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    let writer = {
        let (store, candles) = (Arc::clone(&store), candles.clone());
        tokio::spawn(async move {
            store
                .upsert_candles("BTC", Interval::M1, "import", &candles)
                .await
        })
    };
    // The bulk write cannot see the uncommitted row, so it copies, and COPY waits on
    // that row's lock; commit only once it does.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the bulk write waits on the racing row");
    sqlx::query("COMMIT").execute(&mut racer).await.unwrap();

    let written = writer.await.unwrap().unwrap();
    assert_eq!(written, ROWS as u64);
    let rows = stored(store.as_ref()).await;
    assert_eq!(rows.len(), candles.len());
    assert!(rows.iter().all(|(_, source)| source == "import"));
    assert_eq!(
        rows.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        candles
    );
    store.close().await;
}

/// Sends `batches` then, when `commit`, the word to write; runs beside the write.
fn feed(batches: Vec<Vec<Candle>>, commit: bool) -> tokio::sync::mpsc::Receiver<CandleBatch> {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        for batch in batches {
            sender.send(CandleBatch::Rows(batch)).await.unwrap();
        }
        if commit {
            sender.send(CandleBatch::Commit).await.unwrap();
        }
    });
    receiver
}

async fn streamed_batches_write_what_one_upsert_would(store: Arc<dyn Store>) {
    let all: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    let third = (ROWS / 3) as usize;
    // Out of order across batches, and one open time sent twice: the later one wins.
    let mut late = candle(5, 7.0);
    late.volume = 99.0;
    let batches = vec![
        all[third..2 * third].to_vec(),
        all[..third].to_vec(),
        [all[2 * third..].to_vec(), vec![late]].concat(),
    ];
    let written = store
        .upsert_candle_batches("BTC", Interval::M1, "import", feed(batches, true))
        .await
        .unwrap();
    assert_eq!(written, ROWS as u64);
    let mut expected = all.clone();
    expected[5] = late;
    let rows = stored(store.as_ref()).await;
    assert_eq!(
        rows.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        expected
    );
    let series = store.series(Some("BTC")).await.unwrap();
    assert_eq!(
        (series[0].first_open_time, series[0].last_open_time),
        (ORIGIN, ORIGIN + (ROWS - 1) * MINUTE)
    );
}

async fn streamed_batches_over_stored_rows_replace_them(store: Arc<dyn Store>) {
    let first: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    store
        .upsert_candles("BTC", Interval::M1, "a", &first)
        .await
        .unwrap();
    let second: Vec<Candle> = (ROWS / 2..ROWS + ROWS / 2)
        .map(|i| candle(i, 3.0))
        .collect();
    let batches = second.chunks(7_000).map(<[Candle]>::to_vec).collect();
    let written = store
        .upsert_candle_batches("BTC", Interval::M1, "b", feed(batches, true))
        .await
        .unwrap();
    assert_eq!(written, ROWS as u64);
    let expected: Vec<(Candle, String)> = first[..(ROWS / 2) as usize]
        .iter()
        .map(|c| (*c, "a".to_owned()))
        .chain(second.iter().map(|c| (*c, "b".to_owned())))
        .collect();
    assert_eq!(stored(store.as_ref()).await, expected);
}

async fn abandoned_batches_write_nothing(store: Arc<dyn Store>) {
    let batch: Vec<Candle> = (0..ROWS).map(|i| candle(i, 0.0)).collect();
    let result = store
        .upsert_candle_batches("BTC", Interval::M1, "import", feed(vec![batch], false))
        .await;
    assert!(matches!(result, Err(StoreError::Aborted)), "{result:?}");
    assert!(stored(store.as_ref()).await.is_empty());
    assert!(store.series(Some("BTC")).await.unwrap().is_empty());
    // The connection it used is fit for the next write.
    store
        .upsert_candles("BTC", Interval::M1, "after", &[candle(0, 0.0)])
        .await
        .unwrap();
    assert_eq!(stored(store.as_ref()).await.len(), 1);
}
