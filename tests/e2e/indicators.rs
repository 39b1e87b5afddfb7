//! `GET /v1/indicators/{symbol}`: exact warm-up, cursor walks, derived intervals and
//! problem documents, on both backends.

use marketd_domain::indicators::{IndicatorSpec, parse_indicators};
use marketd_domain::{Candle, Interval};
use marketd_storage::{Asset, Store};
use serde_json::Value;

use crate::helpers::{HOUR, MONDAY, TestApp, both_backends};

both_backends!(
    first_value_equals_the_full_history_value,
    cursor_pages_join_into_one_big_page,
    bad_indicator_lists_are_problems_naming_the_token,
    derived_intervals_feed_the_indicators,
);

/// Stored hours: 0..1500 except a gap of 60 hours just before the pages tested, so the
/// warm-up must widen past it to find enough candles.
const HOURS: i64 = 1_500;
const GAP: std::ops::Range<i64> = 1_140..1_200;

/// Hour `i` of a wavy series, so indicators have something to measure.
fn wavy(i: i64) -> Candle {
    let x = i as f64;
    let close = 100.0 + 10.0 * (x / 7.0).sin() + 3.0 * (x / 3.1).cos() + 0.01 * x;
    let open = close - 0.7 * (x / 5.0).sin();
    Candle {
        open_time: MONDAY + i * HOUR,
        open,
        high: open.max(close) + 0.5 + 0.3 * (x / 11.0).cos().abs(),
        low: open.min(close) - 0.5 - 0.2 * (x / 13.0).sin().abs(),
        close,
        volume: 10.0 + 5.0 * (x / 4.0).sin().abs(),
    }
}

fn stored() -> Vec<Candle> {
    (0..HOURS).filter(|i| !GAP.contains(i)).map(wavy).collect()
}

