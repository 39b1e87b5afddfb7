//! Stored signals: kept current by the signal engine as candles land, and served by the
//! signal routes exactly as they would be computed on request.

use std::time::Duration;

use marketd_api::signal_engine::is_current;
use marketd_api::state::system_clock;
use marketd_domain::strategy::{Strategy, StrategyKind};
use marketd_domain::{Candle, Interval};
use marketd_storage::{Asset, SignalUpdate, StoredSignal};
use serde_json::Value;

use crate::helpers::{HOUR, MONDAY, TestApp, both_backends};

both_backends!(
    stored_history_follows_appends_and_revisions,
    stored_latest_signals_equal_computed_ones,
);

/// Up 30 hours, down 30, with a little noise, from `origin`; `tilt` bends the shape so
/// a revision changes the signals.
fn zigzag(origin: i64, i: i64, tilt: f64) -> Candle {
    let phase = (i % 60) as f64;
    let level = if phase < 30.0 { phase } else { 60.0 - phase };
    let close = 100.0 + level * (2.0 + tilt) + (i as f64 * 0.61).sin();
    Candle {
        open_time: origin + i * HOUR,
        open: close - 0.4,
        high: close + 1.0,
        low: close - 1.2,
        close,
        volume: 5.0 + (i % 5) as f64,
    }
}

async fn add_asset(app: &TestApp, symbol: &str) {
    app.store
        .upsert_asset(&Asset {
            symbol: symbol.into(),
            name: symbol.into(),
            quote: "USD".into(),
            sources: vec!["test".into()],
            created_at: MONDAY,
        })
        .await
        .unwrap();
}

