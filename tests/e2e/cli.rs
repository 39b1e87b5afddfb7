//! The real binary: `import`, `backfill`, `ingest`, `config check`, `openapi`, streaming memory and
//! graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use marketd_domain::{Candle, Interval};
use marketd_storage::{ConnectOptions, Store, connect};
use marketd_testkit::TestDb;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_marketd");
const MINUTE: i64 = 60_000;
/// 2024-01-01T00:00:00Z.
const ORIGIN: i64 = 1_704_067_200_000;

fn marketd(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_LOG_FORMAT", "json")
        .output()
        .unwrap()
}

async fn store(db: &TestDb) -> std::sync::Arc<dyn Store> {
    let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn count(db: &TestDb, symbol: &str) -> usize {
    let store = store(db).await;
    let n = store
        .candles(symbol, Interval::M1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap()
        .len();
    store.close().await;
    n
}

fn write_csv(dir: &std::path::Path, name: &str, rows: usize, tail: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "open_time,open,high,low,close,volume").unwrap();
    for i in 0..rows {
        let price = 100.0 + (i % 50) as f64;
        writeln!(
            file,
            "{},{price},{},{},{},{}",
            ORIGIN + i as i64 * MINUTE,
            price + 1.0,
            price - 1.0,
            price + 0.5,
            i % 7
        )
        .unwrap();
    }
    write!(file, "{tail}").unwrap();
    path
}

#[tokio::test]
async fn import_is_checked_atomic_and_idempotent() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let good = write_csv(dir.path(), "good.csv", 1_000, "");

    let out = marketd(
        &db,
        &[
            "import",
            good.to_str().unwrap(),
            "--symbol",
            "btc",
            "--interval",
            "1m",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 1000 1m candles for BTC"));
    assert_eq!(count(&db, "BTC").await, 1_000);
    // Importing the same file again changes nothing.
    let again = marketd(
        &db,
        &[
            "import",
            good.to_str().unwrap(),
            "--symbol",
            "BTC",
            "--interval",
            "1m",
        ],
    );
    assert!(again.status.success());
    assert_eq!(count(&db, "BTC").await, 1_000);

    // Bad rows are reported with line numbers, and nothing at all is written.
    let bad = write_csv(
        dir.path(),
        "bad.csv",
        10,
        "2024-01-02T00:00:00Z,10,9,11,10,1\nnot-a-time,1,1,1,1,1\n",
    );
    let out = marketd(
        &db,
        &[
            "import",
            bad.to_str().unwrap(),
            "--symbol",
            "ETH",
            "--interval",
            "1m",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv:12: high is below low"), "{stderr}");
    assert!(stderr.contains("bad.csv:13: open_time"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(count(&db, "ETH").await, 0);
    let s = store(&db).await;
    assert!(
        s.asset("ETH").await.unwrap().is_none(),
        "a rejected import registers nothing"
    );
    s.close().await;

    // A file cut off mid-row (an interrupted download) is refused the same way.
    let truncated = write_csv(dir.path(), "cut.csv", 10, "2024-01-02T00:00:00Z,10,1");
    let out = marketd(
        &db,
        &[
            "import",
            truncated.to_str().unwrap(),
            "--symbol",
            "SOL",
            "--interval",
            "1m",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(count(&db, "SOL").await, 0);
    // ...unless the caller asks for the good rows.
    let out = marketd(
        &db,
        &[
            "import",
            truncated.to_str().unwrap(),
            "--symbol",
            "SOL",
            "--interval",
            "1m",
            "--skip-bad-rows",
        ],
    );
    assert!(out.status.success());
    assert_eq!(count(&db, "SOL").await, 10);
}

#[tokio::test]
async fn a_killed_import_leaves_all_or_nothing() {
    let db = TestDb::sqlite();
    // Create the schema first so the count below never races the migration.
    store(&db).await.close().await;
    let dir = tempfile::tempdir().unwrap();
    let big = write_csv(dir.path(), "big.csv", 300_000, "");
    for delay_ms in [300, 1_500] {
        let mut child = Command::new(BIN)
            .args([
                "import",
                big.to_str().unwrap(),
                "--symbol",
                "BTC",
                "--interval",
                "1m",
            ])
            .env("MARKETD_DATABASE_URL", &db.url)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let n = count(&db, "BTC").await;
        assert!(n == 0 || n == 300_000, "a killed import left {n} rows");
    }
}

#[test]
fn config_check_masks_secrets_and_names_bad_settings() {
    let out = Command::new(BIN)
        .args([
            "config",
            "check",
            "--database-url",
            "postgres://app:hunter2@db.internal:5432/marketd",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("postgres://app:****@db.internal:5432/marketd"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"));
    assert!(printed.contains("demo = false"));

    let out = Command::new(BIN)
        .args(["config", "check", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen:"));
}

#[test]
fn openapi_command_prints_the_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/ohlcv/{symbol}"]["get"].is_object());
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Issues a key with `marketd keys create`; the key is the whole of standard output.
pub(crate) fn create_key(db: &TestDb, scopes: &str) -> String {
    let out = marketd(
        db,
        &["keys", "create", "--name", "cli test", "--scopes", scopes],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim_end().to_owned();
    assert!(key.starts_with("mkd_live_"), "stdout holds the key alone");
    // Standard error holds log lines, then the key's details as pretty JSON.
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let details_start = stderr.find("{\n").unwrap();
    let details: serde_json::Value = serde_json::from_str(&stderr[details_start..]).unwrap();
    assert_eq!(
        details["scopes"],
        serde_json::json!(scopes.split(',').collect::<Vec<_>>())
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&key),
        "details never repeat the key"
    );
    key
}

/// A server process, killed if the test ends without stopping it.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &TestDb) -> Server {
    serve_with_env(&db.url, &[])
}

/// [`serve`] with extra environment variables.
pub(crate) fn serve_with_env(db_url: &str, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
            "--shutdown-timeout-secs",
            "20",
            // Each pooled SQLite connection keeps its own page cache (2 MB); a small pool
            // keeps that constant well below the memory bound the streaming test checks.
            "--max-connections",
            "2",
        ])
        .env("MARKETD_DATABASE_URL", db_url)
        .env("MARKETD_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

/// The address from the JSON log's "marketd listening" line; the rest of the log is
/// drained so the server never blocks on a full pipe.
fn listening_addr(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("marketd exited before listening")
            .unwrap();
        if line.contains("marketd listening") {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}

/// Streams 400,000 candles (~45 MB of CSV) and checks the server's peak memory grows by
/// far less than the payload; then sends SIGTERM mid-stream and checks the stream still
/// completes and the process exits cleanly.
#[test]
fn streams_in_bounded_memory_and_drains_on_sigterm() {
    const ROWS: i64 = 400_000;
    let db = TestDb::sqlite();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed_minutes(&db, ROWS));
    drop(runtime);

    let key = create_key(&db, "prices:read");
    let mut server = serve(&db);
    let url = format!(
        "{}/v1/ohlcv/BTC?interval=1m&start=2024-01-01T00:00:00Z&end=2025-01-01T00:00:00Z",
        server.base
    );
    // The signal engine's first pass over the new series is work of its own, not the
    // stream's: let it finish first, so the peak measured below is the stream's.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(signals_caught_up(&db));
    drop(runtime);
    let before = peak_rss_kib(server.child.id());
    let mut text = String::new();
    get_csv(&url, &key).read_to_string(&mut text).unwrap();
    let payload_kib = text.len() as u64 / 1024;
    assert_eq!(text.lines().count() as i64, ROWS + 1);
    let growth = peak_rss_kib(server.child.id()).saturating_sub(before);
    assert!(
        growth < payload_kib / 2,
        "peak RSS grew {growth} KiB for a {payload_kib} KiB stream"
    );

    // SIGTERM while a stream is in flight: it completes, then the process exits 0.
    let mut reader = get_csv(&url, &key);
    let mut first = [0u8; 4096];
    reader.read_exact(&mut first).unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    let lines = first
        .iter()
        .chain(rest.iter())
        .filter(|b| **b == b'\n')
        .count() as i64;
    assert_eq!(lines, ROWS + 1, "the in-flight stream was cut short");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "marketd did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
}

/// Waits until every stored series' signals include its newest closed candle.
async fn signals_caught_up(db: &TestDb) {
    let store = store(db).await;
    let began = Instant::now();
    loop {
        let progress = store.signal_progress().await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        if progress
            .iter()
            .all(|p| marketd_api::signal_engine::is_current(p, now))
        {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "signals never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;
}

async fn seed_minutes(db: &TestDb, rows: i64) {
    let s = store(db).await;
    s.upsert_asset(&marketd_storage::Asset {
        symbol: "BTC".into(),
        name: "Bitcoin".into(),
        quote: "USD".into(),
        sources: vec![],
        created_at: 0,
    })
    .await
    .unwrap();
    let candles: Vec<Candle> = (0..rows)
        .map(|i| Candle {
            open_time: ORIGIN + i * MINUTE,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 1.0,
        })
        .collect();
    s.upsert_candles("BTC", Interval::M1, "test", &candles)
        .await
        .unwrap();
    s.close().await;
}

/// A blocking GET with `Accept: text/csv` over a plain TCP socket, returning the body
/// reader (chunked transfer decoded).
fn get_csv(url: &str, key: &str) -> Box<dyn Read + Send> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime
        .block_on(
            reqwest::Client::new()
                .get(url)
                .header("accept", "text/csv")
                .header("x-api-key", key)
                .send(),
        )
        .unwrap();
    assert_eq!(response.status(), 200);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        runtime.block_on(async move {
            use futures::StreamExt;
            let mut stream = response.bytes_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                if tx.send(chunk.to_vec()).is_err() {
                    break;
                }
            }
        });
    });
    Box::new(ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    })
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `marketd keys` manages keys without a running server; only `create` and `rotate` ever
/// print a key, alone on standard output.
#[test]
fn keys_commands_manage_the_lifecycle() {
    let db = TestDb::sqlite();
    let key = create_key(&db, "prices:read,signals:read");
    let id = &key[9..21];

    let list = marketd(&db, &["keys", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains(id) && listed.contains("active") && !listed.contains(&key));

    let show = marketd(&db, &["keys", "show", id]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        shown["scopes"],
        serde_json::json!(["prices:read", "signals:read"])
    );

    let rotate = marketd(&db, &["keys", "rotate", id, "--grace", "0s"]);
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let successor = String::from_utf8(rotate.stdout).unwrap().trim().to_owned();
    assert!(successor.starts_with("mkd_live_") && successor != key);
    let bad_grace = marketd(&db, &["keys", "rotate", &successor[9..21], "--grace", "8d"]);
    assert!(!bad_grace.status.success());

    let revoke = marketd(&db, &["keys", "revoke", &successor[9..21]]);
    assert!(revoke.status.success());
    assert!(revoke.stdout.is_empty(), "revoking prints no key");
    let shown: serde_json::Value =
        serde_json::from_slice(&marketd(&db, &["keys", "show", &successor[9..21]]).stdout).unwrap();
    assert_eq!(shown["status"], "revoked");

    let bad = marketd(
        &db,
        &["keys", "create", "--name", "x", "--scopes", "prices:write"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("prices:write"));
    // The generated pepper is readable by its owner only.
    let pepper = format!("{}.pepper", db.url.strip_prefix("sqlite://").unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pepper).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Binance's klines endpoint over one series, paged as Binance pages: open times in
/// `[startTime, endTime]`, at most `limit` rows, whatever the symbol asked for.
async fn fake_binance(candles: Vec<Candle>, step: i64) -> String {
    fake_binance_of(std::sync::Arc::new(std::sync::Mutex::new(candles)), step).await
}

/// [`fake_binance`] over a series the test may change while it runs.
pub(crate) async fn fake_binance_of(
    candles: std::sync::Arc<std::sync::Mutex<Vec<Candle>>>,
    step: i64,
) -> String {
    use std::collections::HashMap;

    use axum::extract::Query;

    let klines = move |Query(q): Query<HashMap<String, String>>| {
        let candles = candles.lock().unwrap().clone();
        async move {
            let param = |name: &str, default: i64| {
                q.get(name).map_or(default, |v| v.parse::<i64>().unwrap())
            };
            let (start, end) = (param("startTime", 0), param("endTime", i64::MAX));
            let limit = usize::try_from(param("limit", 500)).unwrap();
            let rows: Vec<serde_json::Value> = candles
                .iter()
                .filter(|c| (start..=end).contains(&c.open_time))
                .take(limit)
                .map(|c| {
                    serde_json::json!([
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
                })
                .collect();
            axum::Json(rows)
        }
    };
    let app = axum::Router::new().route("/api/v3/klines", axum::routing::get(klines));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn backfill_fetches_every_page_and_fails_loudly_per_symbol() {
    const HOUR: i64 = 60 * MINUTE;
    let db = TestDb::sqlite();
    let upstream: Vec<Candle> = (0..2_500)
        .map(|i| {
            let open = 100.0 + (i % 40) as f64;
            Candle {
                open_time: ORIGIN + i * HOUR,
                open,
                high: open + 2.0,
                low: open - 1.0,
                close: open + 0.5,
                volume: (i % 7) as f64,
            }
        })
        .collect();
    let url = fake_binance(upstream.clone(), HOUR).await;
    let until = (ORIGIN + 2_500 * HOUR).to_string();
    let run = |symbols: &'static str| {
        let (db_url, url, until) = (db.url.clone(), url.clone(), until.clone());
        // The fake answers on this runtime, so the child is waited for off it.
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["backfill", "--source", "binance", "--base-url", &url])
                .args(["--symbols", symbols, "--interval", "1h"])
                .args(["--since", "2024-01-01", "--until", &until])
                .env("MARKETD_DATABASE_URL", db_url)
                .env("MARKETD_LOG_FORMAT", "json")
                .output()
                .unwrap()
        })
    };

    let out = run("btc,eth").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for symbol in ["BTC", "ETH"] {
        assert!(
            stderr.contains(&format!(
                "{symbol} 1h from binance: 2500 candles written in 3 pages, 0 rows rejected, 0 missing buckets"
            )),
            "{stderr}"
        );
    }
    let store = store(&db).await;
    for symbol in ["BTC", "ETH"] {
        let stored: Vec<Candle> = store
            .candles(symbol, Interval::H1, i64::MIN, i64::MAX, u32::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|bar| bar.candle)
            .collect();
        assert_eq!(stored, upstream, "{symbol}");
    }

    // XMR is not listed on Binance: it fails on its own, BTC resumes, and the exit says so.
    let out = run("BTC,XMR").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("BTC 1h from binance: 1 candles written in 1 pages")
            && stderr.contains("resumed at 2024-04-14T03:00:00Z"),
        "{stderr}"
    );
    assert!(stderr.contains("XMR 1h from binance: FAILED"), "{stderr}");
    assert!(stderr.contains("1 of 2 symbols failed"), "{stderr}");
    assert!(store.asset("XMR").await.unwrap().is_none());
    assert_eq!(
        store
            .candles("BTC", Interval::H1, i64::MIN, i64::MAX, u32::MAX)
            .await
            .unwrap()
            .len(),
        2_500
    );

    // PEPE is in no default table; a `[symbols.PEPE]` table in the config file names it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(&config, "[symbols.PEPE]\nbinance = \"PEPEUSDT\"\n").unwrap();
    let (db_url, until) = (db.url.clone(), until.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["backfill", "--source", "binance", "--base-url", &url])
            .args(["--symbols", "PEPE", "--interval", "1h"])
            .args(["--since", "2024-01-01", "--until", &until])
            .arg("--config")
            .arg(&config)
            .env("MARKETD_DATABASE_URL", db_url)
            .env("MARKETD_LOG_FORMAT", "json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("PEPE 1h from binance: 2500 candles written"),
        "{stderr}"
    );
    store.close().await;
}

/// Binance klines (without the hours in `binance_lacks`) and Coinbase BTC-USD hourly
/// candles (without `coinbase_lacks`, and with closes a quarter higher so the source of
/// each stored candle shows) on one address, each paged as the exchange pages.
async fn fake_binance_and_coinbase(
    candles: Vec<Candle>,
    binance_lacks: Vec<i64>,
    coinbase_lacks: Vec<i64>,
) -> String {
    use std::collections::HashMap;

    use axum::extract::Query;

    let binance: Vec<Candle> = candles
        .iter()
        .copied()
        .filter(|c| !binance_lacks.contains(&c.open_time))
        .collect();
    let coinbase: Vec<Candle> = candles
        .iter()
        .filter(|c| !coinbase_lacks.contains(&c.open_time))
        .map(|c| Candle {
            close: c.close + 0.25,
            ..*c
        })
        .collect();
    let klines = move |Query(q): Query<HashMap<String, String>>| {
        let binance = binance.clone();
        async move {
            let param = |name: &str| q[name].parse::<i64>().unwrap();
            let (start, end) = (param("startTime"), param("endTime"));
            let rows: Vec<serde_json::Value> = binance
                .iter()
                .filter(|c| (start..=end).contains(&c.open_time))
                .map(|c| {
                    serde_json::json!([
                        c.open_time,
                        c.open.to_string(),
                        c.high.to_string(),
                        c.low.to_string(),
                        c.close.to_string(),
                        c.volume.to_string(),
                        c.open_time + 60 * MINUTE - 1,
                        "0",
                        10,
                        "0",
                        "0",
                        "0"
                    ])
                })
                .collect();
            axum::Json(rows)
        }
    };
    // Coinbase: `[time, low, high, open, close, volume]`, seconds, newest first, with
    // `start` and `end` both inclusive.
    let products = move |Query(q): Query<HashMap<String, String>>| {
        let coinbase = coinbase.clone();
        async move {
            let time = |name: &str| marketd_domain::parse_timestamp(&q[name]).unwrap();
            let (start, end) = (time("start"), time("end"));
            let rows: Vec<serde_json::Value> = coinbase
                .iter()
                .rev()
                .filter(|c| (start..=end).contains(&c.open_time))
                .map(|c| {
                    serde_json::json!([
                        c.open_time / 1000,
                        c.low,
                        c.high,
                        c.open,
                        c.close,
                        c.volume
                    ])
                })
                .collect();
            axum::Json(rows)
        }
    };
    let app = axum::Router::new()
        .route("/api/v3/klines", axum::routing::get(klines))
        .route("/products/BTC-USD/candles", axum::routing::get(products));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn backfill_asks_fallbacks_for_missing_candles_and_records_the_rest() {
    const HOUR: i64 = 60 * MINUTE;
    let db = TestDb::sqlite();
    let at = |hour: i64| ORIGIN + hour * HOUR;
    let upstream: Vec<Candle> = (0..48)
        .map(|i| {
            let open = 100.0 + i as f64;
            Candle {
                open_time: at(i),
                open,
                high: open + 2.0,
                low: open - 1.0,
                close: open + 0.5,
                volume: 1.0 + (i % 5) as f64,
            }
        })
        .collect();
    // Binance lacks hours 3, 4 and 20; Coinbase has 3 and 20 but not 4.
    let url =
        fake_binance_and_coinbase(upstream.clone(), vec![at(3), at(4), at(20)], vec![at(4)]).await;
    let (db_url, until) = (db.url.clone(), at(48).to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["backfill", "--source", "binance", "--fallback", "coinbase"])
            .args(["--base-url", &url, "--symbols", "BTC", "--interval", "1h"])
            .args(["--since", "2024-01-01", "--until", &until])
            .env("MARKETD_DATABASE_URL", db_url)
            .env("MARKETD_LOG_FORMAT", "json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "BTC 1h from binance: 45 candles written in 1 pages, 0 rows rejected, 3 missing buckets"
        ) && stderr.contains("; 2 missing candles found on coinbase")
            && stderr.contains("; 1 buckets in 1 ranges recorded as gaps: no source has them"),
        "{stderr}"
    );

    let store = store(&db).await;
    let stored: Vec<(i64, f64, String)> = store
        .candles("BTC", Interval::H1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.candle.open_time, b.candle.close, b.source))
        .collect();
    let expected: Vec<(i64, f64, String)> = upstream
        .iter()
        .filter(|c| c.open_time != at(4))
        .map(|c| match c.open_time {
            t if t == at(3) || t == at(20) => (t, c.close + 0.25, "coinbase".to_owned()),
            t => (t, c.close, "binance".to_owned()),
        })
        .collect();
    assert_eq!(stored, expected, "nothing invented for hour 4");
    let gaps = store
        .gaps("BTC", Interval::H1, at(0), at(48))
        .await
        .unwrap();
    let gaps: Vec<(i64, i64, Vec<String>)> = gaps
        .into_iter()
        .map(|g| (g.start, g.end, g.sources))
        .collect();
    assert_eq!(
        gaps,
        [(
            at(4),
            at(5),
            vec!["binance".to_owned(), "coinbase".to_owned()]
        )]
    );
    store.close().await;
}

#[tokio::test]
async fn ingest_follows_the_configured_series_until_sigterm() {
    let db = TestDb::sqlite();
    let open_bucket = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / MINUTE
        * MINUTE;
    let upstream: Vec<Candle> = (1..=30)
        .rev()
        .map(|i| Candle {
            open_time: open_bucket - i * MINUTE,
            open: 100.0,
            high: 140.0,
            low: 99.0,
            close: 100.0 + i as f64,
            volume: 1.0,
        })
        .collect();
    let url = fake_binance(upstream.clone(), MINUTE).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(
        &config,
        format!(
            "[[ingest]]\nsource = \"binance\"\nsymbols = [\"BTC\"]\nintervals = [\"1m\"]\ndepth = \"2h\"\npoll_secs = 1\nbase_url = \"{url}\"\n"
        ),
    )
    .unwrap();

    let log = dir.path().join("marketd.log");
    let nothing = {
        let db_url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .arg("ingest")
                .env("MARKETD_DATABASE_URL", db_url)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to ingest"));

    // Migrated before the child starts, so the two never race to create the tables.
    let store = store(&db).await;
    let mut child = Command::new(BIN)
        .arg("ingest")
        .arg("--config")
        .arg(&config)
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let began = Instant::now();
    loop {
        let stored: Vec<Candle> = store
            .candles("BTC", Interval::M1, i64::MIN, i64::MAX, u32::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|bar| bar.candle)
            .collect();
        if stored == upstream {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "marketd ingest exited with {status}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "ingest stored {} of {} candles; log:\n{}",
            stored.len(),
            upstream.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("marketd ingest did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
}

/// The key printed at first start comes with a request that reaches this server, on
/// whatever port it was given.
#[test]
fn the_first_start_key_comes_with_an_example_for_this_server() {
    let db = TestDb::sqlite();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    let example = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find(|line| line.contains("e.g. curl"))
        .expect("no example request printed");
    let _ = child.kill();
    let _ = child.wait();
    let expected = format!("http://{addr}/v1/prices");
    assert!(
        example.ends_with(&expected),
        "{example:?} is not for {expected}"
    );
    assert!(
        !addr.ends_with(":8080"),
        "the test needs a port other than the default"
    );
}
