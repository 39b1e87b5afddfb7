//! The request-head size limit, answered as a 431 problem. The HTTP server refuses heads
//! that overflow its read buffer on its own, with a bare 431; the buffer is sized above
//! this limit so that every head between the two gets a problem document like any other
//! refusal.

use axum::extract::Request;
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};
use crate::error::{Problem, ProblemType};

/// Default largest request head: request line and headers.
pub const DEFAULT_HEADER_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimit(pub usize);

impl Default for HeaderLimit {
    fn default() -> Self {
        Self(DEFAULT_HEADER_LIMIT)
    }
}

/// The size of `request`'s head as HTTP/1.1 would carry it: `METHOD target HTTP/1.1`
/// and a `name: value` line per header, each with its CRLF.
fn head_bytes(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |p| p.as_str().len());
    let line = request.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

pub fn layer(limit: HeaderLimit) -> WrapLayer<HeaderLimit> {
    WrapLayer::new(limit)
}

impl Wrap for HeaderLimit {
    type Carry = ();

    fn before(&self, request: &mut Request) -> Result<(), Response> {
        if head_bytes(request) > self.0 {
            return Err(Problem::new(
                ProblemType::HeadersTooLarge,
                format!(
                    "the request line and headers may be at most {} bytes",
                    self.0
                ),
            )
            .into_response_with(None));
        }
        Ok(())
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

    fn app(limit: usize) -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer(HeaderLimit(limit)))
    }

    fn request(value_len: usize) -> Request {
        Request::get("/?a=b")
            .header("x-big", "v".repeat(value_len))
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn counts_the_head_as_http_1_1_sends_it() {
        // "GET /?a=b HTTP/1.1\r\n" + "x-big: vvv\r\n" + "\r\n"
        assert_eq!(head_bytes(&request(3)), 20 + 12 + 2);
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_a_431_problem() {
        let limit = head_bytes(&request(100));
        let fits = app(limit).oneshot(request(100)).await.unwrap();
        assert_eq!(fits.status(), 200);
        let over = app(limit).oneshot(request(101)).await.unwrap();
        assert_eq!(over.status(), 431);
        assert_eq!(over.headers()["content-type"], "application/problem+json");
        let body = axum::body::to_bytes(over.into_body(), 4096).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "headers_too_large");
        assert_eq!(problem["status"], 431);
    }
}
