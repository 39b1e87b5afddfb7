//! `spawn_app`: a real marketd on 127.0.0.1:0 over a fresh database.

use std::sync::Arc;
use std::time::Duration;

use marketd::config::{Config, LogFormat};
use marketd::server::{Running, start};
use marketd_domain::{Candle, Interval, LatestPrice};
use marketd_storage::{Asset, ConnectOptions, Store, connect};
use marketd_testkit::{Kind, TestDb};

/// Monday 2024-01-01 00:00 UTC.
pub const MONDAY: i64 = 1_704_067_200_000;
pub const HOUR: i64 = 3_600_000;

/// The pepper every test server uses, so tests need no environment variable.
pub const TEST_PEPPER: &str = "1:test-pepper-test-pepper-test-pepper-0123";

pub struct TestApp {
    pub base: String,
    /// Sends `admin_key` (every scope) with each request.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anon: reqwest::Client,
    pub admin_key: String,
    pub auth: Arc<marketd_api::auth::Auth>,
    pub store: Arc<dyn Store>,
    /// The certificates of an HTTPS app.
    pub tls: Option<Arc<marketd::tls::Certificates>>,
    /// `http://host:port` of the metrics address, when it has one of its own.
    pub metrics_base: Option<String>,
    _db: TestDb,
    running: Option<Running>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            running.handle.await.unwrap().unwrap();
        }
        self.store.close().await;
    }
}

pub fn config(url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        database_url: url.to_owned(),
        demo: false,
        shutdown_timeout: Duration::from_secs(5),
        max_connections: 4,
        log_format: LogFormat::Text,
        trusted_proxies: Default::default(),
        security_webhook: None,
        auth_failures_per_minute: 10,
        key_pepper: Some(marketd_api::auth::Pepper::parse(TEST_PEPPER).unwrap()),
        ingest: Vec::new(),
        prices: Default::default(),
        response_cache: Duration::ZERO,
        http: Default::default(),
        connections: Default::default(),
        tls: None,
        traces: Default::default(),
        symbols: Default::default(),
        symbol_overrides: Vec::new(),
    }
}

/// Issues a key straight through the keyring (no HTTP), returning the full key.
pub async fn issue_key(
    auth: &marketd_api::auth::Auth,
    name: &str,
    scopes: &[marketd_domain::access::Scope],
    configure: impl FnOnce(&mut marketd_api::auth::NewKey),
) -> String {
    issue_with(&auth.keyring, name, scopes, configure).await
}

pub async fn issue_with(
    keyring: &marketd_api::auth::Keyring,
    name: &str,
    scopes: &[marketd_domain::access::Scope],
    configure: impl FnOnce(&mut marketd_api::auth::NewKey),
) -> String {
    let mut spec = marketd_api::auth::NewKey {
        name: name.to_owned(),
        environment: marketd_domain::api_key::KeyEnvironment::Test,
        scopes: scopes.iter().copied().collect(),
        allowed_cidrs: vec![],
        expires_at: None,
        rate_limit_per_minute: 100_000,
    };
    configure(&mut spec);
    keyring
        .issue(&spec, None, marketd_api::state::system_clock())
        .await
        .unwrap()
        .key
}

pub fn bearer_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Starts marketd on a fresh database of `kind`; `None` when that backend is not
/// available on this machine (the skip is announced once).
pub async fn spawn_app(kind: Kind) -> Option<TestApp> {
    let db = TestDb::new(kind).await?;
    spawn_app_on(db, config).await
}

/// Starts marketd on `db` with a configuration `adjust` may change.
pub async fn spawn_app_on(db: TestDb, adjust: impl FnOnce(&str) -> Config) -> Option<TestApp> {
    // Issuing the admin key before start-up also keeps start-up from printing a
    // first-start key.
    let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let pepper = marketd_api::auth::Pepper::parse(TEST_PEPPER).unwrap();
    let keyring = marketd_api::auth::Keyring::new(Arc::clone(&store), pepper);
    let admin_key = issue_with(
        &keyring,
        "test admin",
        &marketd_domain::access::Scope::ALL,
        |_| {},
    )
    .await;
    let running = start(&adjust(&db.url)).await.unwrap();
    let auth = Arc::clone(&running.auth);
    let scheme = if running.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Some(TestApp {
        tls: running.tls.clone(),
        metrics_base: running.metrics_addr.map(|at| format!("http://{at}")),
        base: format!("{scheme}://{}", running.addr),
        client: bearer_client(&admin_key),
        anon: reqwest::Client::new(),
        admin_key,
        auth,
        store,
        _db: db,
        running: Some(running),
    })
}

/// Hour `i` of a synthetic series: open = 100 + i, close = open + 0.5.
pub fn hourly(i: i64) -> Candle {
    let open = 100.0 + i as f64;
    Candle {
        open_time: MONDAY + i * HOUR,
        open,
        high: open + 1.0,
        low: open - 1.0,
        close: open + 0.5,
        volume: 2.0,
    }
}

/// BTC with `n` hourly candles from MONDAY, and a latest price.
pub async fn seed_btc(store: &dyn Store, n: i64) {
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
    let candles: Vec<Candle> = (0..n).map(hourly).collect();
    store
        .upsert_candles("BTC", Interval::H1, "test", &candles)
        .await
        .unwrap();
    store
        .upsert_latest_price(&LatestPrice {
            symbol: "BTC".into(),
            price: 64_000.5,
            open_24h: 63_000.0,
            high_24h: 65_000.0,
            low_24h: 62_000.0,
            volume_24h: 1_234.5,
            as_of: MONDAY,
            source: "test".into(),
        })
        .await
        .unwrap();
}

/// Runs a test body against both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = $crate::helpers::spawn_app(marketd_testkit::Kind::Sqlite).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = $crate::helpers::spawn_app(marketd_testkit::Kind::Postgres).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            })*
        }
    };
}
pub(crate) use both_backends;

/// The address of a running app, for raw TCP clients.
pub fn socket_addr(app: &TestApp) -> std::net::SocketAddr {
    let (_, addr) = app.base.split_once("://").unwrap();
    addr.parse().unwrap()
}

/// Reads until the server closes the connection, or `None` if it is still open after
/// `bound`. A reset counts as closed.
pub async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    bound: Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    match tokio::time::timeout(bound, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(received),
        Err(_) => None,
    }
}

/// The status code and body of a raw HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A certificate authority made for one test, named `common_name`.
pub fn test_ca(common_name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}
