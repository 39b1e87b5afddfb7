//! A stand-in for the exchanges' public endpoints on 127.0.0.1: Binance klines and ticker,
//! Coinbase candles, ticker and stats, Kraken OHLC and ticker, and CoinGecko simple price, each in its documented shape
//! and with its documented paging rules, so a client bug shows up as a wrong answer here
//! just as it would upstream. Faults are queued per test and each request takes the next.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use marketd_domain::{Candle, Interval, parse_timestamp};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;

/// What the next request gets instead of (or on top of) the normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Waits this long, then answers normally.
    Delay(Duration),
    /// This status with a small JSON error body.
    Status(u16),
    /// This status (429 or 418) with this `Retry-After`.
    RetryAfter(u16, &'static str),
    /// 200 with exactly this body.
    Body(String),
    /// The normal answer plus this header.
    Header(&'static str, String),
    /// Starts a body, then drops the connection.
    Hangup,
    /// A body that never ends.
    Endless,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
    pub at: Instant,
    /// Arrival on the wall clock, Unix ms.
    pub wall_ms: i64,
    pub accept_encoding: Option<String>,
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    seen: Vec<Seen>,
    /// Candles by (the exchange's pair name, the interval parameter as sent).
    series: HashMap<(String, String), Vec<Candle>>,
    /// Binance 24-hour tickers by pair.
    tickers: HashMap<String, Value>,
    /// CoinGecko quotes by coin id.
    quotes: HashMap<String, Value>,
    /// Coinbase ticker and stats objects by product id.
    coinbase_tickers: HashMap<String, (Value, Value)>,
    /// Kraken ticker objects by requested pair: the answer's key and the object.
    kraken_tickers: HashMap<String, (String, Value)>,
    /// Kraken's answer key for a requested pair, when it differs.
    kraken_keys: HashMap<String, String>,
    /// Entries per Kraken answer.
    kraken_page: Option<usize>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    gzip: Arc<AtomicBool>,
}

pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Shared,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner::default())),
            gzip: Arc::new(AtomicBool::new(false)),
        };
        let server = Some(serve(listener, shared.clone()));
        Self {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening: connections are refused until [`FakeUpstream::come_back`].
    pub async fn go_down(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle.await.unwrap();
        }
    }

    pub async fn come_back(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.server = Some(serve(listener, self.shared.clone()));
    }

    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    pub fn gzip(&self, on: bool) {
        self.shared.gzip.store(on, Ordering::SeqCst);
    }

    pub fn candles(&self, pair: &str, interval: &str, candles: Vec<Candle>) {
        self.lock()
            .series
            .insert((pair.to_owned(), interval.to_owned()), candles);
    }

    pub fn kraken_answers_as(&self, requested: &str, key: &str) {
        self.lock()
            .kraken_keys
            .insert(requested.to_owned(), key.to_owned());
    }

    pub fn kraken_page(&self, entries: usize) {
        self.lock().kraken_page = Some(entries);
    }

    pub fn ticker(&self, pair: &str, last: f64, open: f64, close_time: i64) {
        let ticker = json!({
            "symbol": pair,
            "lastPrice": last.to_string(),
            "openPrice": open.to_string(),
            "highPrice": (last.max(open) * 1.01).to_string(),
            "lowPrice": (last.min(open) * 0.99).to_string(),
            "volume": "1234.5",
            "closeTime": close_time,
        });
        self.lock().tickers.insert(pair.to_owned(), ticker);
    }

    pub fn quote(&self, id: &str, usd: f64, change_pct: f64, updated_s: i64) {
        let quote = json!({
            "usd": usd,
            "usd_24h_vol": 1.5e9,
            "usd_24h_change": change_pct,
            "last_updated_at": updated_s,
        });
        self.lock().quotes.insert(id.to_owned(), quote);
    }

    /// A Coinbase product's `/ticker` and `/stats` answers, as given.
    pub fn coinbase_ticker(&self, product: &str, ticker: Value, stats: Value) {
        self.lock()
            .coinbase_tickers
            .insert(product.to_owned(), (ticker, stats));
    }

    /// A Kraken pair's ticker object, answered under `key` when `pair` is asked for.
    pub fn kraken_ticker(&self, pair: &str, key: &str, ticker: Value) {
        self.lock()
            .kraken_tickers
            .insert(pair.to_owned(), (key.to_owned(), ticker));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
}

