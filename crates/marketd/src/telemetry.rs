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

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{
    Compression, Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
    WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const COMPRESSION_ENV: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const TRACES_COMPRESSION_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
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
        })
    }
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
    let exporter = exporter(endpoint, traces.protocol, traces.gzip)
        .map_err(|e| anyhow::anyhow!("the OTLP trace exporter: {e}"))?;
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
        "exporting traces over OTLP"
    );
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// An exporter speaking `protocol` to `endpoint`. The gRPC channel connects lazily, on
/// the runtime this is called from, so a collector that is down does not stop start-up.
fn exporter(
    endpoint: &str,
    protocol: OtlpProtocol,
    gzip: bool,
) -> Result<SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let http = |body| {
        let http = SpanExporter::builder()
            .with_http()
            .with_protocol(body)
            .with_endpoint(endpoint);
        if gzip {
            http.with_compression(Compression::Gzip).build()
        } else {
            http.build()
        }
    };
    match protocol {
        OtlpProtocol::HttpProtobuf => http(Protocol::HttpBinary),
        OtlpProtocol::HttpJson => http(Protocol::HttpJson),
        OtlpProtocol::Grpc => {
            let grpc = SpanExporter::builder().with_tonic().with_endpoint(endpoint);
            // tonic needs TLS asked for explicitly; the roots are the same Mozilla set
            // the HTTP client trusts.
            let tls = reqwest::Url::parse(endpoint).is_ok_and(|url| url.scheme() == "https");
            let grpc = if tls {
                grpc.with_tls_config(ClientTlsConfig::new().with_webpki_roots())
            } else {
                grpc
            };
            let grpc = if gzip {
                grpc.with_compression(Compression::Gzip)
            } else {
                grpc
            };
            grpc.build()
        }
    }
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
}
