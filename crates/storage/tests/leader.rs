//! Leadership among processes sharing a database: one leader at a time on Postgres, and
//! a lease that knows when its connection, and so its lock, is gone.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use marketd_storage::{ConnectOptions, Store, connect};
use marketd_testkit::{Kind, TestDb};

/// Each call to `try_lead` opens a connection of its own, so one store stands in for
/// several replicas.
async fn store(db: &TestDb) -> std::sync::Arc<dyn Store> {
    let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn one_replica_leads_until_it_lets_go() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let store = store(&db).await;
    let mut first = store
        .try_lead("ingest")
        .await
        .unwrap()
        .expect("nobody leads yet");
    assert!(first.still_held().await);
    assert!(store.try_lead("ingest").await.unwrap().is_none());
    let other_job = store.try_lead("another job").await.unwrap();
    assert!(other_job.is_some(), "leadership is per job");

    first.release().await;
    let second = store.try_lead("ingest").await.unwrap();
    assert!(second.is_some(), "released leadership is free at once");
    // A lease dropped without a word (a process that dies) frees it as its connection closes.
    drop(second);
    let mut retaken = None;
    for _ in 0..100 {
        retaken = store.try_lead("ingest").await.unwrap();
        if retaken.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(retaken.is_some(), "a dropped lease was never freed");
    store.close().await;
}

#[tokio::test]
async fn a_lease_whose_connection_is_killed_is_lost() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let store = store(&db).await;
    let mut lease = store.try_lead("ingest").await.unwrap().unwrap();
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (killed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         ) AS t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    assert!(!lease.still_held().await);
    assert!(!lease.still_held().await, "a lost lease stays lost");
    assert!(store.try_lead("ingest").await.unwrap().is_some());
    admin.close().await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_has_one_process_which_always_leads() {
    let db = TestDb::sqlite();
    let store = store(&db).await;
    let mut lease = store.try_lead("ingest").await.unwrap().unwrap();
    assert!(lease.still_held().await);
    store.close().await;
}
