//! Response cache and conditional requests for the GET data routes.
//!
//! Rate limiting hands each request it lets through to [`respond`], so the cache runs
//! after authentication and the quota: a cached answer never skips a scope check or a
//! quota. (A router without authentication uses [`cache`] as a route layer.)
//!
//! Every answer of these routes gets a strong `ETag` (a hash of its bytes), and a
//! matching `If-None-Match` gets 304, which saves the transfer.
//!
//! Answers are kept for a lifetime the operator sets (`marketd serve` keeps them a
//! second unless told otherwise; [`ResponseCache::default`] keeps none). Entries are
//! dropped when stored data changes: at once when the write is announced (on Postgres
//! every process's writes, via NOTIFY; on SQLite this process's own), otherwise when a
//! poller notices it (the signal engine within a second, the price hub within half a
//! second). An answer computed while a clear happened is served but not kept. A kept
//! answer may still trail a write by the announcement's delay, or, for another
//! process's write to a SQLite file, by up to the lifetime. Entries are keyed by path
//! and normalised query (parameters sorted by name) and bounded by total body size;
//! concurrent misses for one key are computed once, the others waiting for it.
//! `Cache-Control: private, max-age=N` and `Age` then say how fresh an answer is;
//! without a lifetime, `private, no-cache` asks clients to revalidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use moka::sync::Cache;

/// Routes whose GET answers depend only on the request, never on the caller.
pub const CACHEABLE_ROUTES: [&str; 8] = [
    "/v1/assets",
    "/v1/assets/{symbol}",
    "/v1/prices",
    "/v1/ohlcv/{symbol}",
    "/v1/indicators/{symbol}",
    "/v1/signals",
    "/v1/signals/{symbol}/history",
    "/v1/strategies",
];

/// Largest body kept; larger answers are served as they come.
const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Ages, in whole seconds, whose header values are made once rather than per answer.
const PREFORMATTED_SECS: u64 = 300;

/// `Age: N` and `Cache-Control: private, max-age=N` for N up to the lifetime (and at
/// most [`PREFORMATTED_SECS`]): a hit clones them instead of formatting and allocating.
#[derive(Debug, Default)]
struct Freshness {
    ages: Vec<HeaderValue>,
    max_ages: Vec<HeaderValue>,
}

impl Freshness {
    fn new(ttl: Duration) -> Self {
        let upto = ttl.as_secs().min(PREFORMATTED_SECS);
        Self {
            ages: (0..=upto).map(HeaderValue::from).collect(),
            max_ages: (0..=upto).map(max_age).collect(),
        }
    }

    fn age(&self, secs: u64) -> HeaderValue {
        usize::try_from(secs)
            .ok()
            .and_then(|index| self.ages.get(index).cloned())
            .unwrap_or_else(|| HeaderValue::from(secs))
    }

    fn max_age(&self, secs: u64) -> HeaderValue {
        usize::try_from(secs)
            .ok()
            .and_then(|index| self.max_ages.get(index).cloned())
            .unwrap_or_else(|| max_age(secs))
    }
}

fn max_age(secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("private, max-age={secs}"))
        .unwrap_or(HeaderValue::from_static("private, no-cache"))
}

#[derive(Debug, Clone)]
struct Entry {
    /// The handler's headers (content type, `Link`, …), served again with the body.
    headers: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
    stored_at: Instant,
}

/// The cache, its single-flight gates and its counters.
pub struct ResponseCache {
    entries: Cache<String, Arc<Entry>>,
    /// One lock per key being computed, so concurrent misses wait instead of all
    /// computing; idle gates expire on their own.
    gates: Cache<String, Arc<tokio::sync::Mutex<()>>>,
    ttl: Duration,
    freshness: Freshness,
    /// Bumped by every [`ResponseCache::clear`]: an answer computed across a clear may
    /// hold data from before the write that caused it, so it is served but not kept.
    generation: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub not_modified: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache of at most `max_bytes` of bodies whose entries live `ttl`.
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                u32::try_from(key.len() + entry.body.len()).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        let gates = Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(Duration::from_secs(10))
            .build();
        Self {
            entries,
            gates,
            ttl,
            freshness: Freshness::new(ttl),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Bytes of keys and bodies held now.
    pub fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    /// Drops every entry, for when stored data changed under them.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// Clears on every announced write of candles or prices until `shutdown`, so a kept
    /// answer outlives the data it was made from only by the announcement's delay.
    pub fn spawn_clearing(
        self: Arc<Self>,
        mut changes: marketd_storage::Changes,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    change = changes.next() => match change {
                        Some(_) => self.clear(),
                        None => return,
                    },
                }
            }
        })
    }

    fn keeps(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn fresh(&self, key: &str) -> Option<Arc<Entry>> {
        if !self.keeps() {
            return None;
        }
        self.entries
            .get(key)
            .filter(|entry| entry.stored_at.elapsed() < self.ttl)
    }
}

