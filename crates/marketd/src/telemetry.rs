//! Logs, and OpenTelemetry traces over OTLP (HTTP with protobuf or JSON bodies, or gRPC)
//! when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set.
//!
//! The spans worth exporting (one per request, one per ingest poll, one per upstream
//! call) are at DEBUG, so that with export off and logs at INFO they cost nothing. With
//! export on, the OpenTelemetry layer has a filter of its own that lets them through:
//! traces are complete while log lines stay at the level `RUST_LOG` asks for.
//!
//! With neither variable set no tracer, exporter thread or HTTP client is created, and
//! the log pipeline is the same as without this module.
//!
//! A collector behind TLS is verified against the Mozilla roots and, when
//! `OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE` names one, a CA of the operator's own; a
//! collector that wants mutual TLS gets the client certificate and key the
//! `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY` variables name. Those files are read and
//! checked here, at start-up, so `config check` refuses one that would not load.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    Compression, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, Protocol, SpanExporter, WithExportConfig as _,
    WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;
use crate::tls::pem_reason;

pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const COMPRESSION_ENV: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const TRACES_COMPRESSION_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
const CERTIFICATE_ENV: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const TRACES_CERTIFICATE_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
const CLIENT_CERTIFICATE_ENV: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
const TRACES_CLIENT_CERTIFICATE_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE";
const CLIENT_KEY_ENV: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
const TRACES_CLIENT_KEY_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY";
const SDK_DISABLED_ENV: &str = "OTEL_SDK_DISABLED";

/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "marketd";

/// What the logs show unless `RUST_LOG` says otherwise. The exporter's own chatter is
/// kept to warnings, so an unreachable collector shows up but a working one is quiet.
const DEFAULT_LOG: &str = "info,sqlx=warn,tower_http=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// How long exit waits for the last spans to reach the collector; a collector that is
/// down must not hold up a shutdown.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// How spans travel to the collector, as `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// The specification's default, and the collector's port 4318.
    #[default]
    HttpProtobuf,
    HttpJson,
    /// The collector's port 4317.
    Grpc,
}

impl OtlpProtocol {
    const ALL: [Self; 3] = [Self::HttpProtobuf, Self::HttpJson, Self::Grpc];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
            Self::Grpc => "grpc",
        }
    }
}

/// Whether traces are exported, from the standard `OTEL_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    /// Where spans go; `None` when export is off.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// Export bodies gzipped (`OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION=gzip`).
    pub gzip: bool,
    /// CA certificates the collector's certificate may chain to, trusted besides the
    /// Mozilla roots (`OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE`).
    pub ca: Option<PemFile>,
    /// What marketd shows a collector that asks for a client certificate.
    pub client: Option<ClientCertificate>,
}

/// A PEM file an `OTEL_*` variable names, as read at start-up: the exporter is built
/// from the bytes that were checked, whatever happens to the file later. `Debug` shows
/// the path only, as one of these holds a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pem: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The certificate chain (leaf first) and private key for mutual TLS, from
/// `OTEL_EXPORTER_OTLP_(TRACES_)CLIENT_CERTIFICATE` and `..._CLIENT_KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub chain: PemFile,
    pub key: PemFile,
}

