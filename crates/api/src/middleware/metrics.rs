//! Records every request in [`HttpMetrics`]: its route template (never the raw path),
//! method, status and the time to its response head.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::HttpMetrics;

pub async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let began = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let _in_flight = metrics.start();
    let response = next.run(request).await;
    metrics.record(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status(),
        began.elapsed(),
    );
    response
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
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&metrics),
                record,
            ));
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
