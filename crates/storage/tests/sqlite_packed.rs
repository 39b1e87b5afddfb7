//! SQLite keeps each candle's values packed beside its columns (the `packed_candles`
//! migration) and reads pages from the packed values. A row without one (stored before
//! that migration, or by another writer) must read the same, be packed at the next
//! start, and a packed value must never outlive a change to the columns.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use marketd_domain::{Candle, Interval};
use marketd_storage::{ConnectOptions, Store};
use sqlx::Connection as _;
use sqlx::SqliteConnection;

const HOUR: i64 = 3_600_000;
const ORIGIN: i64 = 1_704_067_200_000;

fn candle(i: i64) -> Candle {
    let open = 100.0 + i as f64 / 3.0;
    Candle {
        open_time: ORIGIN + i * HOUR,
        open,
        high: open + 0.1,
        low: open - 0.2,
        close: open + 1e-9,
        volume: 1.0 / (i + 1) as f64,
    }
}

async fn open(url: &str) -> std::sync::Arc<dyn Store> {
    let store = marketd_storage::connect(url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn read(store: &dyn Store) -> Vec<(Candle, String)> {
    store
        .candles("BTC", Interval::H1, i64::MIN, i64::MAX, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|bar| (bar.candle, bar.source))
        .collect()
}

async fn unpacked(conn: &mut SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM candles WHERE packed IS NULL")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Stores `c` as a writer that knows nothing of the packed value would.
async fn insert_without_packed(conn: &mut SqliteConnection, c: &Candle, source: &str) {
    sqlx::query(
        "INSERT INTO candles (symbol, period, open_time, open, high, low, close, volume,
                              source, updated_at)
         VALUES ('BTC', '1h', ?, ?, ?, ?, ?, ?, ?, 0)",
    )
    .bind(c.open_time)
    .bind(c.open)
    .bind(c.high)
    .bind(c.low)
    .bind(c.close)
    .bind(c.volume)
    .bind(source)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn rows_without_a_packed_value_read_alike_and_are_packed_at_the_next_start() {
    let db = marketd_testkit::TestDb::sqlite();
    let store = open(&db.url).await;
    let written: Vec<Candle> = (0..6).map(candle).collect();
    store
        .upsert_candles("BTC", Interval::H1, "binance", &written[..3])
        .await
        .unwrap();
    let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
    assert_eq!(unpacked(&mut conn).await, 0, "marketd packs what it writes");
    for c in &written[3..] {
        insert_without_packed(&mut conn, c, "other, writer\n").await;
    }
    assert_eq!(unpacked(&mut conn).await, 3);

    let expected: Vec<(Candle, String)> = written
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                *c,
                if i < 3 { "binance" } else { "other, writer\n" }.to_owned(),
            )
        })
        .collect();
    assert_eq!(read(store.as_ref()).await, expected);

    store.close().await;
    let store = open(&db.url).await;
    assert_eq!(unpacked(&mut conn).await, 0, "packed at start-up");
    assert_eq!(read(store.as_ref()).await, expected);
}

#[tokio::test]
async fn a_changed_value_drops_a_stale_packed_value_and_a_rewrite_keeps_it() {
    let db = marketd_testkit::TestDb::sqlite();
    let store = open(&db.url).await;
    let written: Vec<Candle> = (0..3).map(candle).collect();
    store
        .upsert_candles("BTC", Interval::H1, "binance", &written)
        .await
        .unwrap();
    let mut conn = SqliteConnection::connect(&db.url).await.unwrap();

    // The same values again, as a re-ingest writes them: still packed.
    store
        .upsert_candles("BTC", Interval::H1, "binance", &written)
        .await
        .unwrap();
    assert_eq!(unpacked(&mut conn).await, 0);

    // Another writer changes a value and leaves the packed value alone.
    sqlx::query("UPDATE candles SET close = 7.5 WHERE open_time = ?")
        .bind(written[1].open_time)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(unpacked(&mut conn).await, 1);
    let closes: Vec<f64> = read(store.as_ref())
        .await
        .iter()
        .map(|(c, _)| c.close)
        .collect();
    assert_eq!(closes, [written[0].close, 7.5, written[2].close]);

    // marketd's own rewrite packs it again.
    store
        .upsert_candles("BTC", Interval::H1, "binance", &written[1..2])
        .await
        .unwrap();
    assert_eq!(unpacked(&mut conn).await, 0);
    assert_eq!(read(store.as_ref()).await[1].0, written[1]);
}
