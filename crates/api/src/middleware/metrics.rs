//! Records every request in [`HttpMetrics`]: its route template (never the raw path),
//! method, status and the time to its response head.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};
use crate::metrics::HttpMetrics;

pub fn layer(metrics: Arc<HttpMetrics>) -> WrapLayer<Record> {
    WrapLayer::new(Record(metrics))
}

#[derive(Debug, Clone)]
pub struct Record(Arc<HttpMetrics>);

/// A request in flight: counted from its arrival until its response head, or until it
/// is abandoned (then it is not recorded, having no status).
#[derive(Debug)]
pub struct InFlight {
    metrics: Arc<HttpMetrics>,
    began: Instant,
    method: Method,
    route: Option<MatchedPath>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.finish();
    }
}

impl Wrap for Record {
    type Carry = InFlight;

    fn before(&self, request: &mut Request) -> Result<InFlight, Response> {
        self.0.start();
        Ok(InFlight {
            metrics: Arc::clone(&self.0),
            began: Instant::now(),
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
        })
    }

    fn after(finished: InFlight, response: Response) -> Response {
        finished.metrics.record(
            finished.route.as_ref().map(MatchedPath::as_str),
            &finished.method,
            response.status(),
            finished.began.elapsed(),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn labels_requests_by_template_not_path() {
        let metrics = Arc::new(HttpMetrics::new(["/items/{id}"]));
        let app = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .layer(layer(Arc::clone(&metrics)));
        for uri in ["/items/1", "/items/secret-looking-id", "/nothing/here"] {
            let request = Request::get(uri).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains(
                r#"marketd_http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{out}"
        );
        assert!(out.contains(
            r#"marketd_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ));
        assert!(!out.contains("secret-looking-id") && !out.contains("/nothing"));
        assert!(out.contains("marketd_http_requests_in_flight 0"));
    }
}