async fn seed(store: &dyn Store) {
    store
        .upsert_asset(&Asset {
            symbol: "BTC".into(),
            name: "Bitcoin".into(),
            quote: "USD".into(),
            sources: vec!["test".into()],
            created_at: MONDAY,
        })
        .await
        .unwrap();
    store
        .upsert_candles("BTC", Interval::H1, "test", &stored())
        .await
        .unwrap();
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn close_enough(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

/// Each column of `list` computed by the domain over `candles`, keyed like the API.
fn expected_columns(list: &str, candles: &[Candle]) -> Vec<(String, Vec<Option<f64>>)> {
    let specs: Vec<IndicatorSpec> = parse_indicators(list).unwrap();
    let mut out = Vec::new();
    for spec in specs {
        let token = spec.to_string().replace(':', "_");
        for column in spec.compute(candles).unwrap() {
            let suffix = column.name.strip_prefix(spec.name()).unwrap();
            out.push((format!("{token}{suffix}"), column.values.iter().collect()));
        }
    }
    out
}

async fn first_value_equals_the_full_history_value(app: &TestApp) {
    seed(app.store.as_ref()).await;
    let list = "rsi:14,ema:50,macd:12:26:9,bbands:20:2,obv,vwap";
    let all = stored();
    let expected = expected_columns(list, &all);
    // Pages starting right after the gap, and at a UTC midday (VWAP needs its day).
    for start_hour in [1_200, 1_212, 1_300] {
        let start = MONDAY + start_hour * HOUR;
        let (status, body) = get(
            app,
            &format!("/v1/indicators/BTC?indicators={list}&start={start}&limit=3"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let rows = body["data"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let index = all.iter().position(|c| c.open_time == start).unwrap();
        assert_eq!(rows[0]["open_time"], Value::String(rfc3339(start)));
        for (name, values) in &expected {
            for (offset, row) in rows.iter().enumerate() {
                let want = values[index + offset].unwrap();
                let got = row[name.as_str()].as_f64().unwrap_or(f64::NAN);
                assert!(
                    close_enough(got, want),
                    "{name} at hour {start_hour}+{offset}: {got} vs {want}"
                );
            }
        }
        let meta = &body["meta"];
        assert_eq!(
            meta["indicators"],
            serde_json::json!([
                "rsi:14",
                "ema:50",
                "macd:12:26:9",
                "bbands:20:2",
                "obv",
                "vwap"
            ])
        );
        // OBV needs everything: the warm-up starts at the first stored candle.
        assert_eq!(meta["warm_up"]["reached_first_stored"], true);
        assert_eq!(meta["warm_up"]["loaded"].as_u64().unwrap(), index as u64);
    }
    // Without OBV, only what the slowest indicator needs is read, counted in candles
    // across the gap: ema:50 needs 625, and 60 of the 625 hours before the page are
    // missing, so the read widens past them.
    let start = MONDAY + 1_200 * HOUR;
    let (status, body) = get(
        app,
        &format!("/v1/indicators/BTC?indicators=ema:50,rsi:14&start={start}&limit=2"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let warm = &body["meta"]["warm_up"];
    assert_eq!(warm["reached_first_stored"], false);
    let loaded = warm["loaded"].as_u64().unwrap();
    assert!((625..1_000).contains(&loaded), "{warm}");
    assert_eq!(warm["required"][0]["strategy"], "candles");
    assert_eq!(warm["required"][0]["candles"], 625);
    let index = all.iter().position(|c| c.open_time == start).unwrap();
    for (name, values) in expected_columns("ema:50,rsi:14", &all) {
        let got = body["data"][0][name.as_str()].as_f64().unwrap();
        assert!(close_enough(got, values[index].unwrap()), "{name}");
    }
    // At the very start of history the values are null until the lookback is covered.
    let (_, body) = get(
        app,
        &format!("/v1/indicators/BTC?indicators=rsi:14&start={MONDAY}&limit=20"),
    )
    .await;
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows[13]["rsi_14"], Value::Null);
    assert!(rows[14]["rsi_14"].is_f64());
}

fn rfc3339(ms: i64) -> String {
    let mut out = Vec::new();
    marketd_domain::write_rfc3339_ms(&mut out, ms);
    String::from_utf8(out).unwrap()
}

async fn cursor_pages_join_into_one_big_page(app: &TestApp) {
    seed(app.store.as_ref()).await;
    let list = "macd:12:26:9,bbands:20:2,rsi:14,vwap";
    let (start, end) = (MONDAY + 1_000 * HOUR, MONDAY + 1_400 * HOUR);
    let window = format!("start={start}&end={end}");
    let (status, big) = get(
        app,
        &format!("/v1/indicators/BTC?indicators={list}&{window}&limit=1000"),
    )
    .await;
    assert_eq!(status, 200, "{big}");
    assert_eq!(big["next_cursor"], Value::Null);
    let big_rows = big["data"].as_array().unwrap().clone();
    // 400 hours minus the 60-hour gap.
    assert_eq!(big_rows.len(), 340);

    let mut rows = Vec::new();
    let mut next = Some(format!(
        "/v1/indicators/BTC?indicators={list}&{window}&limit=37"
    ));
    while let Some(path) = next.take() {
        let response = app.get(&path).await;
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        rows.extend(body["data"].as_array().unwrap().iter().cloned());
        if let Some(cursor) = body["next_cursor"].as_str() {
            let target = link.expect("a Link header with every next_cursor");
            let target = target.trim_start_matches('<').split('>').next().unwrap();
            assert!(target.contains(cursor));
            next = Some(target.to_owned());
        }
    }
    assert_eq!(rows.len(), big_rows.len());
    for (paged, whole) in rows.iter().zip(&big_rows) {
        let (paged, whole) = (paged.as_object().unwrap(), whole.as_object().unwrap());
        assert_eq!(paged.len(), whole.len());
        for (key, value) in whole {
            match (value.as_f64(), paged[key].as_f64()) {
                (Some(w), Some(p)) => assert!(close_enough(p, w), "{key}: {p} vs {w}"),
                _ => assert_eq!(&paged[key], value, "{key}"),
            }
        }
    }
}

async fn bad_indicator_lists_are_problems_naming_the_token(app: &TestApp) {
    seed(app.store.as_ref()).await;
    let eleven = ["rsi"; 11].join(",");
    for (list, needle) in [
        ("rsi:1", "`rsi:1`"),
        ("nope:3", "`nope`"),
        (eleven.as_str(), "11 indicators"),
        ("macd:26:12", "`macd:26:12`"),
        ("rsi%E3%80%80", "only letters"),
    ] {
        let (status, body) = get(app, &format!("/v1/indicators/BTC?indicators={list}")).await;
        assert_eq!(status, 422, "{list}: {body}");
        assert_eq!(body["type"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "indicators");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{list}: {message}");
    }
    // What is allowed is named too.
    let (_, body) = get(app, "/v1/indicators/BTC?indicators=nope:3").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("allowed: sma, ema")
    );
    // Missing entirely: a malformed query.
    let (status, body) = get(app, "/v1/indicators/BTC").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "malformed_query");
    assert!(body["detail"].as_str().unwrap().contains("indicators"));
    let (status, body) = get(app, "/v1/indicators/NOPE?indicators=rsi").await;
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("unknown_symbol"))
    );
    let (status, body) = get(app, "/v1/indicators/BTC?indicators=rsi&limit=0").await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, body) = get(app, "/v1/indicators/BTC?indicators=rsi&cursor=garbage").await;
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("invalid_cursor"))
    );
    // Duplicates are computed once, under one name.
    let (status, body) = get(
        app,
        &format!("/v1/indicators/BTC?indicators=rsi,RSI:%2014,ema:50&start={MONDAY}&limit=1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["meta"]["indicators"],
        serde_json::json!(["rsi:14", "ema:50"])
    );
    let row = body["data"][0].as_object().unwrap();
    let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ema_50", "open_time", "rsi_14"]);
}

async fn derived_intervals_feed_the_indicators(app: &TestApp) {
    seed(app.store.as_ref()).await;
    // 4h buckets from stored hours, computed by the domain over the same aggregation.
    let hours = stored();
    let four_hourly = marketd_domain::aggregate(
        Interval::H4,
        hours.iter().map(|c| marketd_domain::Bar {
            candle: *c,
            source: "test".into(),
            count: 1,
        }),
    );
    let candles: Vec<Candle> = four_hourly.iter().map(|b| b.candle).collect();
    let start = MONDAY + 200 * 4 * HOUR;
    let (status, body) = get(
        app,
        &format!("/v1/indicators/BTC?interval=4h&indicators=ema:20,macd&start={start}&limit=5"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["derived"], true);
    assert_eq!(body["meta"]["source_interval"], "1h");
    let index = candles.iter().position(|c| c.open_time == start).unwrap();
    for (name, values) in expected_columns("ema:20,macd", &candles) {
        for offset in 0..5 {
            let got = body["data"][offset][name.as_str()].as_f64().unwrap();
            let want = values[index + offset].unwrap();
            assert!(close_enough(got, want), "{name}+{offset}: {got} vs {want}");
        }
    }
}
