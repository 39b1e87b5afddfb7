//! Postgres serves candle pages from `candle_blocks`, which triggers on `candles` keep
//! (the `candle_blocks` migration). Whatever writes candles, and however many writers at
//! once, the blocks must say exactly what the rows say, and pages must read the same
//! whether a range is dense, gappy or spans the ends of time.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use marketd_domain::{Candle, Interval};
use marketd_storage::{ConnectOptions, Store};
use marketd_testkit::TestDb;
use sqlx::{Connection as _, PgConnection};

const HOUR: i64 = 3_600_000;
const ORIGIN: i64 = 1_704_067_200_000;

fn candle(open_time: i64, close: f64) -> Candle {
    Candle {
        open_time,
        open: close - 0.5,
        high: close + 1.0,
        low: close - 1.0,
        close,
        volume: close / 7.0,
    }
}

async fn open() -> Option<(TestDb, Arc<dyn Store>, PgConnection)> {
    let db = TestDb::postgres().await?;
    let store = marketd_storage::connect(&db.url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let conn = PgConnection::connect(&db.url).await.unwrap();
    Some((db, store, conn))
}

/// Blocks that differ from the ones the rows of `candles` make, counted both ways.
async fn blocks_out_of_step(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "WITH rebuilt AS (
             SELECT symbol, period, candle_block(period, open_time) AS block,
                    string_agg(packed, ''::bytea ORDER BY open_time) AS packed,
                    string_agg(source, E'\\n' ORDER BY open_time) AS sources
             FROM candles GROUP BY 1, 2, 3),
         kept AS (SELECT symbol, period, block, packed, sources FROM candle_blocks)
         SELECT (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM rebuilt) a)
              + (SELECT count(*) FROM (SELECT * FROM rebuilt EXCEPT SELECT * FROM kept) b)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn block_count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM candle_blocks")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn open_times(store: &dyn Store, start: i64, end: i64, limit: u32) -> Vec<i64> {
    store
        .candles("BTC", Interval::H1, start, end, limit)
        .await
        .unwrap()
        .iter()
        .map(|bar| bar.candle.open_time)
        .collect()
}

#[tokio::test]
async fn blocks_follow_every_kind_of_write() {
    let Some((_db, store, mut conn)) = open().await else {
        return;
    };
    let candles: Vec<Candle> = (0..200)
        .map(|i| candle(ORIGIN + i * HOUR, i as f64))
        .collect();
    store
        .upsert_candles("BTC", Interval::H1, "binance", &candles)
        .await
        .unwrap();
    assert!(block_count(&mut conn).await >= 3);
    assert_eq!(blocks_out_of_step(&mut conn).await, 0, "after inserts");

    // An upsert replacing stored values, from another source.
    store
        .upsert_candles("BTC", Interval::H1, "kraken", &candles[60..70])
        .await
        .unwrap();
    assert_eq!(blocks_out_of_step(&mut conn).await, 0, "after an upsert");

    for (what, sql) in [
        (
            "an update",
            "UPDATE candles SET close = close * 2 WHERE open_time % 3 = 0",
        ),
        // Moves candles into other blocks, leaving their old ones thinner.
        (
            "a moving update",
            "UPDATE candles SET open_time = open_time + 10000::bigint * 3600000 WHERE open_time % 5 = 0",
        ),
        ("a delete", "DELETE FROM candles WHERE open_time % 7 = 0"),
        (
            "a whole block deleted",
            "DELETE FROM candles WHERE open_time < 1704067200000 + 64 * 3600000",
        ),
        (
            "a statement touching nothing",
            "UPDATE candles SET close = 0 WHERE false",
        ),
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        assert_eq!(blocks_out_of_step(&mut conn).await, 0, "after {what}");
    }
    let rows: Vec<i64> = sqlx::query_scalar("SELECT open_time FROM candles ORDER BY open_time")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        open_times(store.as_ref(), i64::MIN, i64::MAX, 10_000).await,
        rows
    );

    sqlx::query("TRUNCATE candles")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(block_count(&mut conn).await, 0);
    assert!(
        open_times(store.as_ref(), i64::MIN, i64::MAX, 10)
            .await
            .is_empty()
    );
}

/// Programs that know nothing of the blocks (a plain INSERT each, on connections of their
/// own) commit candles of one block at once: a block rebuilt without waiting for the
/// others' commits would lose their candles.
#[tokio::test]
async fn concurrent_writers_of_one_block_lose_nothing() {
    let Some((db, _store, mut conn)) = open().await else {
        return;
    };
    let block_start = ORIGIN / (64 * HOUR) * (64 * HOUR);
    let mut writers = Vec::new();
    for _ in 0..16 {
        writers.push(PgConnection::connect(&db.url).await.unwrap());
    }
    for round in 0..4 {
        let inserts: Vec<_> = writers
            .drain(..)
            .enumerate()
            .map(|(i, mut writer)| {
                let open_time = block_start + (round * 16 + i as i64) * HOUR;
                tokio::spawn(async move {
                    insert_directly(&mut writer, open_time).await;
                    writer
                })
            })
            .collect();
        for insert in inserts {
            writers.push(insert.await.unwrap());
        }
    }
    assert_eq!(block_count(&mut conn).await, 1);
    assert_eq!(blocks_out_of_step(&mut conn).await, 0);
}

