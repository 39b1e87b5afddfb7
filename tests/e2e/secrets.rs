//! No plaintext key anywhere: keys are created and used (well and badly, including in a
//! query string) against the real binary, then the database files, a `pg_dump` and every
//! log line are searched for each key. None may appear.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use marketd_testkit::{Kind, TestDb};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_marketd");
const PEPPER: &str = "1:secret-scan-pepper-secret-scan-pepper-01";

fn create_admin(db: &TestDb) -> String {
    let out = Command::new(BIN)
        .args(["keys", "create", "--name", "scan admin", "--scopes"])
        .arg("prices:read,signals:read,keys:admin")
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_KEY_PEPPER", PEPPER)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn exercise(base: &str, admin: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut keys = vec![admin.to_owned()];
    for name in ["one", "two"] {
        let body: Value = client
            .post(format!("{base}/v1/admin/keys"))
            .bearer_auth(admin)
            .json(&json!({"name": name, "scopes": ["prices:read"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(body["data"]["key"].as_str().unwrap().to_owned());
    }
    let rotated: Value = client
        .post(format!("{base}/v1/admin/keys/{}/rotate", &keys[1][9..21]))
        .bearer_auth(admin)
        .json(&json!({"grace_period_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys.push(
        rotated["data"]["new_key"]["key"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    client
        .delete(format!("{base}/v1/admin/keys/{}", &keys[2][9..21]))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    for key in &keys {
        let good = client
            .get(format!("{base}/v1/prices"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_ne!(good.status(), 500);
        client
            .get(format!("{base}/v1/assets"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        let in_query = client
            .get(format!("{base}/v1/prices?api_key={key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(in_query.status(), 400);
        client
            .get(format!("{base}/v1/prices?symbols={key}"))
            .send()
            .await
            .unwrap();
        // A wrong secret under a real id, and a truncated key.
        let mut wrong = key.clone();
        wrong.replace_range(25..26, "Z");
        client
            .get(format!("{base}/v1/prices"))
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap();
        client
            .get(format!("{base}/v1/prices"))
            .bearer_auth(&key[..40])
            .send()
            .await
            .unwrap();
    }
    keys
}

/// Runs the scenario against a real `marketd serve` and returns the keys used and every
/// line it wrote to standard output and standard error.
async fn run_server(db: &TestDb) -> (Vec<String>, String) {
    let admin = create_admin(db);
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_KEY_PEPPER", PEPPER)
        .env("MARKETD_LOG_FORMAT", "json")
        // Everything, including request spans and SQL statements.
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let captured = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&captured);
    let stdout_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
        }
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("marketd exited early").unwrap();
        captured.lock().unwrap().push_str(&line);
        if line.contains("marketd listening") {
            let log: Value = serde_json::from_str(&line).unwrap();
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    let sink = Arc::clone(&captured);
    let stderr_thread = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
        }
    });
    let keys = exercise(&format!("http://{addr}"), &admin).await;
    // SIGTERM flushes usage and the audit log before exit.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "marketd did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stdout_thread.join().unwrap();
    stderr_thread.join().unwrap();
    let logs = captured.lock().unwrap().clone();
    (keys, logs)
}

fn assert_absent(haystack: &[u8], keys: &[String], what: &str) {
    for key in keys {
        for needle in [key.as_str(), &key[22..54]] {
            let found = haystack
                .windows(needle.len())
                .any(|w| w == needle.as_bytes());
            assert!(!found, "a key secret appears in {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_key_in_sqlite_or_logs() {
    let db = TestDb::new(Kind::Sqlite).await.unwrap();
    let (keys, logs) = run_server(&db).await;
    assert_eq!(keys.len(), 4);
    assert!(
        logs.contains("auth") || logs.contains("request"),
        "logs were captured"
    );
    assert_absent(logs.as_bytes(), &keys, "the logs");
    let file = db.url.strip_prefix("sqlite://").unwrap();
    let dir = Path::new(file).parent().unwrap();
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        assert_absent(
            &std::fs::read(&path).unwrap(),
            &keys,
            &path.display().to_string(),
        );
        scanned += 1;
    }
    assert!(scanned >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_key_in_postgres_or_logs() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let (keys, logs) = run_server(&db).await;
    assert_absent(logs.as_bytes(), &keys, "the logs");
    let dump = Command::new("pg_dump").arg(&db.url).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(String::from_utf8_lossy(&dump.stdout).contains("api_keys"));
    assert_absent(&dump.stdout, &keys, "pg_dump");
}
