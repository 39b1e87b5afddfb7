//! Strategies, signals and backtests over real HTTP.

use std::time::Duration;

use marketd_domain::{Candle, Interval};
use marketd_storage::{Asset, BacktestJob, JobStatus};
use marketd_testkit::TestDb;
use serde_json::{Value, json};

use crate::helpers::{HOUR, MONDAY, TestApp, both_backends};

both_backends!(
    strategies_are_listed_with_their_parameters,
    signals_are_point_in_time_and_reproducible,
    bad_signal_requests_are_problems,
    history_lists_every_change_once,
    backtests_run_as_idempotent_jobs,
);

/// A wave: 40 hours up, 40 down, repeated, so every strategy changes its mind.
fn wave(i: i64) -> Candle {
    let phase = (i % 80) as f64;
    let level = if phase < 40.0 { phase } else { 80.0 - phase };
    let close = 100.0 + level * 2.0 + (i as f64 * 0.37).sin();
    Candle {
        open_time: MONDAY + i * HOUR,
        open: close - 0.5,
        high: close + 1.0,
        low: close - 1.5,
        close,
        volume: 10.0 + (i % 7) as f64,
    }
}

async fn seed_wave(app: &TestApp, n: i64) {
    app.store
        .upsert_asset(&Asset {
            symbol: "BTC".into(),
            name: "Bitcoin".into(),
            quote: "USD".into(),
            sources: vec!["test".into()],
            created_at: MONDAY,
        })
        .await
        .unwrap();
    let candles: Vec<Candle> = (0..n).map(wave).collect();
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &candles)
        .await
        .unwrap();
}

fn at(i: i64) -> String {
    (MONDAY + i * HOUR).to_string()
}

async fn json_of(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn strategies_are_listed_with_their_parameters(app: &TestApp) {
    let (status, body) = json_of(app, "/v1/strategies").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ema_cross",
            "rsi_reversion",
            "macd_cross",
            "bbands_breakout",
            "consensus"
        ]
    );
    let ema = &body["data"][0];
    assert_eq!(ema["params"][0]["name"], "fast");
    assert_eq!(ema["params"][0]["default"], 12.0);
    assert_eq!(ema["params"][0]["type"], "integer");
    assert!(ema["description"].as_str().unwrap().len() > 40);
}

async fn signals_are_point_in_time_and_reproducible(app: &TestApp) {
    seed_wave(app, 400).await;
    let path = format!(
        "/v1/signals?symbols=BTC,NOPE&strategy=ema_cross&params=fast:5,slow:20&as_of={}",
        at(300)
    );
    let (status, first) = json_of(app, &path).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["meta"]["unknown"], json!(["NOPE"]));
    let signal = &first["data"][0];
    assert_eq!(signal["strategy"], "ema_cross");
    assert_eq!(signal["params"], json!({"fast": 5.0, "slow": 20.0}));
    assert_eq!(signal["defined"], true);
    assert!(["bullish", "bearish", "neutral"].contains(&signal["direction"].as_str().unwrap()));
    // Only candles closed by as_of: the last one opened an hour before it.
    assert_eq!(
        signal["input_window"]["last_open_time"],
        "2024-01-13T11:00:00Z"
    );
    assert_eq!(signal["as_of"], "2024-01-13T12:00:00Z");
    assert!(signal["inputs"].as_object().unwrap().len() >= 2);
    assert_eq!(signal["engine_version"], "1");

    // Appending candles after as_of changes nothing about the signal as of then.
    let later: Vec<Candle> = (400..450).map(wave).collect();
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &later)
        .await
        .unwrap();
    let (_, again) = json_of(app, &path).await;
    assert_eq!(again["data"][0], first["data"][0]);

    // Revising a candle it used changes the hash: the answer says why it differs.
    let mut revised = wave(290);
    revised.close += 5.0;
    revised.high += 5.0;
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &[revised])
        .await
        .unwrap();
    let (_, after) = json_of(app, &path).await;
    assert_ne!(
        after["data"][0]["input_hash"],
        first["data"][0]["input_hash"]
    );

    // Every strategy at once when none is named.
    let (_, all) = json_of(app, "/v1/signals?symbols=BTC").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
}