fn serve(listener: TcpListener, shared: Shared) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let gzip = shared.gzip.clone();
    let app = Router::new().fallback(handle).with_state(shared).layer(
        CompressionLayer::new().compress_when(
            move |_: StatusCode,
                  _: axum::http::Version,
                  _: &HeaderMap,
                  _: &axum::http::Extensions| { gzip.load(Ordering::SeqCst) },
        ),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, handle)
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fault = {
        let mut inner = shared.inner.lock().unwrap();
        inner.seen.push(Seen {
            path: uri.path().to_owned(),
            query: query.clone(),
            at: Instant::now(),
            wall_ms: wall_ms(),
            accept_encoding: headers
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        inner.faults.pop_front()
    };
    let answer = |shared: &Shared| {
        let inner = shared.inner.lock().unwrap();
        route(&inner, uri.path(), &query)
    };
    match fault {
        None => answer(&shared),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            answer(&shared)
        }
        Some(Fault::Status(status)) => error(status, &json!({"code": -1, "msg": "injected"})),
        Some(Fault::RetryAfter(status, after)) => {
            let mut response = error(status, &json!({"code": -1003, "msg": "Too many requests"}));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(after));
            response
        }
        Some(Fault::Body(body)) => json_body(body),
        Some(Fault::Header(name, value)) => {
            let mut response = answer(&shared);
            response.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
            response
        }
        Some(Fault::Hangup) => {
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"[[1704067200000,\"1.0\"")),
                Err(std::io::Error::other("hung up")),
            ];
            Body::from_stream(futures::stream::iter(parts)).into_response()
        }
        Some(Fault::Endless) => {
            let chunk = Bytes::from(vec![b' '; 16 * 1024]);
            let stream =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Body::from_stream(stream).into_response()
        }
    }
}

fn route(inner: &Inner, path: &str, q: &HashMap<String, String>) -> Response {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "api", "v3", "klines"] => binance_klines(inner, q),
        ["", "api", "v3", "ticker", "24hr"] => binance_ticker(inner, q),
        ["", "products", product, "candles"] => coinbase_candles(inner, product, q),
        ["", "products", product, what @ ("ticker" | "stats")] => {
            match inner.coinbase_tickers.get(*product) {
                Some((ticker, _)) if *what == "ticker" => json_body(ticker.to_string()),
                Some((_, stats)) => json_body(stats.to_string()),
                None => error(404, &json!({"message": "NotFound"})),
            }
        }
        ["", "0", "public", "Ticker"] => kraken_ticker(inner, q),
        ["", "0", "public", "OHLC"] => kraken_ohlc(inner, q),
        ["", "api", "v3", "simple", "price"] => coingecko_price(inner, q),
        _ => error(404, &json!({"message": "NotFound"})),
    }
}

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str) -> Option<T> {
    q.get(name)?.parse().ok()
}

/// Binance: open times in `[startTime, endTime]`, both inclusive, at most `limit` rows.
fn binance_klines(inner: &Inner, q: &HashMap<String, String>) -> Response {
    let (Some(symbol), Some(interval)) = (q.get("symbol"), q.get("interval")) else {
        return error(
            400,
            &json!({"code": -1102, "msg": "Mandatory parameter missing."}),
        );
    };
    let Some(series) = inner.series.get(&(symbol.clone(), interval.clone())) else {
        return error(400, &json!({"code": -1121, "msg": "Invalid symbol."}));
    };
    let step = interval.parse::<Interval>().unwrap().millis();
    let start: i64 = param(q, "startTime").unwrap_or(0);
    let end: i64 = param(q, "endTime").unwrap_or(i64::MAX);
    let limit: usize = param(q, "limit").unwrap_or(500);
    if limit > 1000 {
        return error(400, &json!({"code": -1130, "msg": "Invalid limit."}));
    }
    let rows: Vec<Value> = series
        .iter()
        .filter(|c| (start..=end).contains(&c.open_time))
        .take(limit)
        .map(|c| binance_row(c, step))
        .collect();
    json_body(Value::Array(rows).to_string())
}

pub fn binance_row(c: &Candle, step: i64) -> Value {
    json!([
        c.open_time,
        c.open.to_string(),
        c.high.to_string(),
        c.low.to_string(),
        c.close.to_string(),
        c.volume.to_string(),
        c.open_time + step - 1,
        "0",
        10,
        "0",
        "0",
        "0"
    ])
}

