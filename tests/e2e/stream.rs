//! `GET /v1/stream/prices` over real HTTP: events as prices change, resumption with
//! `Last-Event-ID`, auth and the per-key cap, and a goodbye at shutdown.

use std::time::Duration;

use futures::StreamExt;
use marketd_domain::LatestPrice;
use serde_json::Value;

use crate::helpers::{MONDAY, TestApp, both_backends, seed_btc};

both_backends!(
    changes_arrive_as_events_and_resume_after_the_last_id,
    streams_need_the_scope_and_are_capped_per_key,
);

/// Far beyond the half-second poll, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// One parsed event: its name, id and JSON data.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<u64>,
    data: Value,
}

/// Reads server-sent events from a response, skipping comments.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut comment_only = true;
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        event.event = name.to_owned();
                        comment_only = false;
                    } else if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.parse().unwrap());
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(data).unwrap();
                        comment_only = false;
                    }
                }
                if comment_only {
                    continue;
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(DEADLINE, self.body.next())
                .await
                .expect("no event in time")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }
}

async fn set_price(app: &TestApp, price: f64, as_of: i64) {
    app.store
        .upsert_latest_price(&LatestPrice {
            symbol: "BTC".into(),
            price,
            open_24h: 100.0,
            high_24h: price.max(100.0),
            low_24h: price.min(100.0),
            volume_24h: 5.0,
            as_of,
            source: "test".into(),
        })
        .await
        .unwrap();
}

async fn open(app: &TestApp, last_event_id: Option<u64>) -> Events {
    let mut request = app.client.get(app.url("/v1/stream/prices?symbols=BTC"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    Events::new(request.send().await.unwrap())
}

async fn changes_arrive_as_events_and_resume_after_the_last_id(app: &TestApp) {
    seed_btc(app.store.as_ref(), 2).await;
    set_price(app, 101.0, MONDAY + 1).await;
    let mut events = open(app, None).await;
    // The latest known price comes first; the seeded one may come before it when the hub
    // read the prices between the two writes.
    let mut first = events.next().await.unwrap();
    while first.data["price"] != 101.0 {
        first = events.next().await.unwrap();
    }
    assert_eq!(first.event, "price");
    assert_eq!(first.data["symbol"], "BTC");
    let first_id = first.id.unwrap();

    set_price(app, 102.5, MONDAY + 2).await;
    let second = events.next().await.unwrap();
    assert_eq!(second.data["price"], 102.5);
    assert!(second.id.unwrap() > first_id);
    drop(events);

    // Missed while disconnected: resuming after the first event replays what came since.
    set_price(app, 103.0, MONDAY + 3).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut resumed = open(app, Some(first_id)).await;
    let prices: Vec<f64> = [resumed.next().await.unwrap(), resumed.next().await.unwrap()]
        .iter()
        .map(|e| e.data["price"].as_f64().unwrap())
        .collect();
    assert_eq!(prices, [102.5, 103.0]);
}

async fn streams_need_the_scope_and_are_capped_per_key(app: &TestApp) {
    use marketd_domain::access::Scope;

    seed_btc(app.store.as_ref(), 2).await;
    set_price(app, 101.0, MONDAY + 1).await;
    let anon = app
        .anon
        .get(app.url("/v1/stream/prices?symbols=BTC"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let signals_only =
        crate::helpers::issue_key(&app.auth, "signals", &[Scope::SignalsRead], |_| {}).await;
    let refused = crate::helpers::bearer_client(&signals_only)
        .get(app.url("/v1/stream/prices?symbols=BTC"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let bad = app.get("/v1/stream/prices?symbols=BTC,no-such!").await;
    assert_eq!(bad.status(), 422);

    let mut open_streams = Vec::new();
    for _ in 0..marketd_api::price_stream::STREAMS_PER_KEY {
        open_streams.push(open(app, None).await);
    }
    let over = app.get("/v1/stream/prices?symbols=BTC").await;
    assert_eq!(over.status(), 429);
    let problem: Value = over.json().await.unwrap();
    assert_eq!(problem["violated-policies"][0], "streams");

    // A closed stream frees its place once the server notices, at its next write.
    drop(open_streams.pop());
    let mut price = 101.0;
    let began = std::time::Instant::now();
    loop {
        price += 1.0;
        set_price(app, price, MONDAY + price as i64).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let again = app.get("/v1/stream/prices?symbols=BTC").await;
        if again.status() == 200 {
            break;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "a closed stream never freed its place"
        );
    }
}

/// Shutdown sends every open stream a goodbye and ends it.
#[tokio::test]
async fn shutdown_says_goodbye_to_open_streams() {
    let Some(app) = crate::helpers::spawn_app(marketd_testkit::Kind::Sqlite).await else {
        return;
    };
    seed_btc(app.store.as_ref(), 2).await;
    set_price(&app, 101.0, MONDAY + 1).await;
    let mut events = open(&app, None).await;
    assert_eq!(events.next().await.unwrap().event, "price");
    let reader = tokio::spawn(async move {
        let last = events.next().await;
        let after = events.next().await;
        (last, after)
    });
    app.stop().await;
    let (last, after) = reader.await.unwrap();
    let last = last.expect("a goodbye event");
    assert_eq!(last.event, "shutdown");
    assert!(after.is_none(), "the stream ends after it");
}