async fn bad_signal_requests_are_problems(app: &TestApp) {
    seed_wave(app, 50).await;
    for (path, status, field) in [
        ("/v1/signals?symbols=BTC&strategy=moon", 422, "strategy"),
        (
            "/v1/signals?symbols=BTC&strategy=ema_cross&params=fast:30,slow:10",
            422,
            "params",
        ),
        (
            "/v1/signals?symbols=BTC&strategy=ema_cross&params=speed:3",
            422,
            "params",
        ),
        ("/v1/signals?symbols=BTC&params=fast:3", 422, "params"),
        (
            "/v1/signals?symbols=BTC&as_of=2999-01-01T00:00:00Z",
            422,
            "as_of",
        ),
        (
            "/v1/signals/BTC/history?strategy=ema_cross&start=2024-02-01T00:00:00Z&end=2024-01-01T00:00:00Z",
            400,
            "start",
        ),
    ] {
        let (got, problem) = json_of(app, path).await;
        assert_eq!(got, status, "{path}: {problem}");
        assert!(problem.to_string().contains(field), "{path}: {problem}");
    }
    let (status, problem) = json_of(app, "/v1/signals/NOPE/history?strategy=ema_cross").await;
    assert_eq!(
        (status, problem["type"].as_str().unwrap()),
        (404, "unknown_symbol")
    );
    let (status, _) = json_of(app, "/v1/signals/BTC/history?strategy=ema_cross&interval=1m&start=2020-01-01T00:00:00Z&end=2024-01-01T00:00:00Z").await;
    assert_eq!(status, 422, "a range above the limit");
    // Too little data: the signal says so rather than inventing one.
    let (_, thin) = json_of(
        app,
        &format!(
            "/v1/signals?symbols=BTC&strategy=ema_cross&params=fast:12,slow:200&as_of={}",
            at(50)
        ),
    )
    .await;
    assert_eq!(thin["data"][0]["defined"], false);
    assert_eq!(thin["data"][0]["direction"], "neutral");
}

async fn history_lists_every_change_once(app: &TestApp) {
    seed_wave(app, 600).await;
    let base = format!(
        "/v1/signals/BTC/history?strategy=ema_cross&params=fast:5,slow:20&start={}&end={}",
        at(100),
        at(560)
    );
    let (status, all) = json_of(app, &format!("{base}&limit=1000")).await;
    assert_eq!(status, 200, "{all}");
    let changes = all["data"].as_array().unwrap().clone();
    assert!(
        changes.len() >= 6,
        "the wave flips the crossover: {changes:?}"
    );
    for pair in changes.windows(2) {
        assert_ne!(pair[0]["direction"], pair[1]["direction"]);
        assert_eq!(pair[1]["previous"], pair[0]["direction"]);
        assert!(pair[0]["open_time"].as_str() < pair[1]["open_time"].as_str());
    }
    // Pages of 2 join into the same list.
    let mut paged = Vec::new();
    let mut next = Some(format!("{base}&limit=2"));
    while let Some(path) = next {
        let (_, page) = json_of(app, &path).await;
        paged.extend(page["data"].as_array().unwrap().iter().cloned());
        next = page["next_cursor"]
            .as_str()
            .map(|c| format!("{base}&limit=2&cursor={c}"));
    }
    assert_eq!(paged, changes);
    // The latest signal at a change agrees with the history.
    let last = changes.last().unwrap();
    let as_of = last["as_of"].as_str().unwrap();
    let (_, latest) = json_of(
        app,
        &format!("/v1/signals?symbols=BTC&strategy=ema_cross&params=fast:5,slow:20&as_of={as_of}"),
    )
    .await;
    assert_eq!(latest["data"][0]["direction"], last["direction"]);
    assert_eq!(latest["data"][0]["since"], last["open_time"]);
}