impl Traces {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `var`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set(SDK_DISABLED_ENV).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self::default());
        }
        let (own, general) = (set(TRACES_ENDPOINT_ENV), set(ENDPOINT_ENV));
        if own.is_none() && general.is_none() {
            return Ok(Self::default());
        }
        // The signal's own variable wins over the general one.
        let either = |own: &'static str, general: &'static str| {
            set(own)
                .map(|v| (own, v))
                .or_else(|| set(general).map(|v| (general, v)))
        };
        let protocol = match either(TRACES_PROTOCOL_ENV, PROTOCOL_ENV) {
            None => OtlpProtocol::default(),
            Some((name, raw)) => OtlpProtocol::ALL
                .into_iter()
                .find(|p| p.as_str() == raw)
                .ok_or_else(|| {
                    format!("{name}: {raw:?} is not one of grpc, http/protobuf, http/json")
                })?,
        };
        // The exporter would read these itself and refuse anything but gzip (or zstd,
        // which is not built), `none` included, only once it is being built: refusing here
        // makes `config check` catch it.
        let gzip = match either(TRACES_COMPRESSION_ENV, COMPRESSION_ENV) {
            None => false,
            Some((_, raw)) if raw == "gzip" => true,
            Some((name, raw)) => {
                return Err(format!(
                    "{name}: {raw:?} is not supported: set gzip, or leave it unset for uncompressed exports"
                ));
            }
        };
        let ca = either(TRACES_CERTIFICATE_ENV, CERTIFICATE_ENV)
            .map(|(name, path)| read_ca(name, &path))
            .transpose()?;
        let client = match (
            either(TRACES_CLIENT_CERTIFICATE_ENV, CLIENT_CERTIFICATE_ENV),
            either(TRACES_CLIENT_KEY_ENV, CLIENT_KEY_ENV),
        ) {
            (None, None) => None,
            (Some(chain), Some(key)) => Some(read_client_certificate(chain, key)?),
            (Some((name, _)), None) => {
                return Err(format!(
                    "{name}: a client certificate needs its key in {CLIENT_KEY_ENV} (or {TRACES_CLIENT_KEY_ENV})"
                ));
            }
            (None, Some((name, _))) => {
                return Err(format!(
                    "{name}: a client key needs its certificate in {CLIENT_CERTIFICATE_ENV} (or {TRACES_CLIENT_CERTIFICATE_ENV})"
                ));
            }
        };
        // The signal's own variable is used as it is. Over HTTP the general one is a base
        // URL that gets the signal's path; gRPC has no such path, the service names the
        // method (OTLP exporter specification).
        let (name, endpoint) = match (own, general) {
            (Some(traces), _) => (TRACES_ENDPOINT_ENV, traces),
            (None, Some(base)) if protocol == OtlpProtocol::Grpc => (ENDPOINT_ENV, base),
            (None, Some(base)) => (
                ENDPOINT_ENV,
                format!("{}/v1/traces", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(Self::default()),
        };
        match reqwest::Url::parse(&endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => return Err(format!("{name}: {endpoint:?} is not an http(s) URL")),
        }
        Ok(Self {
            endpoint: Some(endpoint),
            protocol,
            gzip,
            ca,
            client,
        })
    }
}

impl PemFile {
    /// Reads the file `name` points to; the error names both.
    fn read(name: &str, path: &str) -> Result<Self, String> {
        let path = PathBuf::from(path);
        match std::fs::read(&path) {
            Ok(pem) => Ok(Self { path, pem }),
            Err(err) => Err(format!("{name}: {}: {err}", path.display())),
        }
    }

    /// The certificates in the file, at least one.
    fn certificates(&self, name: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let certificates = CertificateDer::pem_slice_iter(&self.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.refused(name, &pem_reason(&err, "CERTIFICATE")))?;
        if certificates.is_empty() {
            let none = pem_reason(&pem::Error::NoItemsFound, "CERTIFICATE");
            return Err(self.refused(name, &none));
        }
        Ok(certificates)
    }

    fn refused(&self, name: &str, reason: &str) -> String {
        format!("{name}: {}: {reason}", self.path.display())
    }
}