/// Stores an hourly BTC candle with plain SQL, as a program other than marketd would.
async fn insert_directly(conn: &mut PgConnection, open_time: i64) {
    sqlx::query(
        "INSERT INTO candles (symbol, period, open_time, open, high, low, close, volume,
                              source, updated_at)
         VALUES ('BTC', '1h', $1, 1, 2, 0.5, 1.5, 3, 'direct', 0)",
    )
    .bind(open_time)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn pages_read_the_same_across_gaps_and_block_edges() {
    let Some((_db, store, mut conn)) = open().await else {
        return;
    };
    // One candle in every third block (64 hours each), then a dense run: a page over the
    // sparse part needs more blocks than a first guess asks for.
    let mut times: Vec<i64> = (0..40)
        .map(|i| ORIGIN + i * 3 * 64 * HOUR + 5 * HOUR)
        .collect();
    let dense_from = ORIGIN + 40 * 3 * 64 * HOUR;
    times.extend((0..300).map(|i| dense_from + i * HOUR));
    let candles: Vec<Candle> = times.iter().map(|&t| candle(t, 2.0)).collect();
    store
        .upsert_candles("BTC", Interval::H1, "binance", &candles)
        .await
        .unwrap();
    // The ends of time, whose blocks reach past what BIGINT holds; written directly, as
    // no feed would send them.
    let ends = [i64::MIN, i64::MIN + HOUR, i64::MAX - HOUR, i64::MAX];
    for open_time in ends {
        insert_directly(&mut conn, open_time).await;
    }
    times.extend(ends);
    times.sort_unstable();

    let expect = |start: i64, end: i64, limit: usize| -> Vec<i64> {
        times
            .iter()
            .copied()
            .filter(|t| (start..end).contains(t))
            .take(limit)
            .collect()
    };
    let edges = [
        i64::MIN,
        i64::MIN + 1,
        ORIGIN,
        ORIGIN + 5 * HOUR,
        ORIGIN + 5 * HOUR + 1,
        ORIGIN + 64 * HOUR,
        dense_from - 1,
        dense_from + 64 * HOUR,
        dense_from + 299 * HOUR,
        i64::MAX - HOUR,
        i64::MAX,
    ];
    for &start in &edges {
        for &end in &edges {
            for limit in [1, 2, 3, 50, 500, 10_000] {
                assert_eq!(
                    open_times(store.as_ref(), start, end, limit).await,
                    expect(start, end, limit as usize),
                    "[{start}, {end}) limit {limit}"
                );
            }
        }
    }
}

/// A long import touches tens of thousands of blocks in one transaction; the write must
/// not need a lock for each (Postgres's lock table holds a few thousand).
#[tokio::test]
async fn a_write_touching_many_blocks_succeeds() {
    let Some((_db, store, mut conn)) = open().await else {
        return;
    };
    // One minute candle per block: 30,000 blocks, a single COPY.
    let candles: Vec<Candle> = (0..30_000)
        .map(|i| candle(ORIGIN + i * 64 * 60_000, 3.0))
        .collect();
    store
        .upsert_candles("BTC", Interval::M1, "import", &candles)
        .await
        .unwrap();
    assert_eq!(block_count(&mut conn).await, 30_000);
    assert_eq!(blocks_out_of_step(&mut conn).await, 0);
}

/// A write of several statements and a shorter one over part of the same range, at once:
/// neither may end holding the series lock while waiting on the other's rows (a deadlock
/// Postgres breaks by failing one of them).
#[tokio::test]
async fn overlapping_writers_of_one_series_both_succeed() {
    let Some((_db, store, mut conn)) = open().await else {
        return;
    };
    // More than one insert statement's worth, and below the size written with COPY.
    let long: Vec<Candle> = (0..12_000)
        .map(|i| candle(ORIGIN + i * 60_000, 4.0))
        .collect();
    for round in 0..6 {
        let short: Vec<Candle> = long[5_000 + round * 500..10_000].to_vec();
        let (a, b) = (Arc::clone(&store), Arc::clone(&store));
        let long = long.clone();
        let long_write =
            tokio::spawn(
                async move { a.upsert_candles("BTC", Interval::M1, "import", &long).await },
            );
        let short_write =
            tokio::spawn(
                async move { b.upsert_candles("BTC", Interval::M1, "feed", &short).await },
            );
        long_write.await.unwrap().unwrap();
        short_write.await.unwrap().unwrap();
    }
    assert_eq!(blocks_out_of_step(&mut conn).await, 0);
}

/// A database holding candles from before the blocks existed: upgrading builds a block
/// for every one of them.
#[tokio::test]
async fn an_upgrade_builds_the_blocks_of_stored_candles() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let all = sqlx::migrate!("../../migrations/postgres");
    let before_blocks = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.description != "candle blocks")
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    assert_eq!(before_blocks.migrations.len() + 1, all.migrations.len());
    before_blocks.run(&mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO candles (symbol, period, open_time, open, high, low, close, volume,
                              source, updated_at)
         SELECT s, p, $1 + i * step, i, i + 1, i - 1, i + 0.5, 1, 'old', 0
         FROM (VALUES ('BTC', '1h', 3600000::bigint), ('ETH', '1m', 60000::bigint)) v(s, p, step),
              generate_series(0, 299) i",
    )
    .bind(ORIGIN)
    .execute(&mut conn)
    .await
    .unwrap();

    let store = marketd_storage::connect(&db.url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(block_count(&mut conn).await >= 10);
    assert_eq!(blocks_out_of_step(&mut conn).await, 0);
    let page = store
        .candles("ETH", Interval::M1, i64::MIN, i64::MAX, 1_000)
        .await
        .unwrap();
    assert_eq!(page.len(), 300);
    assert!(page.iter().all(|bar| bar.source == "old"));
}