fn binance_ticker(inner: &Inner, q: &HashMap<String, String>) -> Response {
    let Some(list) = q.get("symbols") else {
        return json_body(Value::Array(inner.tickers.values().cloned().collect()).to_string());
    };
    let Ok(pairs) = serde_json::from_str::<Vec<String>>(list) else {
        return error(
            400,
            &json!({"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}),
        );
    };
    let mut tickers = Vec::new();
    for pair in pairs {
        match inner.tickers.get(&pair) {
            Some(t) => tickers.push(t.clone()),
            None => return error(400, &json!({"code": -1121, "msg": "Invalid symbol."})),
        }
    }
    json_body(Value::Array(tickers).to_string())
}

/// Coinbase: buckets in `[start, end]`, newest first, at most 300 or the request is refused.
fn coinbase_candles(inner: &Inner, product: &str, q: &HashMap<String, String>) -> Response {
    let Some(granularity) = q.get("granularity") else {
        return error(400, &json!({"message": "granularity is required"}));
    };
    let Some(series) = inner.series.get(&(product.to_owned(), granularity.clone())) else {
        return error(404, &json!({"message": "NotFound"}));
    };
    let step = granularity.parse::<i64>().unwrap() * 1000;
    let time = |name: &str| q.get(name).map(|v| parse_timestamp(v).unwrap());
    let (Some(start), Some(end)) = (time("start"), time("end")) else {
        return error(400, &json!({"message": "start and end are required"}));
    };
    if (end - start) / step + 1 > 300 {
        return error(
            400,
            &json!({"message": "granularity too small for the requested time range. Count of aggregations requested exceeds 300"}),
        );
    }
    let rows: Vec<Value> = series
        .iter()
        .rev()
        .filter(|c| (start..=end).contains(&c.open_time))
        .map(coinbase_row)
        .collect();
    json_body(Value::Array(rows).to_string())
}

pub fn coinbase_row(c: &Candle) -> Value {
    json!([c.open_time / 1000, c.low, c.high, c.open, c.close, c.volume])
}

/// Kraken: entries after `since`, at most a page of them. `last` is the newest committed
/// entry: the one before the still-open bucket when the page reaches the head of the data.
fn kraken_ohlc(inner: &Inner, q: &HashMap<String, String>) -> Response {
    let (Some(pair), Some(interval)) = (q.get("pair"), q.get("interval")) else {
        return json_body(json!({"error": ["EGeneral:Invalid arguments"]}).to_string());
    };
    let Some(series) = inner.series.get(&(pair.clone(), interval.clone())) else {
        return json_body(json!({"error": ["EQuery:Unknown asset pair"]}).to_string());
    };
    let since_ms = param::<i64>(q, "since").unwrap_or(0) * 1000;
    let after: Vec<&Candle> = series.iter().filter(|c| c.open_time > since_ms).collect();
    let page = &after[..after.len().min(inner.kraken_page.unwrap_or(720))];
    let at_head = page.len() == after.len();
    let last = match (page, at_head) {
        ([.., before, _], true) => before.open_time,
        ([.., newest], false) => newest.open_time,
        _ => since_ms,
    } / 1000;
    let rows: Vec<Value> = page.iter().map(|c| kraken_row(c)).collect();
    let key = inner.kraken_keys.get(pair).unwrap_or(pair);
    let mut result = serde_json::Map::new();
    result.insert(key.clone(), Value::Array(rows));
    result.insert("last".to_owned(), json!(last));
    json_body(json!({"error": [], "result": result}).to_string())
}

pub fn kraken_row(c: &Candle) -> Value {
    json!([
        c.open_time / 1000,
        c.open.to_string(),
        c.high.to_string(),
        c.low.to_string(),
        c.close.to_string(),
        c.close.to_string(),
        c.volume.to_string(),
        7
    ])
}

/// Kraken: every pair asked for, or an error for the whole request if one is unknown.
fn kraken_ticker(inner: &Inner, q: &HashMap<String, String>) -> Response {
    let Some(pairs) = q.get("pair") else {
        return json_body(json!({"error": ["EGeneral:Invalid arguments"]}).to_string());
    };
    let mut result = serde_json::Map::new();
    for pair in pairs.split(',') {
        match inner.kraken_tickers.get(pair) {
            Some((key, ticker)) => {
                result.insert(key.clone(), ticker.clone());
            }
            None => {
                return json_body(json!({"error": ["EQuery:Unknown asset pair"]}).to_string());
            }
        }
    }
    json_body(json!({"error": [], "result": result}).to_string())
}

fn coingecko_price(inner: &Inner, q: &HashMap<String, String>) -> Response {
    let ids = q.get("ids").map(String::as_str).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for id in ids.split(',') {
        if let Some(quote) = inner.quotes.get(id) {
            out.insert(id.to_owned(), quote.clone());
        }
    }
    json_body(Value::Object(out).to_string())
}

fn json_body(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn wall_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}