/// Reads a CA file and checks that each of its certificates would be accepted as a
/// root, as the exporter's client will take them.
fn read_ca(name: &str, path: &str) -> Result<PemFile, String> {
    let file = PemFile::read(name, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in file.certificates(name)? {
        roots
            .add(certificate)
            .map_err(|err| file.refused(name, &err.to_string()))?;
    }
    Ok(file)
}

/// Reads a client certificate chain and its key, and checks that the key is one rustls
/// can sign with and that it belongs to the leaf certificate.
fn read_client_certificate(
    (chain_name, chain_path): (&str, String),
    (key_name, key_path): (&str, String),
) -> Result<ClientCertificate, String> {
    let chain = PemFile::read(chain_name, &chain_path)?;
    let certificates = chain.certificates(chain_name)?;
    let key = PemFile::read(key_name, &key_path)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key.pem)
        .map_err(|err| key.refused(key_name, &pem_reason(&err, "PRIVATE KEY")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certificates, key_der, &provider)
        .map_err(|err| format!("{chain_name} and {key_name} do not make a usable pair: {err}"))?;
    Ok(ClientCertificate { chain, key })
}

/// Flushes and stops trace export when dropped, waiting at most [`FLUSH_WAIT`]: keep it
/// alive until the command is done.
#[derive(Debug)]
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // The exporter runs on its own thread with its own blocking client, so waiting here
        // cannot deadlock; block_in_place only lets the runtime move other tasks off this
        // worker meanwhile.
        let flushed = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| provider.shutdown_with_timeout(FLUSH_WAIT))
        } else {
            provider.shutdown_with_timeout(FLUSH_WAIT)
        };
        if let Err(err) = flushed {
            tracing::warn!(error = %err, "not every span reached the OpenTelemetry collector");
        }
    }
}

/// Installs the global subscriber: log lines on standard error and, when `traces` says
/// so, OTLP export. W3C `traceparent`/`tracestate` become the propagation format only
/// then, so with export off no header is read or written.
pub fn init(format: LogFormat, traces: &Traces) -> anyhow::Result<Telemetry> {
    use std::io::IsTerminal;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let log_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json()
            .flatten_event(true)
            .with_filter(log_filter)
            .boxed()
    } else {
        logs.with_filter(log_filter).boxed()
    };
    let registry = tracing_subscriber::registry().with(logs);
    let Some(endpoint) = &traces.endpoint else {
        registry.init();
        return Ok(Telemetry { provider: None });
    };
    let exporter = exporter(endpoint, traces).context("the OTLP trace exporter")?;
    // The SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and the exporter
    // OTEL_EXPORTER_OTLP_(TRACES_)HEADERS and _TIMEOUT themselves.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("marketd"))
        .with_filter(span_filter());
    registry.with(spans).init();
    tracing::info!(
        endpoint,
        protocol = traces.protocol.as_str(),
        gzip = traces.gzip,
        ca_file = traces.ca.is_some(),
        client_certificate = traces.client.is_some(),
        "exporting traces over OTLP"
    );
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// An exporter speaking `traces.protocol` to `endpoint`. The gRPC channel connects
/// lazily, on the runtime this is called from, so a collector that is down does not stop
/// start-up.
fn exporter(endpoint: &str, traces: &Traces) -> anyhow::Result<SpanExporter> {
    let tls_files = traces.ca.is_some() || traces.client.is_some();
    let http = |body| -> anyhow::Result<SpanExporter> {
        let http = SpanExporter::builder()
            .with_http()
            .with_protocol(body)
            .with_endpoint(endpoint);
        // The exporter's own client knows the Mozilla roots only.
        let http = if tls_files {
            http.with_http_client(http_client(traces)?)
        } else {
            http
        };
        let http = if traces.gzip {
            http.with_compression(Compression::Gzip)
        } else {
            http
        };
        Ok(http.build()?)
    };
    match traces.protocol {
        OtlpProtocol::HttpProtobuf => http(Protocol::HttpBinary),
        OtlpProtocol::HttpJson => http(Protocol::HttpJson),
        OtlpProtocol::Grpc => {
            let grpc = SpanExporter::builder().with_tonic().with_endpoint(endpoint);
            // tonic needs TLS asked for explicitly; the roots are the same Mozilla set
            // the HTTP client trusts.
            let tls = reqwest::Url::parse(endpoint).is_ok_and(|url| url.scheme() == "https");
            let grpc = if tls {
                grpc.with_tls_config(grpc_tls(traces))
            } else {
                grpc
            };
            let grpc = if traces.gzip {
                grpc.with_compression(Compression::Gzip)
            } else {
                grpc
            };
            Ok(grpc.build()?)
        }
    }
}