/// Bodies kept at most, when keeping is on.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Default for ResponseCache {
    /// Validators and 304s only; nothing is kept.
    fn default() -> Self {
        Self::new(Duration::ZERO, DEFAULT_CACHE_BYTES)
    }
}

/// The path and query with parameters sorted by name (stable, so repeated names keep
/// their order): `?b=2&a=1` and `?a=1&b=2` are one entry.
fn cache_key(request: &Request) -> String {
    fn name(pair: &str) -> &str {
        pair.split('=').next().unwrap_or_default()
    }
    let uri = request.uri();
    let query = uri.query().unwrap_or_default();
    let pairs = || query.split('&').filter(|pair| !pair.is_empty());
    let mut key = String::with_capacity(uri.path().len() + 1 + query.len());
    key.push_str(uri.path());
    key.push('?');
    // Clients mostly send one parameter, or several already in order: no sort needed.
    let in_order = pairs()
        .zip(pairs().skip(1))
        .all(|(a, b)| name(a) <= name(b));
    let mut push = |index: usize, pair: &str| {
        if index > 0 {
            key.push('&');
        }
        key.push_str(pair);
    };
    if in_order {
        pairs()
            .enumerate()
            .for_each(|(index, pair)| push(index, pair));
    } else {
        let mut sorted: Vec<&str> = pairs().collect();
        sorted.sort_by_key(|pair| name(pair));
        sorted
            .into_iter()
            .enumerate()
            .for_each(|(index, pair)| push(index, pair));
    }
    key
}

/// Only JSON is cached; CSV and NDJSON answers stream whole ranges.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|accept| !accept.contains("csv") && !accept.contains("ndjson"))
}

fn matches(if_none_match: Option<&HeaderValue>, etag: &HeaderValue) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// Headers added to a cached answer on its way out, at most.
const HEADERS_ADDED_OUTSIDE: usize = 16;

fn answer(cache: &ResponseCache, entry: &Entry, if_none_match: Option<&HeaderValue>) -> Response {
    let age = entry.stored_at.elapsed();
    let left = cache.ttl.saturating_sub(age).as_secs();
    let cache_control = if cache.keeps() {
        cache.freshness.max_age(left)
    } else {
        HeaderValue::from_static("private, no-cache")
    };
    let age = cache.freshness.age(age.as_secs());
    let mut response = if matches(if_none_match, &entry.etag) {
        cache.not_modified.fetch_add(1, Ordering::Relaxed);
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        // RFC 9110 §15.4.5: a 304 repeats the headers a 200 would have had, less the
        // ones that describe a body.
        for (name, value) in &entry.headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().append(name, value.clone());
            }
        }
        response
    } else {
        let mut response = Response::new(Body::from(entry.body.clone()));
        // Room for what this function and the layers around it add (validators, request
        // id, rate-limit and security headers), so the map is not regrown on the way out.
        let mut headers = HeaderMap::with_capacity(entry.headers.len() + HEADERS_ADDED_OUTSIDE);
        headers.extend(entry.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        *response.headers_mut() = headers;
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, entry.etag.clone());
    headers.insert(header::CACHE_CONTROL, cache_control);
    headers.insert(header::AGE, age);
    response
}

/// The cache as a middleware of its own, for a router without authentication.
pub async fn cache(
    State(cache): State<Arc<ResponseCache>>,
    request: Request,
    next: Next,
) -> Response {
    respond(&cache, request, next).await
}

