//! The backtest-job half of the Store specification, run against SQLite and Postgres.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use marketd_storage::{BacktestJob, JobStatus, Store, StoreError};

marketd_testkit::store_suite!(
    jobs_are_claimed_oldest_first_and_once,
    finishing_needs_a_running_job,
    cancelled_jobs_are_never_finished,
    idempotency_keys_are_scoped_and_expire,
    running_jobs_are_requeued_after_a_restart,
);

fn job(id: &str, created_at: i64) -> BacktestJob {
    BacktestJob {
        id: id.to_owned(),
        key_id: "AAAAAAAAAAAA".into(),
        status: JobStatus::Queued,
        request: format!("{{\"n\":{created_at}}}"),
        request_hash: format!("h{created_at}"),
        idempotency_key: None,
        idempotency_until: None,
        created_at,
        started_at: None,
        finished_at: None,
        error: None,
        result: None,
    }
}

async fn jobs_are_claimed_oldest_first_and_once(store: Arc<dyn Store>) {
    store.insert_backtest(&job("b", 20)).await.unwrap();
    store.insert_backtest(&job("a", 10)).await.unwrap();
    assert_eq!(store.active_backtests("AAAAAAAAAAAA").await.unwrap(), 2);
    // Many concurrent claimers: each job goes to exactly one.
    let claims = futures::future::join_all((0..8).map(|_| {
        let store = Arc::clone(&store);
        async move { store.claim_backtest(99).await.unwrap() }
    }))
    .await;
    let mut claimed: Vec<String> = claims.into_iter().flatten().map(|j| j.id).collect();
    claimed.sort();
    assert_eq!(claimed, ["a", "b"]);
    let a = store.backtest("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.started_at), (JobStatus::Running, Some(99)));
    assert!(store.claim_backtest(100).await.unwrap().is_none());
}

async fn finishing_needs_a_running_job(store: Arc<dyn Store>) {
    store.insert_backtest(&job("a", 1)).await.unwrap();
    assert!(
        !store
            .finish_backtest("a", JobStatus::Succeeded, Some("{}"), None, 5)
            .await
            .unwrap()
    );
    store.claim_backtest(2).await.unwrap().unwrap();
    assert!(
        store
            .finish_backtest("a", JobStatus::Succeeded, Some("{\"ok\":1}"), None, 5)
            .await
            .unwrap()
    );
    let done = store.backtest("a").await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result.as_deref(), Some("{\"ok\":1}"));
    assert_eq!(done.finished_at, Some(5));
    assert_eq!(store.active_backtests("AAAAAAAAAAAA").await.unwrap(), 0);
    assert!(store.backtest("zz").await.unwrap().is_none());
}

async fn cancelled_jobs_are_never_finished(store: Arc<dyn Store>) {
    store.insert_backtest(&job("a", 1)).await.unwrap();
    store.claim_backtest(2).await.unwrap().unwrap();
    let cancelled = store.cancel_backtest("a", 3).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(
        !store
            .finish_backtest("a", JobStatus::Succeeded, Some("{}"), None, 4)
            .await
            .unwrap()
    );
    // Cancelling a finished job changes nothing.
    let again = store.cancel_backtest("a", 9).await.unwrap().unwrap();
    assert_eq!(again.finished_at, Some(3));
    assert!(store.cancel_backtest("zz", 9).await.unwrap().is_none());
}

async fn idempotency_keys_are_scoped_and_expire(store: Arc<dyn Store>) {
    let mut first = job("a", 1);
    first.idempotency_key = Some("k1".into());
    first.idempotency_until = Some(1_000);
    store.insert_backtest(&first).await.unwrap();
    let found = store
        .backtest_by_idempotency_key("AAAAAAAAAAAA", "k1", 500)
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, "a");
    assert!(
        store
            .backtest_by_idempotency_key("BBBBBBBBBBBB", "k1", 500)
            .await
            .unwrap()
            .is_none()
    );
    let mut clash = job("b", 2);
    clash.idempotency_key = Some("k1".into());
    clash.idempotency_until = Some(2_000);
    assert!(matches!(
        store.insert_backtest(&clash).await.unwrap_err(),
        StoreError::Conflict
    ));
    // Another key id may use the same idempotency key.
    let mut other = clash.clone();
    other.id = "c".into();
    other.key_id = "BBBBBBBBBBBB".into();
    store.insert_backtest(&other).await.unwrap();
    // After expiry the key is released and can name a new job.
    assert!(
        store
            .backtest_by_idempotency_key("AAAAAAAAAAAA", "k1", 1_000)
            .await
            .unwrap()
            .is_none()
    );
    store.insert_backtest(&clash).await.unwrap();
}

async fn running_jobs_are_requeued_after_a_restart(store: Arc<dyn Store>) {
    store.insert_backtest(&job("a", 1)).await.unwrap();
    store.insert_backtest(&job("b", 2)).await.unwrap();
    store.claim_backtest(3).await.unwrap().unwrap();
    assert_eq!(store.requeue_running_backtests().await.unwrap(), 1);
    let a = store.backtest("a").await.unwrap().unwrap();
    assert_eq!((a.status, a.started_at), (JobStatus::Queued, None));
    assert_eq!(store.claim_backtest(4).await.unwrap().unwrap().id, "a");
}
