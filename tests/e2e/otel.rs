//! OpenTelemetry: a real marketd process exporting over OTLP (HTTP with protobuf or JSON
//! bodies, and gRPC, in the clear or over mutual TLS) to a receiver the test runs, with
//! W3C `traceparent` read from requests and sent to upstream exchanges.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use marketd_testkit::TestDb;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::cli::{BIN, Server, create_key, serve_with_env};
use crate::helpers::test_ca;

/// Far beyond what export takes, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// One span as the receiver got it, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        text(&self.span.attributes, key)
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// An OTLP receiver on 127.0.0.1: decodes every export into spans it keeps.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    /// Export requests whose body did not decode.
    bad: Arc<Mutex<usize>>,
    /// The `Content-Type` of every OTLP/HTTP export.
    content_types: Arc<Mutex<Vec<String>>>,
    /// The `x-collector-token` header or gRPC metadata of every export.
    tokens: Arc<Mutex<Vec<String>>>,
    /// The `Content-Encoding` (HTTP) or `grpc-encoding` of every export, empty for none.
    encodings: Arc<Mutex<Vec<String>>>,
    /// Why each TLS handshake a receiver over TLS refused failed.
    refused: Arc<Mutex<Vec<rustls::Error>>>,
}

const TOKEN_HEADER: &str = "x-collector-token";

