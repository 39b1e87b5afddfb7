//! Every endpoint's success and documented errors, over real HTTP, on both backends.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::{TestApp, both_backends, hourly, seed_btc};

both_backends!(
    health_and_readiness,
    lists_and_gets_assets,
    prices_with_unknown_symbols,
    ohlcv_page_states_its_semantics,
    ohlcv_reports_missing_buckets,
    ohlcv_derives_coarser_intervals,
    cursor_walk_returns_every_candle_once,
    streams_csv_and_ndjson,
    validation_errors_are_problems,
    unknown_routes_methods_and_symbols_are_problems,
    metrics_count_requests_by_route_template,
    cached_answers_still_need_a_key_with_the_scope,
);

async fn json(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap();
    (status, content_type, body)
}

/// Asserts an RFC 9457 problem with the given status and type, and that it leaks nothing.
fn assert_problem(
    status: StatusCode,
    content_type: &str,
    body: &Value,
    expected: StatusCode,
    kind: &str,
) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], kind);
    assert_eq!(body["status"], expected.as_u16());
    for field in ["title", "detail", "instance", "request_id"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing in {body}"
        );
    }
    let text = body.to_string().to_lowercase();
    for leak in [
        "select ", "sqlx", "marketd_", "::", ".rs", "/src/", "panicked",
    ] {
        assert!(!text.contains(leak), "problem leaks {leak:?}: {body}");
    }
}

async fn health_and_readiness(app: &TestApp) {
    let (status, _, body) = json(app.get("/healthz").await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _, body) = json(app.get("/readyz").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["sources"],
        serde_json::json!([]),
        "nothing is ingested here"
    );
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
}