async fn submit(app: &TestApp, body: &Value, idempotency: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/backtests")).json(body);
    if let Some(key) = idempotency {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let (_, job) = json_of(app, &format!("/v1/backtests/{id}")).await;
        if ["succeeded", "failed", "cancelled"].contains(&job["data"]["status"].as_str().unwrap()) {
            return job["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("backtest {id} did not finish");
}

async fn backtests_run_as_idempotent_jobs(app: &TestApp) {
    seed_wave(app, 800).await;
    let body = json!({"symbol": "BTC", "interval": "1h", "strategy": "ema_cross",
        "params": {"fast": 5, "slow": 20}, "start": at(100), "end": at(800),
        "fee_bps": 10, "slippage_bps": 5, "initial_cash": 1000});
    let created = submit(app, &body, Some("run-1")).await;
    assert_eq!(created.status(), 202);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = created.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/backtests/{id}"));
    assert_eq!(job["data"]["status"], "queued");

    // The same key and body: the same job. The same key, another body: a problem.
    let again = submit(app, &body, Some("run-1")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap()["data"]["id"],
        id.as_str()
    );
    let mut other = body.clone();
    other["fee_bps"] = json!(20);
    let clash = submit(app, &other, Some("run-1")).await;
    assert_eq!(clash.status(), 422);

    let done = finished(app, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let result = &done["result"];
    assert!(result["trade_count"].as_u64().unwrap() >= 3, "{result}");
    assert!(result["fees_paid"].as_f64().unwrap() > 0.0);
    let curve = result["equity_curve"].as_array().unwrap();
    assert!(curve.len() <= 500 && curve.len() >= 2);
    assert_eq!(curve[0]["equity"], 1000.0, "nothing traded before start");
    // Trading starts at `start`: no trade enters before it.
    let first_trade = &result["trades"][0];
    assert!(first_trade["entry_time"].as_str().unwrap() > "2024-01-05T04:00:00Z");
    let trades: Value = app
        .get(&format!("/v1/backtests/{id}/trades?limit=2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trades["data"].as_array().unwrap().len(), 2);
    assert!(trades["next_cursor"].is_string());

    // Bad requests are problems and store nothing.
    for (bad, status) in [
        (
            json!({"symbol": "BTC", "interval": "1h", "strategy": "nope", "start": at(1), "end": at(10)}),
            422,
        ),
        (
            json!({"symbol": "NOPE", "interval": "1h", "strategy": "ema_cross", "start": at(1), "end": at(10)}),
            404,
        ),
        (
            json!({"symbol": "BTC", "interval": "1m", "strategy": "ema_cross", "start": "2020-01-01T00:00:00Z", "end": at(10)}),
            422,
        ),
        (
            json!({"symbol": "BTC", "interval": "1h", "strategy": "ema_cross", "start": at(10), "end": at(1)}),
            400,
        ),
        (
            json!({"symbol": "BTC", "interval": "1h", "strategy": "ema_cross", "start": at(1), "end": at(10), "fee_bps": -1}),
            422,
        ),
    ] {
        let response = submit(app, &bad, None).await;
        assert_eq!(response.status().as_u16(), status, "{bad}");
    }

    // Cancelling a finished job leaves it as it was.
    let cancelled: Value = app
        .client
        .delete(app.url(&format!("/v1/backtests/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cancelled["data"]["status"], "succeeded",
        "a finished job stays as it was"
    );
    assert_eq!(app.get("/v1/backtests/not-a-job").await.status(), 404);
}

/// A job left running by a process that died is run again by the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_backtests_resume_after_a_restart() {
    let db = TestDb::sqlite();
    let store = marketd_storage::connect(&db.url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let spec = marketd_api::backtests::BacktestSpec {
        symbol: "BTC".into(),
        interval: "1h".into(),
        strategy: "rsi_reversion".into(),
        params: vec![],
        start: MONDAY + 50 * HOUR,
        end: MONDAY + 300 * HOUR,
        fee_bps: 0.0,
        slippage_bps: 0.0,
        initial_cash: 100.0,
    };
    let job = BacktestJob {
        id: uuid::Uuid::now_v7().to_string(),
        key_id: "AAAAAAAAAAAA".into(),
        status: JobStatus::Queued,
        request: serde_json::to_string(&spec).unwrap(),
        request_hash: "h".into(),
        idempotency_key: None,
        idempotency_until: None,
        created_at: 1,
        started_at: None,
        finished_at: None,
        error: None,
        result: None,
    };
    store.insert_backtest(&job).await.unwrap();
    assert_eq!(
        store.claim_backtest(2).await.unwrap().unwrap().status,
        JobStatus::Running
    );

    // The candles are there before the restart, as they would have been.
    store
        .upsert_asset(&Asset {
            symbol: "BTC".into(),
            name: "Bitcoin".into(),
            quote: "USD".into(),
            sources: vec![],
            created_at: MONDAY,
        })
        .await
        .unwrap();
    let candles: Vec<Candle> = (0..300).map(wave).collect();
    store
        .upsert_candles("BTC", Interval::H1, "test", &candles)
        .await
        .unwrap();
    let app = crate::helpers::spawn_app_on(db, crate::helpers::config)
        .await
        .unwrap();
    let mut status = JobStatus::Running;
    for _ in 0..200 {
        status = app.store.backtest(&job.id).await.unwrap().unwrap().status;
        if status.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, JobStatus::Succeeded);
    app.stop().await;
    store.close().await;
}
