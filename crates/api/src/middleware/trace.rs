//! One tracing span per request, named by its route template (`GET /v1/ohlcv/{symbol}`)
//! rather than its path, so spans group by operation and no client-chosen text (a
//! symbol list, a cursor) becomes a span name. The span carries the request id, the key
//! id once authentication knows it (never the key), and at the end the status and
//! latency. Every log line of the request is inside it.
//!
//! The span and the per-request line are at DEBUG: at the default INFO level a request
//! creates no span and writes no log line, which keeps tracing off the hot path (an INFO
//! span cost the prices route about a tenth of its throughput in the load script). Run
//! with `RUST_LOG=info,marketd_api=debug` to see them. Trace export enables them for the
//! OpenTelemetry layer alone (see [`SPAN_TARGET`]).
//!
//! A W3C `traceparent` (and `tracestate`) on the request makes the span a child of the
//! caller's span, so the request joins the caller's trace. A malformed header is ignored:
//! the span starts a trace of its own, and the request is served as usual.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnRequest, MakeSpan, OnResponse, TraceLayer};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::request_id::RequestId;

/// Where request spans are made, for a filter that enables them for trace export.
pub const SPAN_TARGET: &str = module_path!();

/// The trace layer marketd uses.
pub type Trace =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, DefaultOnRequest, Answered>;

pub fn layer() -> Trace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(Answered)
}

/// Opens the request's span.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(crate::metrics::UNMATCHED, MatchedPath::as_str);
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map_or("", RequestId::as_str);
        let span = tracing::debug_span!(
            "request",
            otel.name = %format_args!("{} {route}", request.method()),
            otel.kind = "server",
            method = %request.method(),
            route,
            request_id,
            key_id = Empty,
            status = Empty,
            latency_ms = Empty,
        );
        // A disabled span (the default, with no trace export) costs no header parsing.
        if !span.is_disabled() {
            adopt_remote_parent(&span, request.headers());
        }
        span
    }
}

/// Makes `span` a child of the caller's span named by `headers`. With export off the
/// global propagator reads nothing, and without a valid `traceparent` the span keeps the
/// parent it has, so the result never depends on what a client sent.
fn adopt_remote_parent(span: &Span, headers: &axum::http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    if parent.span().span_context().is_remote() {
        // Fails only when no OpenTelemetry layer is installed, which leaves nothing to do.
        let _ = span.set_parent(parent);
    }
}

/// Records the outcome on the span and logs the request at DEBUG.
#[derive(Debug, Clone, Copy)]
pub struct Answered;

impl<B> OnResponse<B> for Answered {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1e3;
        span.record("status", status);
        span.record("latency_ms", latency_ms);
        tracing::debug!(status, latency_ms, "answered");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn spans_are_named_by_route_and_carry_key_id_status_and_latency() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route(
                "/v1/ohlcv/{symbol}",
                get(|| async {
                    // What authentication does once it knows the key.
                    Span::current().record("key_id", "KEYID123");
                    "ok"
                }),
            )
            .layer(layer());
        let request = Request::get("/v1/ohlcv/SECRETSYMBOL?cursor=abc")
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap();

        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = logs
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["fields"]["message"] == "answered")
            .expect("the request is logged at DEBUG");
        assert_eq!(line["fields"]["status"], 200);
        assert!(line["fields"]["latency_ms"].as_f64().unwrap() >= 0.0);
        let span = &line["span"];
        assert_eq!(span["name"], "request");
        assert_eq!(span["otel.name"], "GET /v1/ohlcv/{symbol}");
        assert_eq!(span["route"], "/v1/ohlcv/{symbol}");
        assert_eq!(span["key_id"], "KEYID123");
        assert!(
            !logs.contains("SECRETSYMBOL") && !logs.contains("cursor"),
            "{logs}"
        );
    }

    /// The OpenTelemetry trace id `make_span` gives a request with these headers.
    fn trace_id_of(headers: &[(&str, &str)]) -> String {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);
        let mut request = Request::get("/v1/prices");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let span = RequestSpan.make_span(&request.body(Body::empty()).unwrap());
        let context = span.context();
        let span_context = context.span().span_context().clone();
        assert!(span_context.is_valid());
        span_context.trace_id().to_string()
    }

    #[test]
    fn a_traceparent_puts_the_request_in_the_callers_trace_and_a_bad_one_is_ignored() {
        const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let joined = trace_id_of(&[
            ("traceparent", &format!("00-{TRACE}-00f067aa0ba902b7-01")),
            ("tracestate", "vendor=value"),
        ]);
        assert_eq!(joined, TRACE);
        for bad in [
            format!("00-{TRACE}-00f067aa0ba902b7"),
            format!("00-{TRACE}-0000000000000000-01"),
            "not a traceparent".to_owned(),
        ] {
            assert_ne!(trace_id_of(&[("traceparent", &bad)]), TRACE, "{bad}");
        }
        assert_ne!(trace_id_of(&[]), TRACE);
    }
}