impl Receiver {
    /// OTLP/HTTP at `/v1/traces`, protobuf or JSON as the `Content-Type` says.
    async fn start() -> (String, Self) {
        let receiver = Self::default();
        let app = receiver.http_app();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), receiver)
    }

    fn http_app(&self) -> axum::Router {
        let kept = self.clone();
        let export = move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let kept = kept.clone();
            async move {
                let content_type = headers
                    .get(axum::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                kept.note_token(headers.get(TOKEN_HEADER));
                kept.note_encoding(headers.get(axum::http::header::CONTENT_ENCODING));
                kept.content_types
                    .lock()
                    .unwrap()
                    .push(content_type.clone());
                let gzipped = headers
                    .get(axum::http::header::CONTENT_ENCODING)
                    .is_some_and(|e| e == "gzip");
                let body = if gzipped {
                    let mut plain = Vec::new();
                    let mut unzip = flate2::read::GzDecoder::new(&body[..]);
                    if std::io::Read::read_to_end(&mut unzip, &mut plain).is_err() {
                        *kept.bad.lock().unwrap() += 1;
                        return axum::http::StatusCode::BAD_REQUEST.into_response();
                    }
                    bytes::Bytes::from(plain)
                } else {
                    body
                };
                let json = content_type == "application/json";
                let request = if json {
                    serde_json::from_slice::<ExportTraceServiceRequest>(&body).ok()
                } else {
                    ExportTraceServiceRequest::decode(body).ok()
                };
                let Some(request) = request else {
                    *kept.bad.lock().unwrap() += 1;
                    return axum::http::StatusCode::BAD_REQUEST.into_response();
                };
                kept.keep(request);
                let response = ExportTraceServiceResponse::default();
                if json {
                    axum::Json(response).into_response()
                } else {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        response.encode_to_vec(),
                    )
                        .into_response()
                }
            }
        };
        axum::Router::new().route("/v1/traces", axum::routing::post(export))
    }

    /// OTLP/gRPC: the collector's trace service over cleartext HTTP/2.
    async fn start_grpc() -> (String, Self) {
        let receiver = Self::default();
        let service = receiver.grpc_app();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), receiver)
    }

    /// The trace service alone, as a router so it can also be served over TLS like the
    /// HTTP receiver.
    fn grpc_app(&self) -> axum::Router {
        let service = TraceServiceServer::new(GrpcCollector(self.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        axum::Router::new().fallback_service(service)
    }

    /// `app` (an [`http_app`](Self::http_app) or [`grpc_app`](Self::grpc_app)) over TLS
    /// with `pki`'s collector certificate, HTTP/2 or HTTP/1.1 as ALPN settles. A client
    /// whose certificate `pki`'s CA did not issue is refused at the handshake.
    async fn start_mutual_tls(pki: &Pki, app: fn(&Self) -> axum::Router) -> (String, Self) {
        let receiver = Self::default();
        let app = app(&receiver);
        let acceptor = TlsAcceptor::from(Arc::clone(&pki.collector));
        let refused = Arc::clone(&receiver.refused);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app, refused) = (acceptor.clone(), app.clone(), refused.clone());
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(err) => {
                            let why = err
                                .into_inner()
                                .and_then(|inner| inner.downcast::<rustls::Error>().ok())
                                .map_or(rustls::Error::HandshakeNotComplete, |why| *why);
                            refused.lock().unwrap().push(why);
                            return;
                        }
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        (format!("https://{addr}"), receiver)
    }

    fn keep(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| text(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }

    fn note_encoding(&self, value: Option<&axum::http::HeaderValue>) {
        let value = value.map_or("", |v| v.to_str().unwrap()).to_owned();
        self.encodings.lock().unwrap().push(value);
    }

    fn note_token(&self, value: Option<&axum::http::HeaderValue>) {
        if let Some(value) = value {
            let value = value.to_str().unwrap().to_owned();
            self.tokens.lock().unwrap().push(value);
        }
    }

    fn assert_every_export_encoded(&self, encoding: &str) {
        let encodings = self.encodings.lock().unwrap().clone();
        assert!(
            !encodings.is_empty() && encodings.iter().all(|e| e == encoding),
            "{encodings:?}"
        );
    }

    fn spans(&self) -> Vec<Received> {
        assert_eq!(*self.bad.lock().unwrap(), 0, "an export did not decode");
        self.spans.lock().unwrap().clone()
    }

    /// The first span `matches` accepts, waiting for it to be exported.
    async fn wait_for(&self, what: &str, matches: impl Fn(&Received) -> bool) -> Received {
        let began = Instant::now();
        loop {
            if let Some(found) = self.spans().into_iter().find(&matches) {
                return found;
            }
            assert!(
                began.elapsed() < DEADLINE,
                "no span {what} arrived; got {:#?}",
                self.spans()
                    .iter()
                    .map(|r| (&r.span.name, hex(&r.span.trace_id)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct GrpcCollector(Receiver);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.note_token(headers.get(TOKEN_HEADER));
        self.0.note_encoding(headers.get("grpc-encoding"));
        self.0.keep(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA made for one test, and what it issued: the collector's certificate for
/// 127.0.0.1 and a client certificate for marketd. marketd reads PEM files, so the CA
/// and the client pair are written to a temporary directory.
struct Pki {
    _dir: tempfile::TempDir,
    ca: String,
    client_cert: String,
    client_key: String,
    /// The collector's side: its certificate, and client certificates required.
    collector: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn new() -> Self {
        let ca = test_ca("marketd test collector CA");

        let collector_key = KeyPair::generate().unwrap();
        let collector = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&collector_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "marketd");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params.signed_by(&client_key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let ca_path = write("ca.pem", ca.pem());
        let client_cert = write("client.crt", client.pem());
        let client_key = write("client.key", client_key.serialize_pem());

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let collector_key = PrivatePkcs8KeyDer::from(collector_key.serialize_der());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(clients)
            .with_single_cert(
                vec![collector.der().clone()],
                PrivateKeyDer::Pkcs8(collector_key),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            _dir: dir,
            ca: ca_path,
            client_cert,
            client_key,
            collector: Arc::new(config),
        }
    }
}

/// Starts `marketd serve` exporting to `endpoint`, off the runtime as it blocks until the
/// server listens.
async fn serve_exporting(db: &TestDb, endpoint: &str, extra: &[(&str, &str)]) -> Server {
    let db_url = db.url.clone();
    let mut env: Vec<(String, String)> = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.into()),
        // Short, so spans arrive while the test waits rather than after five seconds.
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        serve_with_env(&db_url, &env)
    })
    .await
    .unwrap()
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(child: &mut Child) {
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
        assert!(
            began.elapsed() < DEADLINE,
            "marketd did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_join_the_callers_trace() {
    let (endpoint, receiver) = Receiver::start().await;
    request_spans_join_the_callers_trace_over(&endpoint, &receiver, &[]).await;
    let content_types = receiver.content_types.lock().unwrap().clone();
    assert!(
        content_types.iter().all(|t| t == "application/x-protobuf"),
        "{content_types:?}"
    );
    receiver.assert_every_export_encoded("");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_exports_the_same_spans_gzipped() {
    let (endpoint, receiver) = Receiver::start().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ];
    request_spans_join_the_callers_trace_over(&endpoint, &receiver, &env).await;
    let content_types = receiver.content_types.lock().unwrap().clone();
    assert!(
        !content_types.is_empty() && content_types.iter().all(|t| t == "application/json"),
        "{content_types:?}"
    );
    receiver.assert_every_export_encoded("gzip");
}

/// gRPC takes the general endpoint as it is, sends the configured headers as metadata
/// and compresses as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_the_same_spans_with_the_configured_headers_and_gzip() {
    let (endpoint, receiver) = Receiver::start_grpc().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-token=s3cret"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
    ];
    request_spans_join_the_callers_trace_over(&endpoint, &receiver, &env).await;
    let tokens = receiver.tokens.lock().unwrap().clone();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t == "s3cret"),
        "{tokens:?}"
    );
    receiver.assert_every_export_encoded("gzip");
}

/// A collector that requires mutual TLS: its certificate is trusted through the CA file and
/// marketd shows the client certificate it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_exports_over_mutual_tls() {
    let pki = Pki::new();
    let (endpoint, receiver) = Receiver::start_mutual_tls(&pki, Receiver::http_app).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca.as_str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key),
    ];
    request_spans_join_the_callers_trace_over(&endpoint, &receiver, &env).await;
}