/// The Mozilla roots, plus the CA and client certificate `traces` has.
fn grpc_tls(traces: &Traces) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().with_webpki_roots();
    let tls = match &traces.ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(&ca.pem)),
        None => tls,
    };
    match &traces.client {
        Some(client) => tls.identity(Identity::from_pem(&client.chain.pem, &client.key.pem)),
        None => tls,
    }
}

/// A blocking client like the one the HTTP exporter makes for itself (the Mozilla roots,
/// the `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` it would apply), with the CA and client
/// certificate `traces` has.
fn http_client(traces: &Traces) -> anyhow::Result<reqwest::blocking::Client> {
    let build = || -> anyhow::Result<reqwest::blocking::Client> {
        let mut client = reqwest::blocking::Client::builder().timeout(export_timeout());
        if let Some(ca) = &traces.ca {
            for root in reqwest::Certificate::from_pem_bundle(&ca.pem)? {
                client = client.add_root_certificate(root);
            }
        }
        if let Some(identity) = &traces.client {
            // reqwest takes the chain and the key as one PEM buffer.
            let mut pem = identity.chain.pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&identity.key.pem);
            client = client.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(client.build()?)
    };
    // The blocking client drives a runtime of its own, which cannot be started from a
    // thread that already runs one, as the caller's may.
    std::thread::scope(|scope| scope.spawn(build).join())
        .map_err(|_| anyhow::anyhow!("building the HTTP client panicked"))?
}

/// The per-export timeout, read as the exporter reads it for a client it builds itself:
/// the signal's variable, else the general one, in milliseconds.
fn export_timeout() -> Duration {
    [
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        OTEL_EXPORTER_OTLP_TIMEOUT,
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok()?.parse().ok())
    .map_or(OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT, Duration::from_millis)
}

