//! HTTPS: negotiation, HSTS, the handshake deadline and certificate reloads, over real
//! sockets with certificates made for each test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use marketd::tls::TlsFiles;
use marketd_testkit::TestDb;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, config, read_until_closed, socket_addr, spawn_app_on, test_ca};

/// Far above the configured deadline: the tests check that connections close, not how fast.
const BOUND: Duration = Duration::from_secs(20);

const HSTS: &str = "max-age=63072000; includeSubDomains";

/// A test certificate authority; clients trust it and nothing else.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        Self {
            issuer: test_ca("marketd test CA"),
        }
    }

    fn reqwest_root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).unwrap()
    }

    /// A server certificate for 127.0.0.1 and localhost, written as PEM files named
    /// after `name` in `dir`; returns its DER, which is what a client sees.
    fn issue(&self, dir: &Path, name: &str) -> (TlsFiles, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        (files, cert.der().clone())
    }
}

/// Puts `from`'s certificate and key where `to`'s were, as a renewal would.
fn replace(from: &TlsFiles, to: &TlsFiles) {
    std::fs::copy(&from.cert, &to.cert).unwrap();
    std::fs::copy(&from.key, &to.key).unwrap();
}

async fn https_app(files: &TlsFiles, header_read_timeout: Duration) -> TestApp {
    spawn_app_on(TestDb::sqlite(), |url| {
        let mut c = config(url);
        c.tls = Some(files.clone());
        c.connections.header_read_timeout = header_read_timeout;
        c
    })
    .await
    .unwrap()
}

fn client(ca: &Ca) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.reqwest_root())
        .https_only(true)
}

/// The certificate the server presented on the connection `response` came over.
fn served_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_and_every_response_carries_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (files, _) = ca.issue(dir.path(), "marketd");
    let app = https_app(&files, Duration::from_secs(10)).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);

    let h2 = client(&ca).build().unwrap();
    for (path, status) in [
        ("/healthz", 200),
        ("/v1/prices?symbols=BTC", 401),
        ("/nowhere", 404),
    ] {
        let response = h2.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{path}");
        assert_eq!(
            response.headers()["strict-transport-security"],
            HSTS,
            "{path}"
        );
    }

    let h1 = client(&ca).http1_only().build().unwrap();
    let response = h1.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.headers()["strict-transport-security"], HSTS);

    // A client that does not trust the issuer gets no response at all.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting.get(app.url("/healthz")).send().await.is_err());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_the_default_and_carries_no_hsts() {
    let app = spawn_app_on(TestDb::sqlite(), config).await.unwrap();
    assert!(app.base.starts_with("http://"), "{}", app.base);
    assert!(app.tls.is_none());
    let response = app.anon.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response.headers().contains_key("strict-transport-security"),
        "{:?}",
        response.headers()
    );
    // The other security headers are there, so this is the layer that would add HSTS.
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    app.stop().await;
}

/// A TLS 1.1 ClientHello with two cipher suites TLS 1.1 clients offer and, of the
/// extensions, only the signature algorithms rustls insists on: no `supported_versions`
/// that could name a later version.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version: TLS 1.1
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    body.extend([0x01, 0x00]); // null compression only
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pkcs1_sha256
    body.extend([
        0x00, 0x0a, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01,
    ]);
    let mut handshake = vec![0x01, 0x00, 0x00, u8::try_from(body.len()).unwrap()];
    handshake.extend(body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        0x00,
        u8::try_from(handshake.len()).unwrap(),
    ];
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_are_served_and_1_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (files, _) = ca.issue(dir.path(), "marketd");
    let app = https_app(&files, Duration::from_secs(10)).await;

    for (min, max) in [
        (
            reqwest::tls::Version::TLS_1_2,
            reqwest::tls::Version::TLS_1_2,
        ),
        (
            reqwest::tls::Version::TLS_1_3,
            reqwest::tls::Version::TLS_1_3,
        ),
    ] {
        let pinned = client(&ca)
            .min_tls_version(min)
            .max_tls_version(max)
            .build()
            .unwrap();
        let response = pinned.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{max:?}");
    }

    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream.write_all(&tls11_client_hello()).await.unwrap();
    let answer = read_until_closed(&mut stream, BOUND)
        .await
        .expect("the connection stayed open");
    // One alert record: fatal (2), protocol_version (70).
    assert_eq!(answer.first(), Some(&0x15), "not an alert: {answer:?}");
    assert_eq!(answer.get(5..7), Some(&[2, 70][..]), "{answer:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_closed_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (files, _) = ca.issue(dir.path(), "marketd");
    let app = https_app(&files, Duration::from_secs(1)).await;

    let mut silent = TcpStream::connect(socket_addr(&app)).await.unwrap();
    assert_eq!(
        read_until_closed(&mut silent, BOUND).await,
        Some(Vec::new()),
        "a client that never started the handshake"
    );

    let hello = tls11_client_hello();
    let mut partial = TcpStream::connect(socket_addr(&app)).await.unwrap();
    partial.write_all(&hello[..hello.len() / 2]).await.unwrap();
    assert_eq!(
        read_until_closed(&mut partial, BOUND).await,
        Some(Vec::new()),
        "a client that stopped half-way through its hello"
    );

    // Past the handshake, a client that sends no request (HTTP/1) or no preface
    // (HTTP/2) is closed too.
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.issuer.der().clone()).unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(socket_addr(&app)).await.unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let mut received = Vec::new();
        let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut received)).await;
        assert!(
            read.is_ok(),
            "{}: still open after the handshake",
            String::from_utf8_lossy(alpn)
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_to_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (live, first) = ca.issue(dir.path(), "marketd one");
    let (renewed, second) = ca.issue(dir.path(), "marketd two");
    let app = https_app(&live, Duration::from_secs(10)).await;

    // HTTP/1.1 with one pooled connection, so "the old connection" is unambiguous.
    let old = client(&ca)
        .http1_only()
        .tls_info(true)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let response = old.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(served_certificate(&response), first.to_vec());
    response.bytes().await.unwrap();

    replace(&renewed, &live);
    app.tls.as_ref().unwrap().reload().unwrap();

    let fresh = client(&ca).tls_info(true).build().unwrap();
    let response = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(served_certificate(&response), second.to_vec());

    let response = old.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the connection from before the reload"
    );
    assert_eq!(
        served_certificate(&response),
        first.to_vec(),
        "a new connection was opened instead of reusing the old one"
    );

    // A broken pair is refused and the working one stays.
    std::fs::write(&live.key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    assert!(app.tls.as_ref().unwrap().reload().is_err());
    let response = client(&ca)
        .tls_info(true)
        .build()
        .unwrap()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(served_certificate(&response), second.to_vec());
    app.stop().await;
}