/// The same over gRPC, with the signal's own variables winning over general ones that
/// name files which are not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_over_mutual_tls() {
    let pki = Pki::new();
    let (endpoint, receiver) = Receiver::start_mutual_tls(&pki, Receiver::grpc_app).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", pki.ca.as_str()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            &pki.client_cert,
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &pki.client_key),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nowhere/ca.pem"),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/nowhere/client.crt",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nowhere/client.key"),
    ];
    request_spans_join_the_callers_trace_over(&endpoint, &receiver, &env).await;
}

/// With the CA but no client certificate, the export reaches the collector, which
/// refuses the handshake: no span gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_a_collector_requiring_one_gets_nothing() {
    let pki = Pki::new();
    let (endpoint, receiver) = Receiver::start_mutual_tls(&pki, Receiver::http_app).await;
    let db = TestDb::sqlite();
    let server = serve_exporting(
        &db,
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca.as_str())],
    )
    .await;
    let answer = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert!(answer.status().is_success());

    let began = Instant::now();
    while receiver.refused.lock().unwrap().is_empty() {
        assert!(began.elapsed() < DEADLINE, "no export was attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = receiver.refused.lock().unwrap().clone();
    assert!(
        refused
            .iter()
            .all(|why| *why == rustls::Error::NoCertificatesPresented),
        "{refused:?}"
    );
    assert!(receiver.spans().is_empty(), "{:?}", receiver.spans());
    drop(server);
}

/// A request with a `traceparent` is a child of the caller's span; one with a malformed
/// header starts a trace of its own.
async fn request_spans_join_the_callers_trace_over(
    endpoint: &str,
    receiver: &Receiver,
    env: &[(&str, &str)],
) {
    let db = TestDb::sqlite();
    let key = create_key(&db, "prices:read");
    let server = serve_exporting(&db, endpoint, env).await;
    let client = crate::helpers::bearer_client(&key);
    let url = format!("{}/v1/ohlcv/BTC?interval=1h", server.base);

    let joined = client
        .get(&url)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    let status = joined.status().as_u16();
    let request_id = joined.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let span = receiver
        .wait_for("for the request with a traceparent", |r| {
            r.attribute("request_id").as_deref() == Some(request_id.as_str())
        })
        .await;
    assert_eq!(span.span.name, "GET /v1/ohlcv/{symbol}");
    assert_eq!(hex(&span.span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.span.parent_span_id), PARENT_ID);
    assert_eq!(span.span.kind, SpanKind::Server as i32);
    assert_eq!(span.service, "marketd");
    assert_eq!(
        span.attribute("route").as_deref(),
        Some("/v1/ohlcv/{symbol}")
    );
    assert_eq!(span.attribute("status"), Some(status.to_string()));

    // A malformed traceparent is no error: the request is served and starts its own trace.
    let alone = client
        .get(&url)
        .header("traceparent", format!("00-{TRACE_ID}-not-a-span-id-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(alone.status().as_u16(), status);
    let request_id = alone.headers()["x-request-id"].to_str().unwrap().to_owned();
    let span = receiver
        .wait_for("for the request with a bad traceparent", |r| {
            r.attribute("request_id").as_deref() == Some(request_id.as_str())
        })
        .await;
    assert_eq!(span.span.name, "GET /v1/ohlcv/{symbol}");
    assert_ne!(hex(&span.span.trace_id), TRACE_ID);
    assert!(span.span.parent_span_id.is_empty());
    drop(server);
}

/// The last spans are exported at shutdown, not lost with the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_spans_not_yet_exported() {
    let (endpoint, receiver) = Receiver::start().await;
    let db = TestDb::sqlite();
    let mut server = serve_exporting(
        &db,
        &endpoint,
        // Ten minutes: only the shutdown flush can deliver the span within the test.
        &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
    )
    .await;
    let answer = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    assert!(
        receiver.spans().is_empty(),
        "exported before the batch delay"
    );

    terminate(&mut server.child).await;
    let span = receiver
        .wait_for("for /healthz", |r| r.span.name == "GET /healthz")
        .await;
    assert_eq!(hex(&span.span.trace_id), TRACE_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_exports_nothing() {
    let (endpoint, receiver) = Receiver::start().await;
    let db = TestDb::sqlite();
    let mut server = serve_exporting(&db, &endpoint, &[("OTEL_SDK_DISABLED", "true")]).await;
    let answer = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    // Whatever was pending would have been flushed by the time the process exits.
    terminate(&mut server.child).await;
    assert!(receiver.spans().is_empty(), "{:?}", receiver.spans());
}

/// A fake Binance that answers every klines request with no candles and keeps the
/// `traceparent` each request carried.
async fn fake_binance_keeping_traceparents() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let klines = move |headers: axum::http::HeaderMap| {
        let kept = Arc::clone(&kept);
        async move {
            if let Some(value) = headers.get("traceparent") {
                kept.lock()
                    .unwrap()
                    .push(value.to_str().unwrap().to_owned());
            }
            axum::Json(Vec::<serde_json::Value>::new())
        }
    };
    let app = axum::Router::new().route("/api/v3/klines", axum::routing::get(klines));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_calls_carry_the_client_spans_traceparent() {
    let (endpoint, receiver) = Receiver::start().await;
    let (upstream, seen) = fake_binance_keeping_traceparents().await;
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marketd.toml");
    std::fs::write(
        &config,
        format!(
            "[[ingest]]\nsource = \"binance\"\nsymbols = [\"BTC\"]\nintervals = [\"1m\"]\ndepth = \"2h\"\npoll_secs = 1\nbase_url = \"{upstream}\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("marketd.log");
    let _ingest = Killed(
        Command::new(BIN)
            .arg("ingest")
            .arg("--config")
            .arg(&config)
            .env("MARKETD_DATABASE_URL", &db.url)
            .env("MARKETD_LOG_FORMAT", "json")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    let began = Instant::now();
    let header = loop {
        if let Some(header) = seen.lock().unwrap().first().cloned() {
            break header;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "the upstream never got a traceparent; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let parts: Vec<&str> = header.split('-').collect();
    let [version, trace_id, span_id, flags] = parts[..] else {
        panic!("not a traceparent: {header}");
    };
    assert_eq!((version, flags), ("00", "01"), "{header}");

    let call = receiver
        .wait_for("for the upstream call", |r| hex(&r.span.span_id) == span_id)
        .await;
    assert_eq!(call.span.name, "GET binance /api/v3/klines");
    assert_eq!(call.span.kind, SpanKind::Client as i32);
    assert_eq!(hex(&call.span.trace_id), trace_id);
    assert_eq!(
        call.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(call.service, "marketd");
    let parent = hex(&call.span.parent_span_id);
    let poll = receiver
        .wait_for("for the poll that made the call", |r| {
            hex(&r.span.span_id) == parent
        })
        .await;
    assert_eq!(poll.span.name, "ingest candles");
    assert_eq!(hex(&poll.span.trace_id), trace_id);
    assert_eq!(poll.attribute("symbol").as_deref(), Some("BTC"));
}

#[test]
fn config_check_shows_the_traces_endpoint_and_protocol_and_refuses_bad_ones() {
    let check = |endpoint: &str, protocol: &str| {
        Command::new(BIN)
            .args(["config", "check"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .env_remove("OTEL_SDK_DISABLED")
            .output()
            .unwrap()
    };
    let out = check("http://user:hunter2@collector:4318/", "");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(r#"otel_traces_endpoint = "http://user:****@collector:4318/v1/traces""#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"otel_traces_protocol = "http/protobuf""#),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"));

    let out = check("https://collector:4317", "grpc");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(r#"otel_traces_endpoint = "https://collector:4317/""#)
            || printed.contains(r#"otel_traces_endpoint = "https://collector:4317""#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"otel_traces_protocol = "grpc""#),
        "{printed}"
    );

    let out = check("collector:4318", "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{stderr}");

    let out = check("http://collector:4317", "gRPC");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{stderr}");

    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
        .env_remove("OTEL_SDK_DISABLED")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_COMPRESSION"),
        "{stderr}"
    );
}

#[test]
fn config_check_shows_the_trace_tls_files_and_refuses_one_that_does_not_load() {
    let pki = Pki::new();
    let check = |ca: &str| {
        Command::new(BIN)
            .args(["config", "check"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)
            .env("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert)
            .env("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key)
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY")
            .env_remove("OTEL_SDK_DISABLED")
            .output()
            .unwrap()
    };
    let out = check(&pki.ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("otel_traces_certificate = {:?}", pki.ca),
        format!("otel_traces_client_certificate = {:?}", pki.client_cert),
        format!("otel_traces_client_key = {:?}", pki.client_key),
    ] {
        assert!(printed.contains(&line), "{printed}");
    }
    let key = std::fs::read_to_string(&pki.client_key).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(!printed.contains(key_body), "{printed}");

    let out = check("/nowhere/ca.pem");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && stderr.contains("/nowhere/ca.pem"),
        "{stderr}"
    );
}
