//! Several replicas on one Postgres: exactly one ingests, and when it dies another takes
//! over without losing or duplicating a candle.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use marketd_domain::{Candle, Interval};
use marketd_storage::{ConnectOptions, Store, connect};
use marketd_testkit::{Kind, TestDb};

use crate::cli::{BIN, fake_binance_of};

const MINUTE: i64 = 60_000;
/// Far beyond the documented takeover bound, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

fn minute(open_time: i64, close: f64) -> Candle {
    Candle {
        open_time,
        open: 100.0,
        high: 200.0,
        low: 50.0,
        close,
        volume: 1.0,
    }
}

fn replica(config: &Path, db: &TestDb, log: &Path) -> Child {
    Command::new(BIN)
        .arg("ingest")
        .arg("--config")
        .arg(config)
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn logged(log: &Path, message: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| text.contains(message))
}

async fn wait_for(what: &str, logs: &[&Path], mut done: impl AsyncFnMut() -> bool) {
    let began = Instant::now();
    while !done().await {
        if began.elapsed() > DEADLINE {
            let logs: Vec<String> = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!("{what} never happened; logs:\n{}", logs.join("\n---\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stored(store: &dyn Store) -> Vec<Candle> {
    store
        .candles("BTC", Interval::M1, i64::MIN, i64::MAX, u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|bar| bar.candle)
        .collect()
}

#[tokio::test]
async fn one_replica_ingests_and_another_takes_over_when_it_dies() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let open_bucket = now / MINUTE * MINUTE;
    let upstream: Vec<Candle> = (2..=40)
        .rev()
        .map(|i| minute(open_bucket - i * MINUTE, 100.0 + i as f64))
        .collect();
    let shared = Arc::new(Mutex::new(upstream.clone()));
    let url = fake_binance_of(Arc::clone(&shared), MINUTE).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(
        &config,
        format!(
            "[[ingest]]\nsource = \"binance\"\nsymbols = [\"BTC\"]\nintervals = [\"1m\"]\ndepth = \"2h\"\npoll_secs = 1\nbase_url = \"{url}\"\n"
        ),
    )
    .unwrap();
    // Migrated before the replicas start, so they never race to create the tables.
    let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();

    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let logs = [log_a.as_path(), log_b.as_path()];
    let mut a = replica(&config, &db, &log_a);
    wait_for("replica A leading", &logs, async || {
        logged(&log_a, "leading ingest")
    })
    .await;
    let mut b = replica(&config, &db, &log_b);
    wait_for("replica B standing by", &logs, async || {
        logged(&log_b, "standing by")
    })
    .await;
    wait_for("the upstream stored", &logs, async || {
        stored(store.as_ref()).await == upstream
    })
    .await;
    assert!(
        !logged(&log_b, "leading ingest"),
        "two replicas led at once"
    );

    // The leader dies without a word; the upstream moves on meanwhile.
    a.kill().unwrap();
    a.wait().unwrap();
    let mut expected = upstream.clone();
    expected.push(minute(open_bucket - MINUTE, 99.5));
    expected.push(minute(open_bucket, 98.25));
    *shared.lock().unwrap() = expected.clone();
    let killed = Instant::now();
    wait_for("replica B taking over", &logs, async || {
        logged(&log_b, "leading ingest")
    })
    .await;
    let takeover = killed.elapsed();
    wait_for("the new candles stored", &logs, async || {
        stored(store.as_ref()).await == expected
    })
    .await;
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );

    b.kill().unwrap();
    b.wait().unwrap();
    store.close().await;
}

/// One `marketd serve` ingesting from a fake Binance reports it in `/metrics` and
/// `/readyz`.
#[tokio::test]
async fn ingest_shows_in_metrics_and_readiness() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let open_bucket = now / MINUTE * MINUTE;
    let upstream: Vec<Candle> = (1..=20)
        .rev()
        .map(|i| minute(open_bucket - i * MINUTE, 100.0 + i as f64))
        .collect();
    let url = fake_binance_of(Arc::new(Mutex::new(upstream.clone())), MINUTE).await;
    let app = crate::helpers::spawn_app_on(TestDb::sqlite(), |db_url| {
        let mut config = crate::helpers::config(db_url);
        config.ingest = vec![marketd::config::IngestConfig {
            source: marketd::backfill::SourceName::Binance,
            symbols: vec!["BTC".parse().unwrap()],
            intervals: vec![Interval::M1],
            depth: Duration::from_secs(3_600),
            poll_every: Duration::from_secs(1),
            base_url: Some(url.clone()),
        }];
        config
    })
    .await
    .unwrap();
    wait_for("the upstream stored", &[], async || {
        stored(app.store.as_ref()).await == upstream
    })
    .await;

    let scrape = app.get("/metrics").await.text().await.unwrap();
    let ok = scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"marketd_ingest_requests_total{source="binance",instance="0",outcome="ok"} "#,
            )
        })
        .and_then(|v| v.parse::<u64>().ok());
    assert!(ok.is_some_and(|n| n >= 1), "{scrape}");
    assert!(scrape.contains(r#"marketd_ingest_circuit_open{source="binance",instance="0"} 0"#));
    let lag = scrape
        .lines()
        .find_map(|l| l.strip_prefix(r#"marketd_ingest_lag_seconds{symbol="BTC",interval="1m"} "#))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("ingest lag is exported");
    // The newest closed minute closed at the latest a minute ago (plus the test's time).
    assert!((0.0..200.0).contains(&lag), "{lag}");

    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["sources"][0]["name"], "binance");
    assert_eq!(ready["sources"][0]["circuit"], "closed");
    assert!(ready["sources"][0]["requests_ok"].as_u64().unwrap() >= 1);
    app.stop().await;
}
