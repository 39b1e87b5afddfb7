//! Connection-level protections over raw TCP: the header deadline, the header size
//! limit, the connection cap; and that HTTP/2 without TLS is still served.

use std::time::Duration;

use marketd_testkit::TestDb;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    TestApp, config, parse_response, read_until_closed, socket_addr, spawn_app_on,
};

/// Far above the configured deadline: the test checks that the connection is closed,
/// not how quickly.
const BOUND: Duration = Duration::from_secs(20);

async fn app_with(adjust: impl FnOnce(&mut marketd::http::ConnectionLimits)) -> TestApp {
    spawn_app_on(TestDb::sqlite(), |url| {
        let mut c = config(url);
        adjust(&mut c.connections);
        c
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_disconnected() {
    let app = app_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    let received = read_until_closed(&mut stream, BOUND).await;
    assert_eq!(received, Some(Vec::new()), "still open, or answered");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_line_is_disconnected() {
    let app = app_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    for partial in [
        &b"GET /healthz HTTP/1.1\r\nHost: 127.0"[..],
        // Half of the preface an HTTP/2 client opens with.
        &b"PRI * HTTP/2.0\r\n"[..],
    ] {
        let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
        stream.write_all(partial).await.unwrap();
        let received = read_until_closed(&mut stream, BOUND).await;
        assert_eq!(received, Some(Vec::new()), "{partial:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_requests_then_idles_out() {
    let app = app_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: marketd\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, BOUND).await.unwrap();
    let (status, _, _) = parse_response(&received);
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let app = app_with(|c| c.http2_idle_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    // The preface and an empty SETTINGS frame: a complete HTTP/2 opening, then silence.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, BOUND).await;
    let received = received.expect("an idle HTTP/2 connection stayed open");
    // The server spoke HTTP/2 (its SETTINGS frame) before closing.
    assert!(received.len() >= 9 && received[3] == 0x04, "{received:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_a_431() {
    let app = app_with(|c| c.max_header_bytes = 8 * 1024).await;
    let over = |bytes: usize| {
        let big = "a".repeat(bytes);
        format!(
            "GET /healthz HTTP/1.1\r\nHost: marketd\r\nConnection: close\r\nX-Big: {big}\r\n\r\n"
        )
    };
    // Over the limit: a problem document like every other refusal.
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream.write_all(over(9 * 1024).as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream, BOUND).await.unwrap();
    let (status, head, body) = parse_response(&received);
    assert_eq!(status, 431, "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("x-request-id: "), "{head}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "headers_too_large");
    assert!(problem["request_id"].is_string(), "{problem}");

    // Over twice the limit the head does not fit the read buffer: still a 431.
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream.write_all(over(17 * 1024).as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream, BOUND).await.unwrap();
    assert_eq!(parse_response(&received).0, 431);

    // Just under the limit is fine.
    let fits = "a".repeat(7 * 1024);
    let response = app
        .anon
        .get(app.url("/healthz"))
        .header("x-big", fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_client_waits_its_turn() {
    let app = app_with(|c| c.max_connections = 1).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: marketd\r\nConnection: close\r\n\r\n";
    // The first connection takes the only slot and keeps it by sending nothing yet.
    let mut first = TcpStream::connect(socket_addr(&app)).await.unwrap();
    first.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    // The kernel completes the second handshake, but marketd does not accept it.
    let mut second = TcpStream::connect(socket_addr(&app)).await.unwrap();
    second.write_all(request).await.unwrap();
    assert_eq!(
        read_until_closed(&mut second, Duration::from_millis(500)).await,
        None,
        "a second connection was served past the cap"
    );
    first
        .write_all(b"Host: marketd\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = parse_response(&read_until_closed(&mut first, BOUND).await.unwrap());
    assert_eq!(status, 200);
    let (status, _, _) = parse_response(&read_until_closed(&mut second, BOUND).await.unwrap());
    assert_eq!(
        status, 200,
        "the waiting connection is served once the slot frees"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_tls_is_served() {
    let app = app_with(|_| {}).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    app.stop().await;
}
