//! The HTTP middleware over real sockets: time limits, body limits, compression, CORS and
//! security headers, each as a client sees it.

use std::time::Duration;

use marketd_testkit::{Kind, TestDb};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    TestApp, config, parse_response, read_until_closed, socket_addr, spawn_app_on,
};

/// Far above any configured limit: tests check what happens, not how fast.
const BOUND: Duration = Duration::from_secs(30);

async fn app_with(adjust: impl FnOnce(&mut marketd::config::Config)) -> TestApp {
    spawn_app_on(TestDb::sqlite(), |url| {
        let mut c = config(url);
        adjust(&mut c);
        c
    })
    .await
    .unwrap()
}

/// A key-creating POST whose body declares `length` bytes but starts with `sent`.
fn partial_post(app: &TestApp, length: usize, sent: &str) -> String {
    format!(
        "POST /v1/admin/keys HTTP/1.1\r\nHost: marketd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\
         X-Request-Id: slow-body-1\r\nConnection: close\r\n\r\n{sent}",
        app.admin_key
    )
}

fn assert_problem(status: u16, head: &str, body: &str, expected: u16, kind: &str) -> Value {
    assert_eq!(status, expected, "{head}\n{body}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let problem: Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["type"], kind);
    assert_eq!(problem["status"], expected);
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_a_408() {
    let app = app_with(|c| c.http.timeouts.body = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(partial_post(&app, 200, "{\"name\":").as_bytes())
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, BOUND).await.unwrap();
    let (status, head, body) = parse_response(&received);
    let problem = assert_problem(status, &head, &body, 408, "body_timeout");
    assert_eq!(problem["request_id"], "slow-body-1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_a_408() {
    let app = app_with(|c| c.http.timeouts.body = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(partial_post(&app, 100, "").as_bytes())
        .await
        .unwrap();
    // One byte at a time, never quiet for long: only a deadline on the whole body stops it.
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut received = Vec::new();
    tokio::time::timeout(
        BOUND,
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut received),
    )
    .await
    .expect("the server kept reading")
    .ok();
    trickle.abort();
    let (status, head, body) = parse_response(&received);
    assert_problem(status, &head, &body, 408, "body_timeout");
    app.stop().await;
}

/// The database stalls (a table lock held elsewhere): the request ends at the handler
/// limit with a 503 `timeout` problem, and the service answers again once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handler_is_a_503_timeout() {
    use sqlx::Connection;
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let url = db.url.clone();
    let app = spawn_app_on(db, |url| {
        let mut c = config(url);
        c.http.timeouts.handler = Duration::from_secs(1);
        c
    })
    .await
    .unwrap();
    crate::helpers::seed_btc(app.store.as_ref(), 10).await;
    let mut locker = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE assets, candles, series, latest_prices IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let response = app
        .client
        .get(app.url("/v1/ohlcv/BTC?interval=1h"))
        .header("x-request-id", "stalled-1")
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "timeout");
    assert_eq!(problem["request_id"], "stalled-1");

    lock.rollback().await.unwrap();
    let response = app.get("/v1/ohlcv/BTC?interval=1h").await;
    assert_eq!(response.status(), 200);
    locker.close().await.unwrap();
    app.stop().await;
}

/// A key-creation body padded with spaces to exactly `size` bytes.
fn padded_key_request(size: usize) -> String {
    let json = r#"{"name":"padded","scopes":["prices:read"]}"#;
    format!("{json}{}", " ".repeat(size - json.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_64_kib_are_accepted_by_default() {
    let app = app_with(|_| {}).await;
    let response = app
        .client
        .post(app.url("/v1/admin/keys"))
        .header("content-type", "application/json")
        .body(padded_key_request(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // One byte more, declared up front: refused before the body is read, so none is sent.
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(partial_post(&app, 64 * 1024 + 1, "").as_bytes())
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, BOUND).await.unwrap();
    let (status, head, body) = parse_response(&received);
    let problem = assert_problem(status, &head, &body, 413, "payload_too_large");
    assert_eq!(problem["request_id"], "slow-body-1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_a_413() {
    let app =
        app_with(|c| c.http.body_limit = marketd_api::middleware::body_limit::BodyLimit(1000))
            .await;
    // Streamed, so it goes out chunked, without a Content-Length to refuse up front.
    let chunks = [padded_key_request(600), " ".repeat(600)]
        .map(|chunk| Ok::<_, std::io::Error>(chunk.into_bytes()));
    let response = app
        .client
        .post(app.url("/v1/admin/keys"))
        .header("content-type", "application/json")
        .header("x-request-id", "chunked-1")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "payload_too_large");
    assert_eq!(problem["request_id"], "chunked-1");

    let response = app
        .client
        .post(app.url("/v1/admin/keys"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            padded_key_request(1000).into_bytes(),
        )])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "a chunked body at the limit passes");
    app.stop().await;
}

async fn fetch_encoded(
    app: &TestApp,
    path: &str,
    accept: Option<&str>,
) -> (Option<String>, Vec<u8>) {
    // Asks for nothing and decodes nothing by itself, so the test sees the wire.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .build()
        .unwrap();
    let mut request = raw.get(app.url(path)).bearer_auth(&app.admin_key);
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    (encoding, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_compressed_when_asked() {
    use std::io::Read;
    let app = app_with(|_| {}).await;
    crate::helpers::seed_btc(app.store.as_ref(), 300).await;
    let path = "/v1/ohlcv/BTC?interval=1h&start=2024-01-01T00:00:00Z&limit=300";
    let (encoding, plain) = fetch_encoded(&app, path, None).await;
    assert_eq!(encoding, None);
    let json: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 300);

    let (encoding, gzipped) = fetch_encoded(&app, path, Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain);

    let (encoding, brotlied) = fetch_encoded(&app, path, Some("br")).await;
    assert_eq!(encoding.as_deref(), Some("br"));
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&brotlied[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain);

    // A small body is not worth it.
    let (encoding, _) = fetch_encoded(&app, "/healthz", Some("gzip, br")).await;
    assert_eq!(encoding, None);
    app.stop().await;
}

const FRONT_END: &str = "https://app.example.com";

fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_grants_only_configured_origins_and_preflights_skip_auth() {
    let app = app_with(|c| {
        c.http.cors_origins = marketd_api::middleware::cors::parse_origins(&format!(
            "{FRONT_END},http://localhost:5173"
        ))
        .unwrap();
    })
    .await;
    // A browser sends its preflight without the key.
    let preflight = app
        .anon
        .request(reqwest::Method::OPTIONS, app.url("/v1/prices?symbols=BTC"))
        .header("origin", FRONT_END)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        FRONT_END
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");

    let response = app
        .client
        .get(app.url("/v1/prices?symbols=BTC"))
        .header("origin", FRONT_END)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], FRONT_END);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("ratelimit") && exposed.contains("x-request-id"),
        "{exposed}"
    );

    // A refusal is readable by the page too, so it can tell the user why.
    let refused = app
        .anon
        .get(app.url("/v1/prices?symbols=BTC"))
        .header("origin", FRONT_END)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], FRONT_END);

    for request in [
        app.anon
            .request(reqwest::Method::OPTIONS, app.url("/v1/prices"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "GET"),
        app.client
            .get(app.url("/v1/prices?symbols=BTC"))
            .header("origin", "https://evil.example"),
    ] {
        let response = request.send().await.unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = app_with(|_| {}).await;
    let preflight = app
        .anon
        .request(reqwest::Method::OPTIONS, app.url("/v1/prices"))
        .header("origin", FRONT_END)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(cors_headers(&preflight), Vec::<String>::new());
    let response = app
        .client
        .get(app.url("/v1/prices?symbols=BTC"))
        .header("origin", FRONT_END)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(cors_headers(&response), Vec::<String>::new());
    app.stop().await;
}

fn assert_security_headers(response: &reqwest::Response, policy: &str) {
    let headers = response.headers();
    let url = response.url().path();
    assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{url}");
    assert_eq!(headers["x-frame-options"], "DENY", "{url}");
    assert_eq!(headers["content-security-policy"], policy, "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_security_headers() {
    const STRICT: &str = "default-src 'none'; frame-ancestors 'none'";
    let app = app_with(|_| {}).await;
    for (client, path, status) in [
        (&app.client, "/v1/prices?symbols=BTC", 200),
        (&app.anon, "/v1/prices?symbols=BTC", 401),
        (&app.client, "/v1/nowhere", 404),
        (&app.anon, "/healthz", 200),
        (&app.anon, "/openapi.json", 200),
    ] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_security_headers(&response, STRICT);
    }

    // Swagger UI is a page that runs its own scripts and styles: a policy that allows
    // those from this origin, and still nothing from elsewhere.
    let page = app.anon.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self';"),
        "{policy}"
    );
    assert_security_headers(&page, &policy);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let style = app
        .anon
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status(), 200);
    assert_security_headers(&style, &policy);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_an_address_of_their_own() {
    let app = app_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics_base = app.metrics_base.clone().unwrap();
    let prices = app.get("/v1/prices?symbols=BTC").await;
    assert_eq!(prices.status(), 200);

    let public = app.anon.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    assert_eq!(public.headers()["content-type"], "application/problem+json");

    let scraped = app
        .anon
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains("route=\"/v1/prices\""),
        "the API's requests are counted: {text}"
    );
    let elsewhere = app
        .anon
        .get(format!("{metrics_base}/v1/prices?symbols=BTC"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404, "only /metrics is served there");
    app.stop().await;
}