/// Waits until the engine has brought the series' stored signals up to date.
async fn wait_until_current(app: &TestApp, symbol: &str) {
    for _ in 0..200 {
        let progress = app
            .store
            .signal_progress_of(symbol, Interval::H1)
            .await
            .unwrap();
        if progress.is_some_and(|p| is_current(&p, system_clock())) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stored signals of {symbol} never caught up");
}

/// (open_time, direction, previous) of every change, computed here from the domain
/// strategy over the whole series.
fn expected_changes(candles: &[Candle]) -> Vec<(i64, String, Option<String>)> {
    let strategy = Strategy::new(StrategyKind::EmaCross, &[]).unwrap();
    let mut changes = Vec::new();
    let mut previous: Option<String> = None;
    for point in strategy
        .evaluate(candles)
        .unwrap()
        .iter()
        .filter(|p| p.defined)
    {
        let direction = point.direction.as_str().to_owned();
        if previous.as_ref() != Some(&direction) {
            changes.push((point.open_time, direction.clone(), previous.clone()));
        }
        previous = Some(direction);
    }
    changes
}

fn millis(rfc3339: &Value) -> i64 {
    let text = rfc3339.as_str().unwrap();
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap()
}

async fn history(app: &TestApp, end: i64) -> Vec<Value> {
    let path =
        format!("/v1/signals/BTC/history?strategy=ema_cross&start={MONDAY}&end={end}&limit=1000");
    let response = app.get(&path).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

fn summary(changes: &[Value]) -> Vec<(i64, String, Option<String>)> {
    changes
        .iter()
        .map(|c| {
            (
                millis(&c["open_time"]),
                c["direction"].as_str().unwrap().to_owned(),
                c["previous"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn stored_change_count(app: &TestApp) -> usize {
    app.store
        .signal_changes(
            "BTC",
            Interval::H1,
            "ema_cross",
            i64::MIN,
            i64::MAX,
            100_000,
        )
        .await
        .unwrap()
        .len()
}

async fn stored_history_follows_appends_and_revisions(app: &TestApp) {
    add_asset(app, "BTC").await;
    let mut candles: Vec<Candle> = (0..400).map(|i| zigzag(MONDAY, i, 0.0)).collect();
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &candles)
        .await
        .unwrap();
    wait_until_current(app, "BTC").await;
    let end = MONDAY + 1_000 * HOUR;
    let before = history(app, end).await;
    assert!(before.len() >= 6, "the zigzag crosses: {before:?}");
    assert_eq!(summary(&before), expected_changes(&candles));
    assert_eq!(
        stored_change_count(app).await,
        before.len(),
        "served from storage"
    );

    // New candles land: every earlier change stays exactly as it was.
    let appended: Vec<Candle> = (400..500).map(|i| zigzag(MONDAY, i, 0.0)).collect();
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &appended)
        .await
        .unwrap();
    candles.extend(appended);
    wait_until_current(app, "BTC").await;
    let grown = history(app, end).await;
    assert_eq!(grown[..before.len()], before[..]);
    assert!(grown.len() > before.len());
    assert_eq!(summary(&grown), expected_changes(&candles));

    // A revision of closed candles is recomputed from the first revised one.
    let revised: Vec<Candle> = (450..500).map(|i| zigzag(MONDAY, i, 1.5)).collect();
    app.store
        .upsert_candles("BTC", Interval::H1, "test", &revised)
        .await
        .unwrap();
    candles.truncate(450);
    candles.extend(revised);
    wait_until_current(app, "BTC").await;
    let after = history(app, end).await;
    assert_eq!(summary(&after), expected_changes(&candles));
    let untouched = grown
        .iter()
        .take_while(|c| millis(&c["open_time"]) < MONDAY + 450 * HOUR);
    assert!(untouched.zip(&after).all(|(a, b)| a == b));
    assert_eq!(stored_change_count(app).await, after.len());
}

async fn stored_latest_signals_equal_computed_ones(app: &TestApp) {
    // Near the end of an hour the newest candle could close mid-test; start afresh.
    let now = system_clock();
    if now % HOUR > HOUR - 20_000 {
        tokio::time::sleep(Duration::from_millis((HOUR - now % HOUR + 500) as u64)).await;
    }
    let current_hour = system_clock() / HOUR * HOUR;
    let origin = current_hour - 700 * HOUR;
    add_asset(app, "ETH").await;
    // 700 closed hours and the open one.
    let candles: Vec<Candle> = (0..=700).map(|i| zigzag(origin, i, 0.0)).collect();
    app.store
        .upsert_candles("ETH", Interval::H1, "test", &candles)
        .await
        .unwrap();
    wait_until_current(app, "ETH").await;
    let stored = app.store.latest_signals("ETH", Interval::H1).await.unwrap();
    assert_eq!(stored.len(), StrategyKind::all().len());

    let served: Value = app
        .get("/v1/signals?symbols=ETH")
        .await
        .json()
        .await
        .unwrap();
    let served = served["data"].as_array().unwrap().clone();
    assert_eq!(served.len(), stored.len());
    for entry in &served {
        let name = entry["strategy"].as_str().unwrap();
        let body = &stored.iter().find(|s| s.strategy == name).unwrap().body;
        assert_eq!(entry, &serde_json::from_str::<Value>(body).unwrap());
        assert_eq!(
            millis(&entry["input_window"]["last_open_time"]),
            current_hour - HOUR
        );
    }
    // The same signals computed on request (an explicit `as_of` is never served from
    // storage) are identical, hash included.
    let computed: Value = app
        .get(&format!("/v1/signals?symbols=ETH&as_of={}", system_clock()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(computed["data"].as_array().unwrap(), &served);

    // What the route serves is the stored document itself: mark one and see it served.
    let progress = app
        .store
        .signal_progress_of("ETH", Interval::H1)
        .await
        .unwrap()
        .unwrap();
    let mut marked: Value = served[0].clone();
    marked["strength"] = Value::from(0.123_456);
    let through = progress.through.unwrap();
    app.store
        .save_signals(&SignalUpdate {
            symbol: "ETH".into(),
            interval: Interval::H1,
            revision: progress.revision,
            through,
            history_from: progress.history_from.unwrap(),
            replace_from: i64::MAX,
            latest: vec![StoredSignal {
                strategy: marked["strategy"].as_str().unwrap().to_owned(),
                open_time: through,
                body: marked.to_string(),
            }],
            changes: vec![],
        })
        .await
        .unwrap();
    let again: Value = app
        .get("/v1/signals?symbols=ETH")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"][0], marked);
}