/// The log filter plus the DEBUG spans traces are made of. The exporter's own crates are
/// left out so that exporting never traces itself.
fn span_filter() -> EnvFilter {
    let base = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directives| EnvFilter::try_new(directives).is_ok())
        .unwrap_or_else(|| DEFAULT_LOG.to_owned());
    let spans: Vec<String> = std::iter::once(marketd_api::middleware::trace::SPAN_TARGET)
        .chain(marketd_ingest::SPAN_TARGETS)
        .map(|target| format!("{target}=debug"))
        .collect();
    let spans = spans.join(",");
    EnvFilter::new(format!(
        "{base},{spans},opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off"
    ))
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, SDK attributes),
/// named `marketd` when neither variable names the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(DEFAULT_SERVICE_NAME)
            .build()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::path::Path;

    use super::*;

    fn traces(vars: &[(&str, &str)]) -> Result<Traces, String> {
        Traces::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert_eq!(traces(&[]).unwrap(), Traces::default());
        assert_eq!(traces(&[(ENDPOINT_ENV, " ")]).unwrap(), Traces::default());
        assert_eq!(
            traces(&[(PROTOCOL_ENV, "grpc")]).unwrap(),
            Traces::default()
        );
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_and_the_signal_one_is_kept() {
        let base = traces(&[(ENDPOINT_ENV, "http://collector:4318/")]).unwrap();
        assert_eq!(
            base.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let own = traces(&[
            (ENDPOINT_ENV, "http://wrong:4318"),
            (TRACES_ENDPOINT_ENV, "https://collector/custom"),
        ])
        .unwrap();
        assert_eq!(own.endpoint.as_deref(), Some("https://collector/custom"));
    }

    #[test]
    fn sdk_disabled_wins() {
        let off = traces(&[
            (ENDPOINT_ENV, "http://collector:4318"),
            (SDK_DISABLED_ENV, "TRUE"),
        ])
        .unwrap();
        assert_eq!(off, Traces::default());
        let on = traces(&[
            (ENDPOINT_ENV, "http://collector:4318"),
            (SDK_DISABLED_ENV, "false"),
        ])
        .unwrap();
        assert!(on.endpoint.is_some());
    }

    #[test]
    fn the_protocol_is_read_and_grpc_keeps_the_general_endpoint_as_it_is() {
        let plain = traces(&[(ENDPOINT_ENV, "http://collector:4318")]).unwrap();
        assert_eq!(plain.protocol, OtlpProtocol::HttpProtobuf);
        let grpc = traces(&[
            (ENDPOINT_ENV, "http://collector:4317/"),
            (PROTOCOL_ENV, "grpc"),
        ])
        .unwrap();
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
        assert_eq!(grpc.endpoint.as_deref(), Some("http://collector:4317/"));
        let json = traces(&[
            (ENDPOINT_ENV, "http://collector:4318"),
            (TRACES_PROTOCOL_ENV, "http/json"),
            (PROTOCOL_ENV, "grpc"),
        ])
        .unwrap();
        assert_eq!(json.protocol, OtlpProtocol::HttpJson);
        assert_eq!(
            json.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn gzip_is_the_one_compression() {
        let endpoint = (ENDPOINT_ENV, "http://collector:4318");
        assert!(!traces(&[endpoint]).unwrap().gzip);
        assert!(traces(&[endpoint, (COMPRESSION_ENV, "gzip")]).unwrap().gzip);
        let own = traces(&[
            endpoint,
            (TRACES_COMPRESSION_ENV, "gzip"),
            (COMPRESSION_ENV, "none"),
        ])
        .unwrap();
        assert!(own.gzip);
        for refused in ["none", "zstd", "GZIP"] {
            let err = traces(&[endpoint, (COMPRESSION_ENV, refused)]).unwrap_err();
            assert!(
                err.contains(COMPRESSION_ENV) && err.contains(refused),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_protocols_and_bad_urls_are_refused() {
        let err = traces(&[
            (ENDPOINT_ENV, "http://collector:4317"),
            (PROTOCOL_ENV, "grpc/json"),
        ])
        .unwrap_err();
        assert!(
            err.contains(PROTOCOL_ENV) && err.contains("grpc/json"),
            "{err}"
        );
        let err = traces(&[(ENDPOINT_ENV, "collector:4318")]).unwrap_err();
        assert!(err.contains(ENDPOINT_ENV), "{err}");
        let err = traces(&[
            (TRACES_ENDPOINT_ENV, "unix:/run/collector.sock"),
            (PROTOCOL_ENV, "grpc"),
        ])
        .unwrap_err();
        assert!(err.contains(TRACES_ENDPOINT_ENV), "{err}");
    }

    /// A self-signed certificate and its key as PEM files named after `name`; returns
    /// their paths.
    fn pem_pair(dir: &Path, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.test")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let text = |path: &Path| path.to_str().unwrap().to_owned();
        (text(&cert_path), text(&key_path))
    }

    const HTTPS: (&str, &str) = (ENDPOINT_ENV, "https://collector:4318");

    #[test]
    fn tls_files_are_read_and_the_signals_own_variables_win() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = pem_pair(dir.path(), "ca");
        let (other_ca, _) = pem_pair(dir.path(), "other-ca");
        let (cert, key) = pem_pair(dir.path(), "client");
        let (other_cert, other_key) = pem_pair(dir.path(), "other-client");

        let plain = traces(&[HTTPS]).unwrap();
        assert_eq!((plain.ca, plain.client), (None, None));

        let general = traces(&[
            HTTPS,
            (CERTIFICATE_ENV, &ca),
            (CLIENT_CERTIFICATE_ENV, &cert),
            (CLIENT_KEY_ENV, &key),
        ])
        .unwrap();
        assert_eq!(general.ca.as_ref().unwrap().path, Path::new(&ca));
        let client = general.client.as_ref().unwrap();
        assert_eq!(client.chain.path, Path::new(&cert));
        assert_eq!(client.key.path, Path::new(&key));

        let own = traces(&[
            HTTPS,
            (CERTIFICATE_ENV, &other_ca),
            (TRACES_CERTIFICATE_ENV, &ca),
            (CLIENT_CERTIFICATE_ENV, &other_cert),
            (TRACES_CLIENT_CERTIFICATE_ENV, &cert),
            (CLIENT_KEY_ENV, &other_key),
            (TRACES_CLIENT_KEY_ENV, &key),
        ])
        .unwrap();
        assert_eq!(own, general);

        // With export off the files are not even read.
        let off = traces(&[(CERTIFICATE_ENV, "/nowhere/ca.pem")]).unwrap();
        assert_eq!(off, Traces::default());
    }

    #[test]
    fn a_client_certificate_without_its_key_or_a_key_alone_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_pair(dir.path(), "client");
        let err = traces(&[HTTPS, (CLIENT_CERTIFICATE_ENV, &cert)]).unwrap_err();
        assert!(
            err.starts_with(CLIENT_CERTIFICATE_ENV) && err.contains(CLIENT_KEY_ENV),
            "{err}"
        );
        let err = traces(&[HTTPS, (TRACES_CLIENT_KEY_ENV, &key)]).unwrap_err();
        assert!(
            err.starts_with(TRACES_CLIENT_KEY_ENV) && err.contains(CLIENT_CERTIFICATE_ENV),
            "{err}"
        );
    }

    #[test]
    fn tls_files_that_do_not_load_are_refused_by_name_and_the_key_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_pair(dir.path(), "client");
        let (_, other_key) = pem_pair(dir.path(), "other");
        let key_pem = std::fs::read_to_string(&key).unwrap();
        let key_body = key_pem.lines().nth(1).unwrap();

        let missing = dir.path().join("absent.pem");
        let missing = missing.to_str().unwrap();
        let err = traces(&[HTTPS, (TRACES_CERTIFICATE_ENV, missing)]).unwrap_err();
        assert!(
            err.starts_with(TRACES_CERTIFICATE_ENV) && err.contains("absent.pem"),
            "{err}"
        );

        let refusals = [
            // A key where the CA should be.
            (vec![(CERTIFICATE_ENV, key.as_str())], CERTIFICATE_ENV),
            // A certificate where the key should be.
            (
                vec![
                    (CLIENT_CERTIFICATE_ENV, cert.as_str()),
                    (CLIENT_KEY_ENV, &cert),
                ],
                CLIENT_KEY_ENV,
            ),
            // Someone else's key.
            (
                vec![
                    (CLIENT_CERTIFICATE_ENV, cert.as_str()),
                    (CLIENT_KEY_ENV, &other_key),
                ],
                CLIENT_KEY_ENV,
            ),
            (
                vec![(CLIENT_CERTIFICATE_ENV, missing), (CLIENT_KEY_ENV, &key)],
                CLIENT_CERTIFICATE_ENV,
            ),
        ];
        for (vars, named) in refusals {
            let mut vars = vars;
            vars.push(HTTPS);
            let err = traces(&vars).unwrap_err();
            assert!(err.contains(named), "{err}");
            assert!(!err.contains(key_body), "{err}");
        }

        let loaded = traces(&[
            HTTPS,
            (CLIENT_CERTIFICATE_ENV, &cert),
            (CLIENT_KEY_ENV, &key),
        ])
        .unwrap();
        let shown = format!("{loaded:?}");
        assert!(
            shown.contains("client.key") && !shown.contains(key_body),
            "{shown}"
        );
    }
}