/// A `marketd serve` process, killed if the test ends without stopping it.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_https(db: &TestDb, files: &TlsFiles) -> Server {
    let mut child = Command::new(crate::cli::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .env("MARKETD_DATABASE_URL", &db.url)
        .env("MARKETD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let docs = loop {
        let line = lines
            .next()
            .expect("marketd exited before listening")
            .unwrap();
        if line.contains("marketd listening") {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            break log["docs"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: docs.trim_end_matches("/docs").to_owned(),
    }
}

async fn certificate_on_a_new_connection(ca: &Ca, base: &str) -> Vec<u8> {
    let response = client(ca)
        .tls_info(true)
        .build()
        .unwrap()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    served_certificate(&response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (live, first) = ca.issue(dir.path(), "marketd one");
    let (renewed, second) = ca.issue(dir.path(), "marketd two");
    let db = TestDb::sqlite();
    let mut server = tokio::task::spawn_blocking({
        let live = live.clone();
        move || {
            let server = serve_https(&db, &live);
            (server, db)
        }
    })
    .await
    .unwrap();
    let base = server.0.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    assert_eq!(
        certificate_on_a_new_connection(&ca, &base).await,
        first.to_vec()
    );

    replace(&renewed, &live);
    let sent = Command::new("kill")
        .args(["-HUP", &server.0.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // The signal is handled asynchronously: poll until the new certificate shows.
    let deadline = tokio::time::Instant::now() + BOUND;
    while certificate_on_a_new_connection(&ca, &base).await != second.to_vec() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still serving the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.0.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
}

#[test]
fn a_half_or_unreadable_tls_setting_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = Ca::new().issue(dir.path(), "marketd");
    let db = TestDb::sqlite();
    let run = |tls: &[&std::ffi::OsStr]| {
        let out = Command::new(crate::cli::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
            .args(tls)
            .env("MARKETD_DATABASE_URL", &db.url)
            .env("MARKETD_LOG_FORMAT", "json")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let stderr = run(&["--tls-cert".as_ref(), files.cert.as_os_str()]);
    assert!(stderr.contains("tls_cert and tls_key"), "{stderr}");

    let absent = dir.path().join("absent.key");
    let stderr = run(&[
        "--tls-cert".as_ref(),
        files.cert.as_os_str(),
        "--tls-key".as_ref(),
        absent.as_os_str(),
    ]);
    assert!(stderr.contains("tls_key"), "{stderr}");
    assert!(stderr.contains("absent.key"), "{stderr}");

    // The key where the certificate belongs: refused without printing the key.
    let key = std::fs::read_to_string(&files.key).unwrap();
    let body = key.lines().nth(1).unwrap();
    let stderr = run(&[
        "--tls-cert".as_ref(),
        files.key.as_os_str(),
        "--tls-key".as_ref(),
        files.key.as_os_str(),
    ]);
    assert!(stderr.contains("tls_cert"), "{stderr}");
    assert!(!stderr.contains(body), "{stderr}");
}