async fn lists_and_gets_assets(app: &TestApp) {
    seed_btc(app.store.as_ref(), 48).await;
    let (status, _, body) = json(app.get("/v1/assets").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["next_cursor"], Value::Null);
    let btc = &body["data"][0];
    assert_eq!(btc["symbol"], "BTC");
    assert_eq!(btc["stored"][0]["interval"], "1h");
    assert_eq!(btc["stored"][0]["first_open_time"], "2024-01-01T00:00:00Z");
    assert_eq!(btc["stored"][0]["last_open_time"], "2024-01-02T23:00:00Z");
    assert_eq!(
        btc["intervals"],
        serde_json::json!(["1h", "4h", "1d", "1w"])
    );
    let (status, _, body) = json(app.get("/v1/assets/btc").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["name"], "Bitcoin");

    for symbol in ["ETH", "SOL"] {
        app.store
            .upsert_asset(&marketd_storage::Asset {
                symbol: symbol.into(),
                name: symbol.into(),
                quote: "USD".into(),
                sources: vec![],
                created_at: 0,
            })
            .await
            .unwrap();
    }
    let first = app.get("/v1/assets?limit=2").await;
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let (_, _, body) = json(first).await;
    let symbols: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, vec!["BTC", "ETH"]);
    let cursor = body["next_cursor"].as_str().unwrap();
    assert!(link.contains(cursor) && link.ends_with("rel=\"next\""));
    let (_, _, body) = json(
        app.get(&format!("/v1/assets?limit=2&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(body["data"][0]["symbol"], "SOL");
    assert_eq!(body["next_cursor"], Value::Null);
}

async fn prices_with_unknown_symbols(app: &TestApp) {
    seed_btc(app.store.as_ref(), 1).await;
    let (status, _, body) = json(app.get("/v1/prices?symbols=btc,NOPE,BTC").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let btc = &body["data"][0];
    assert_eq!(btc["price"], 64_000.5);
    assert_eq!(btc["change_24h"], 1_000.5);
    assert_eq!(btc["as_of"], "2024-01-01T00:00:00Z");
    // The price is from 2024: old, so it is flagged rather than passed off as live.
    assert_eq!(btc["stale"], true);
    assert_eq!(body["meta"]["unknown"], serde_json::json!(["NOPE"]));
    assert_eq!(body["meta"]["stale"], true);
    let (status, _, body) = json(app.get("/v1/prices").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["symbol"], "BTC");
}

async fn ohlcv_page_states_its_semantics(app: &TestApp) {
    seed_btc(app.store.as_ref(), 10).await;
    let (status, _, body) = json(
        app.get("/v1/ohlcv/BTC?interval=1h&start=2024-01-01T02:00:00Z&end=1704085200000")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        serde_json::json!({
            "open_time": "2024-01-01T02:00:00Z", "close_time": "2024-01-01T03:00:00Z",
            "is_closed": true, "open": 102.0, "high": 103.0, "low": 101.0, "close": 102.5,
            "volume": 2.0, "count": 1, "source": "test"
        })
    );
    let meta = &body["meta"];
    assert_eq!(
        (meta["expected"].as_u64(), meta["returned"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(meta["derived"], false);
    assert_eq!(meta["source_interval"], "1h");
    assert_eq!(body["next_cursor"], Value::Null);
    // A start inside a bucket begins at the next bucket.
    let (_, _, body) = json(
        app.get("/v1/ohlcv/BTC?start=2024-01-01T01:30:00Z&end=2024-01-01T03:00:00Z")
            .await,
    )
    .await;
    assert_eq!(body["data"][0]["open_time"], "2024-01-01T02:00:00Z");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
}

async fn ohlcv_reports_missing_buckets(app: &TestApp) {
    seed_btc(app.store.as_ref(), 0).await;
    let candles: Vec<_> = [0, 1, 4, 5].into_iter().map(hourly).collect();
    app.store
        .upsert_candles("BTC", marketd_domain::Interval::H1, "test", &candles)
        .await
        .unwrap();
    let (_, _, body) = json(
        app.get("/v1/ohlcv/BTC?start=2024-01-01T00:00:00Z&end=2024-01-01T08:00:00Z")
            .await,
    )
    .await;
    let meta = &body["meta"];
    assert_eq!(meta["expected"], 8);
    assert_eq!(meta["returned"], 4);
    assert_eq!(meta["missing_count"], 4);
    assert_eq!(
        meta["missing"],
        serde_json::json!([
            "2024-01-01T02:00:00Z",
            "2024-01-01T03:00:00Z",
            "2024-01-01T06:00:00Z",
            "2024-01-01T07:00:00Z"
        ])
    );
    // Nothing was invented for the gap.
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    assert_eq!(meta["gaps"], serde_json::json!([]), "none recorded yet");

    // Ingest asked two sources for hours 2 to 3 and 6 to 9; neither had them.
    let sources = ["binance".to_owned(), "coinbase".to_owned()];
    for (from, to) in [(2, 4), (6, 10)] {
        app.store
            .record_gap(
                "BTC",
                marketd_domain::Interval::H1,
                hourly(from).open_time,
                hourly(to).open_time,
                &sources,
                hourly(12).open_time,
            )
            .await
            .unwrap();
    }
    let (_, _, body) = json(
        app.get("/v1/ohlcv/BTC?start=2024-01-01T00:00:00Z&end=2024-01-01T08:00:00Z")
            .await,
    )
    .await;
    let gap = |start: &str, end: &str| {
        serde_json::json!({
            "start": start, "end": end, "sources": ["binance", "coinbase"], "attempts": 1,
            "detected_at": "2024-01-01T12:00:00Z", "checked_at": "2024-01-01T12:00:00Z"
        })
    };
    assert_eq!(
        body["meta"]["gaps"],
        serde_json::json!([
            gap("2024-01-01T02:00:00Z", "2024-01-01T04:00:00Z"),
            // Clipped to the window.
            gap("2024-01-01T06:00:00Z", "2024-01-01T08:00:00Z"),
        ])
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 4);

    // Derived 4h buckets are all present, each short of two hours: the hourly gaps show.
    let (_, _, derived) = json(
        app.get("/v1/ohlcv/BTC?interval=4h&start=2024-01-01T00:00:00Z&end=2024-01-01T08:00:00Z")
            .await,
    )
    .await;
    assert_eq!(derived["meta"]["missing_count"], 0);
    assert_eq!(derived["meta"]["gaps"], body["meta"]["gaps"]);
}

async fn ohlcv_derives_coarser_intervals(app: &TestApp) {
    seed_btc(app.store.as_ref(), 30).await;
    let (_, _, body) = json(
        app.get("/v1/ohlcv/BTC?interval=4h&start=2024-01-01T00:00:00Z&end=2024-01-02T08:00:00Z")
            .await,
    )
    .await;
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    // Hours 0-3: open 100, high 104, low 99, close 103.5, volume 8.
    assert_eq!(
        (rows[0]["open"].as_f64(), rows[0]["high"].as_f64()),
        (Some(100.0), Some(104.0))
    );
    assert_eq!(
        (rows[0]["low"].as_f64(), rows[0]["close"].as_f64()),
        (Some(99.0), Some(103.5))
    );
    assert_eq!(
        (rows[0]["volume"].as_f64(), rows[0]["count"].as_u64()),
        (Some(8.0), Some(4))
    );
    // Hours 28-29 only: the bucket is returned, and its count says it is partial.
    assert_eq!(rows[7]["count"], 2);
    assert_eq!(body["meta"]["derived"], true);
    assert_eq!(body["meta"]["source_interval"], "1h");
    // Nothing stored can make 15-minute candles.
    let (status, _, body) = json(
        app.get("/v1/ohlcv/BTC?interval=15m&start=2024-01-01T00:00:00Z&end=2024-01-01T01:00:00Z")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["meta"]["source_interval"], Value::Null);
    assert_eq!(body["meta"]["missing_count"], 4);
}

async fn cursor_walk_returns_every_candle_once(app: &TestApp) {
    seed_btc(app.store.as_ref(), 1_000).await;
    let mut next = Some(
        "/v1/ohlcv/BTC?interval=1h&start=2024-01-01T05:00:00Z&end=2024-02-11T00:00:00Z&limit=97"
            .to_owned(),
    );
    let mut times = Vec::new();
    let mut expected_total = 0;
    while let Some(path) = next.take() {
        let response = app.get(&path).await;
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, _, body) = json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        expected_total += body["meta"]["expected"].as_u64().unwrap();
        times.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["open_time"].as_str().unwrap().to_owned()),
        );
        if let Some(cursor) = body["next_cursor"].as_str() {
            let link = link.expect("a Link header with every next_cursor");
            let target = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned();
            assert!(target.contains(cursor));
            next = Some(target);
        }
    }
    // 2024-01-01T05:00 to 2024-02-11T00:00 is 979 hours, all stored.
    assert_eq!(times.len(), 979);
    assert_eq!(expected_total, 979);
    let mut sorted = times.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, times, "pages overlap or are out of order");
    // A cursor from another query is refused.
    let (_, _, body) = json(
        app.get(
            "/v1/ohlcv/BTC?interval=1h&limit=2&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z",
        )
        .await,
    )
    .await;
    let cursor = body["next_cursor"].as_str().unwrap();
    let (status, ct, body) = json(
        app.get(&format!("/v1/ohlcv/BTC?interval=4h&cursor={cursor}"))
            .await,
    )
    .await;
    assert_problem(
        status,
        &ct,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
}

async fn streams_csv_and_ndjson(app: &TestApp) {
    seed_btc(app.store.as_ref(), 12_000).await;
    let path = "/v1/ohlcv/BTC?interval=1h&start=2024-01-01T00:00:00Z&end=2026-01-01T00:00:00Z";
    let response = app
        .client
        .get(app.url(path))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers().get("content-length").is_none(),
        "a stream is not buffered"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "open_time,close_time,is_closed,open,high,low,close,volume,count,source"
    );
    assert_eq!(lines.len(), 12_001);
    assert_eq!(
        lines[1],
        "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,true,100,101,99,100.5,2,1,test"
    );
    assert!(lines[12_000].starts_with("2025-05-14T23:00:00Z,"));

    let response = app
        .client
        .get(app.url(path))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut chunks = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let rows: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 12_000);
    assert_eq!(rows[11_999]["open"], 100.0 + 11_999.0);

    // A window above the stream cap is refused before any work.
    let too_big =
        app.client
            .get(app.url(
                "/v1/ohlcv/BTC?interval=1m&start=2000-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            ))
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
    let (status, ct, body) = json(too_big).await;
    assert_problem(
        status,
        &ct,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "range_too_large",
    );
}

async fn validation_errors_are_problems(app: &TestApp) {
    seed_btc(app.store.as_ref(), 1).await;
    let cases = [
        (
            "/v1/ohlcv/BTC?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "/v1/ohlcv/BTC?limit=1001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "/v1/ohlcv/BTC?start=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("start"),
        ),
        // Unix milliseconds only as the document's pattern has them.
        (
            "/v1/ohlcv/BTC?start=01704067200000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("start"),
        ),
        (
            "/v1/signals?symbols=BTC&as_of=%201704067200000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("as_of"),
        ),
        (
            "/v1/ohlcv/BTC?start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "invalid_range",
            Some("start"),
        ),
        (
            "/v1/ohlcv/BTC-USD",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("symbol"),
        ),
        (
            "/v1/prices?symbols=BTC,,ETH",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("symbols[1]"),
        ),
        (
            "/v1/ohlcv/BTC?limit=ten",
            StatusCode::BAD_REQUEST,
            "malformed_query",
            None,
        ),
        (
            "/v1/ohlcv/BTC?interval=2h",
            StatusCode::BAD_REQUEST,
            "malformed_query",
            None,
        ),
        (
            "/v1/ohlcv/BTC?colour=red",
            StatusCode::BAD_REQUEST,
            "malformed_query",
            None,
        ),
        (
            // A forged cursor with extreme numbers is refused, not overflowed.
            "/v1/ohlcv/BTC?cursor=YzF8QlRDfDFofC05MjIzMzcyMDM2ODU0Nzc1ODA4fDkyMjMzNzIwMzY4NTQ3NzU4MDd8MA",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            None,
        ),
        (
            "/v1/ohlcv/BTC?cursor=garbage",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            None,
        ),
        (
            "/v1/assets?limit=-1",
            StatusCode::BAD_REQUEST,
            "malformed_query",
            None,
        ),
    ];
    for (path, expected, kind, field) in cases {
        let (status, ct, body) = json(app.get(path).await).await;
        assert_problem(status, &ct, &body, expected, kind);
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    // The caller's request id is echoed in the header and the problem.
    let response = app
        .client
        .get(app.url("/v1/ohlcv/BTC?limit=0"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let (_, _, body) = json(response).await;
    assert_eq!(body["request_id"], "trace-42");
    assert_eq!(body["instance"], "/v1/ohlcv/BTC");
}

async fn unknown_routes_methods_and_symbols_are_problems(app: &TestApp) {
    seed_btc(app.store.as_ref(), 1).await;
    let (status, ct, body) = json(app.get("/v1/nothing/here").await).await;
    assert_problem(status, &ct, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, ct, body) = json(app.get("/v1/ohlcv/NOPE").await).await;
    assert_problem(status, &ct, &body, StatusCode::NOT_FOUND, "unknown_symbol");
    let (status, ct, body) = json(app.get("/v1/assets/NOPE").await).await;
    assert_problem(status, &ct, &body, StatusCode::NOT_FOUND, "unknown_symbol");
    let response = app
        .client
        .delete(app.url("/v1/prices"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    let (status, ct, body) = json(response).await;
    assert_problem(
        status,
        &ct,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

/// With the database gone, data routes and readiness answer 503 problems with
/// Retry-After, and liveness stays 200: the service degrades, it does not crash.
#[tokio::test]
async fn a_dead_database_degrades_to_503() {
    let options = marketd_storage::ConnectOptions {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(500),
    };
    // Nothing listens on port 1; the pool connects lazily, so start-up succeeds.
    let store = marketd_storage::connect("postgres://postgres@127.0.0.1:1/none", &options)
        .await
        .unwrap();
    let pepper = marketd_api::auth::Pepper::parse(crate::helpers::TEST_PEPPER).unwrap();
    let auth = marketd_api::auth::Auth::new(
        Arc::clone(&store),
        marketd_api::auth::AuthConfig::new(pepper),
    )
    .unwrap();
    let app = marketd_api::app(
        marketd_api::AppState::new(Arc::clone(&store), Arc::new(auth)),
        &marketd_api::middleware::Settings::default(),
    );
    // A key of the right shape: checking it needs the database, which is gone.
    let (_, well_formed_key) =
        marketd_domain::api_key::generate(marketd_domain::api_key::KeyEnvironment::Test, || 7);
    for (path, expected) in [
        ("/healthz", 200),
        ("/readyz", 503),
        ("/v1/prices?symbols=BTC", 503),
        ("/v1/ohlcv/BTC", 503),
    ] {
        let response = app
            .clone()
            .oneshot(
                Request::get(path)
                    .header("x-api-key", &well_formed_key)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path}");
        if expected == 503 {
            assert_eq!(response.headers()["retry-after"], "5");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let problem: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["type"], "service_unavailable");
            assert!(
                !problem.to_string().contains("127.0.0.1"),
                "no connection details leak"
            );
        }
    }
    // A mistyped key fails its checksum before any lookup: 401, not 503, with the
    // database gone.
    let mut typo = well_formed_key.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let response = app
        .clone()
        .oneshot(
            Request::get("/v1/prices")
                .header("x-api-key", &typo)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// The value of the sample exactly named `series` (name and labels) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics_count_requests_by_route_template(app: &TestApp) {
    seed_btc(app.store.as_ref(), 3).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/prices?symbols=BTC,ETH").await.status(), 200);
    }
    assert_eq!(app.get("/v1/ohlcv/BTC?interval=1h").await.status(), 200);
    let anon = app
        .anon
        .get(app.url("/v1/prices?symbols=BTC"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(app.get("/v1/no-such-route/xyz").await.status(), 404);

    let response = app.anon.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "no key needed");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let scrape = response.text().await.unwrap();
    let requests = |route: &str, status: u16| {
        sample(
            &scrape,
            &format!(
                "marketd_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("/v1/prices", 200), Some(3.0), "{scrape}");
    assert_eq!(requests("/v1/prices", 401), Some(1.0));
    assert_eq!(requests("/v1/ohlcv/{symbol}", 200), Some(1.0));
    assert_eq!(requests("unmatched", 404), Some(1.0));
    assert_eq!(
        sample(
            &scrape,
            r#"marketd_http_request_duration_seconds_count{method="GET",route="/v1/prices"}"#
        ),
        Some(4.0)
    );
    assert!(sample(&scrape, "marketd_auth_failures_total").unwrap() >= 1.0);
    assert_eq!(
        sample(&scrape, "marketd_http_requests_in_flight"),
        Some(1.0),
        "the scrape itself"
    );
    assert!(sample(&scrape, "marketd_db_pool_max_connections").unwrap() >= 1.0);
    // Every request above that reached the database waited for a connection, if briefly.
    let waits = sample(&scrape, "marketd_db_pool_wait_seconds_count").unwrap();
    assert!(waits >= 4.0, "{scrape}");
    assert_eq!(
        sample(&scrape, r#"marketd_db_pool_wait_seconds_bucket{le="+Inf"}"#),
        Some(waits)
    );
    // Label values come from route templates only: never a raw path, a query or a key.
    for leak in [
        "no-such-route",
        "symbols=",
        "BTC,ETH",
        "mkd_",
        app.admin_key.as_str(),
    ] {
        assert!(!scrape.contains(leak), "{leak} leaked into /metrics");
    }
    // Every sample line belongs to a family declared with HELP and TYPE.
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| scrape.contains(&format!("# TYPE {base} histogram")))
            .unwrap_or(name);
        assert!(scrape.contains(&format!("# TYPE {family} ")), "{line}");
    }
}

async fn cached_answers_still_need_a_key_with_the_scope(app: &TestApp) {
    use marketd_domain::access::Scope;

    seed_btc(app.store.as_ref(), 3).await;
    let path = "/v1/prices?symbols=BTC";
    let first = app.get(path).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    // Nothing is kept by default, so clients are asked to revalidate.
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let body = first.text().await.unwrap();

    // The entry is warm, yet every caller is still authenticated and authorised.
    let anon = app.anon.get(app.url(path)).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let signals_only =
        crate::helpers::issue_key(&app.auth, "signals", &[Scope::SignalsRead], |_| {}).await;
    let refused = crate::helpers::bearer_client(&signals_only)
        .get(app.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let revalidated = app
        .client
        .get(app.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert!(
        revalidated.headers().contains_key("ratelimit"),
        "a 304 still spends quota"
    );
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    let again = app.get(path).await;
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert_eq!(again.text().await.unwrap(), body);
}

/// marketd on SQLite keeping answers for a minute, with three hourly BTC candles.
async fn app_keeping_answers_a_minute() -> TestApp {
    let app = crate::helpers::spawn_app_on(marketd_testkit::TestDb::sqlite(), |url| {
        let mut config = crate::helpers::config(url);
        config.response_cache = std::time::Duration::from_secs(60);
        config
    })
    .await
    .unwrap();
    seed_btc(app.store.as_ref(), 3).await;
    app
}

/// A kept answer is served only to a caller the uncached answer would have been served
/// to: the key, its scope and its quota are checked on every hit.
#[tokio::test]
async fn kept_answers_skip_no_key_scope_or_quota_check() {
    use marketd_domain::access::Scope;

    let app = app_keeping_answers_a_minute().await;
    let path = "/v1/prices?symbols=BTC";
    let kept = app.get(path).await;
    assert_eq!(kept.status(), 200);
    let body = kept.text().await.unwrap();

    let once = crate::helpers::issue_key(&app.auth, "once", &[Scope::PricesRead], |spec| {
        spec.rate_limit_per_minute = 1;
    })
    .await;
    let once = crate::helpers::bearer_client(&once);
    let hit = once.get(app.url(path)).send().await.unwrap();
    assert_eq!(hit.status(), 200);
    assert!(hit.headers().contains_key("age"), "served from the cache");
    assert!(
        hit.headers().contains_key("ratelimit"),
        "a hit spends quota"
    );
    assert_eq!(hit.text().await.unwrap(), body);
    let refused = once.get(app.url(path)).send().await.unwrap();
    assert_eq!(refused.status(), 429, "a kept answer past the quota");

    let signals_only =
        crate::helpers::issue_key(&app.auth, "signals only", &[Scope::SignalsRead], |_| {}).await;
    let signals_only = crate::helpers::bearer_client(&signals_only);
    let forbidden = signals_only.get(app.url(path)).send().await.unwrap();
    assert_eq!(forbidden.status(), 403, "a kept answer without the scope");

    let anonymous = reqwest::get(app.url(path)).await.unwrap();
    assert_eq!(anonymous.status(), 401, "a kept answer without a key");
    app.stop().await;
}

/// With answers kept for a minute, a write by another process still reaches clients
/// within the engines' polls: kept answers are dropped when stored data changes.
#[tokio::test]
async fn kept_answers_are_dropped_when_stored_data_changes() {
    let app = app_keeping_answers_a_minute().await;
    let price_of = |body: Value| body["data"][0]["price"].as_f64().unwrap();
    let path = "/v1/prices?symbols=BTC";
    let before = price_of(app.get(path).await.json().await.unwrap());
    let kept = app.get(path).await;
    assert!(
        kept.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private, max-age=")
    );

    let mut newer = app
        .store
        .latest_prices(&["BTC".to_owned()])
        .await
        .unwrap()
        .remove(0);
    newer.price = before + 1_000.0;
    newer.as_of += 1;
    app.store.upsert_latest_price(&newer).await.unwrap();
    let began = std::time::Instant::now();
    loop {
        let now = price_of(app.get(path).await.json().await.unwrap());
        if now == newer.price {
            break;
        }
        assert_eq!(now, before, "either the kept answer or the new one");
        assert!(
            began.elapsed() < std::time::Duration::from_secs(20),
            "the kept answer was never dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Candles too: a new one shows without waiting out the minute.
    let ohlcv = "/v1/ohlcv/BTC?interval=1h&start=2024-01-01T00:00:00Z";
    let count = |body: Value| body["data"].as_array().unwrap().len();
    let candles = count(app.get(ohlcv).await.json().await.unwrap());
    assert_eq!(candles, 3);
    app.store
        .upsert_candles(
            "BTC",
            marketd_domain::Interval::H1,
            "test",
            &[crate::helpers::hourly(10)],
        )
        .await
        .unwrap();
    let began = std::time::Instant::now();
    while count(app.get(ohlcv).await.json().await.unwrap()) == candles {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(20),
            "kept candles were never dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}