/// Answers `request` from the cache when it can, otherwise runs the rest of the stack
/// and keeps what it answers. Rate limiting calls this once the quota is charged.
pub async fn respond(cache: &ResponseCache, request: Request, next: Next) -> Response {
    let cacheable = request.method() == Method::GET
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| CACHEABLE_ROUTES.contains(&p.as_str()))
        && wants_json(request.headers());
    if !cacheable {
        return next.run(request).await;
    }
    let key = cache_key(&request);
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    if let Some(entry) = cache.fresh(&key) {
        cache.hits.fetch_add(1, Ordering::Relaxed);
        return answer(cache, &entry, if_none_match.as_ref());
    }
    let gate = cache.keeps().then(|| {
        cache
            .gates
            .get_with(key.clone(), || Arc::new(tokio::sync::Mutex::new(())))
    });
    let _turn = match &gate {
        Some(gate) => Some(gate.lock().await),
        None => None,
    };
    // Computed by the request ahead of this one while it waited.
    if let Some(entry) = cache.fresh(&key) {
        cache.hits.fetch_add(1, Ordering::Relaxed);
        return answer(cache, &entry, if_none_match.as_ref());
    }
    cache.misses.fetch_add(1, Ordering::Relaxed);
    let generation = cache.generation.load(Ordering::Acquire);
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    // Only bodies already whole in memory (their exact size is known) are kept; a
    // streamed or very large one is passed on untouched.
    let size = http_body::Body::size_hint(&body).exact();
    let Some(size) = size.filter(|_| json) else {
        return Response::from_parts(parts, body);
    };
    if size > MAX_ENTRY_BYTES as u64 {
        return Response::from_parts(parts, body);
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_ENTRY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // A strong validator needs no resistance to forgery (whoever could choose the bytes
    // could serve them), only to accidental collisions: 128 bits of xxh3 give that at a
    // small fraction of SHA-256's cost on a 60 KB page.
    let etag = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&body));
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    let entry = Entry {
        headers,
        body,
        etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        stored_at: Instant::now(),
    };
    let served = answer(cache, &entry, if_none_match.as_ref());
    if cache.keeps() && cache.generation.load(Ordering::Acquire) == generation {
        cache.entries.insert(key, Arc::new(entry));
    }
    served
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::sync::atomic::AtomicUsize;

    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    struct Fixture {
        app: Router,
        calls: Arc<AtomicUsize>,
        cache: Arc<ResponseCache>,
    }

    fn fixture(ttl: Duration) -> Fixture {
        Fixture::with(ResponseCache::new(ttl, 1024 * 1024))
    }

    impl Fixture {
        /// `/v1/prices` answers JSON naming how many times it ran; `/v1/ohlcv/{symbol}` fails.
        fn with(cache: ResponseCache) -> Fixture {
            let calls = Arc::new(AtomicUsize::new(0));
            let cache = Arc::new(cache);
            let counter = Arc::clone(&calls);
            let prices = move || {
                let counter = Arc::clone(&counter);
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    axum::Json(serde_json::json!({"data": n}))
                }
            };
            let app = Router::new()
                .route("/v1/prices", get(prices))
                .route(
                    "/v1/keys/self",
                    get(|| async { axum::Json(serde_json::json!({})) }),
                )
                .route(
                    "/v1/ohlcv/{symbol}",
                    get(|| async { StatusCode::NOT_FOUND }),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&cache),
                    super::cache,
                ));
            Fixture { app, calls, cache }
        }
    }

    async fn send(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_fresh_entry_is_served_with_honest_freshness_and_revalidated() {
        let f = fixture(Duration::from_secs(60));
        let first = send(&f.app, "/v1/prices?symbols=BTC&x=1", &[]).await;
        assert_eq!(first.status(), 200);
        let etag = first.headers()[header::ETAG].clone();
        assert!(
            etag.to_str().unwrap().starts_with('"'),
            "a strong validator"
        );
        // Whole seconds left, rounded down: never more freshness than there is.
        let fresh_for = first.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            ["private, max-age=59", "private, max-age=60"].contains(&fresh_for.as_str()),
            "{fresh_for}"
        );
        assert_eq!(text(first).await, r#"{"data":1}"#);
        // The same query in another order is the same entry.
        let again = send(&f.app, "/v1/prices?x=1&symbols=BTC", &[]).await;
        assert_eq!(again.headers()[header::ETAG], etag);
        assert!(again.headers().contains_key(header::AGE));
        assert_eq!(text(again).await, r#"{"data":1}"#);
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);

        let revalidated = send(
            &f.app,
            "/v1/prices?symbols=BTC&x=1",
            &[("if-none-match", etag.to_str().unwrap())],
        )
        .await;
        assert_eq!(revalidated.status(), 304);
        assert_eq!(revalidated.headers()[header::ETAG], etag);
        assert!(text(revalidated).await.is_empty());
        let other = send(
            &f.app,
            "/v1/prices?symbols=BTC&x=1",
            &[("if-none-match", "\"nope\"")],
        )
        .await;
        assert_eq!(other.status(), 200);
        assert_eq!(f.cache.hits.load(Ordering::Relaxed), 3);
        assert_eq!(f.cache.not_modified.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_are_computed_once() {
        let f = fixture(Duration::from_secs(60));
        let answers =
            futures::future::join_all((0..8).map(|_| send(&f.app, "/v1/prices?symbols=ETH", &[])))
                .await;
        assert!(answers.iter().all(|a| a.status() == 200));
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        assert_eq!(f.cache.misses.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn by_default_nothing_is_kept_but_validators_still_save_transfers() {
        let f = Fixture::with(ResponseCache::default());
        let first = send(&f.app, "/v1/prices", &[]).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(first.headers()[header::CACHE_CONTROL], "private, no-cache");
        let second = send(&f.app, "/v1/prices", &[("if-none-match", &etag)]).await;
        // Recomputed (the counter moved, so the body and its tag changed): no 304.
        assert_eq!(second.status(), 200);
        assert_eq!(text(second).await, r#"{"data":2}"#);
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn entries_expire_and_other_answers_are_not_kept() {
        let f = fixture(Duration::from_millis(100));
        send(&f.app, "/v1/prices", &[]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            text(send(&f.app, "/v1/prices", &[]).await).await,
            r#"{"data":2}"#
        );
        // CSV is streamed, never kept.
        send(&f.app, "/v1/prices", &[("accept", "text/csv")]).await;
        assert_eq!(f.calls.load(Ordering::SeqCst), 3);
        // Errors are not kept, and routes outside the list are left alone.
        for _ in 0..2 {
            let missing = send(&f.app, "/v1/ohlcv/BTC", &[]).await;
            assert_eq!(missing.status(), 404);
            assert!(!missing.headers().contains_key(header::ETAG));
            let own = send(&f.app, "/v1/keys/self", &[]).await;
            assert!(!own.headers().contains_key(header::ETAG));
        }
        assert_eq!(f.cache.misses.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn keys_sort_parameters_by_name_and_keep_repeats_in_order() {
        let key = |uri: &str| cache_key(&Request::get(uri).body(Body::empty()).unwrap());
        assert_eq!(key("/v1/prices"), "/v1/prices?");
        assert_eq!(key("/v1/prices?symbols=BTC"), "/v1/prices?symbols=BTC");
        assert_eq!(key("/v1/x?b=2&a=1"), "/v1/x?a=1&b=2");
        assert_eq!(key("/v1/x?a=1&&b=2&"), "/v1/x?a=1&b=2");
        assert_eq!(key("/v1/x?&b=2&&a=1&"), "/v1/x?a=1&b=2");
        assert_eq!(key("/v1/x?s=2&a=1&s=1"), "/v1/x?a=1&s=2&s=1");
        assert_eq!(key("/v1/x?a=1&s=2&s=1"), "/v1/x?a=1&s=2&s=1");
        assert_eq!(key("/v1/x?b=1&a"), "/v1/x?a&b=1");
    }

    #[test]
    fn preformatted_freshness_reads_as_formatted() {
        let freshness = Freshness::new(Duration::from_secs(3));
        for secs in [0, 1, 3, 4, 1000] {
            assert_eq!(freshness.age(secs), secs.to_string());
            assert_eq!(freshness.max_age(secs), format!("private, max-age={secs}"));
        }
    }
}
