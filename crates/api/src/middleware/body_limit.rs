//! The one request-body size limit. A declared `Content-Length` over it is refused before
//! the body is read; a chunked (or HTTP/2) body is counted as it arrives and cut off at
//! the limit. Either way the client gets a 413 problem, whatever the handler made of
//! the failed read.
//!
//! axum's extractors carry their own 2 MB default limit; `crate::app` switches that off so
//! this is the only one and its setting means what it says.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::wrap::{Wrap, WrapLayer};
use crate::error::{Problem, ProblemType};

/// Default largest request body: more than any JSON request marketd takes needs.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(DEFAULT_BODY_LIMIT)
    }
}

pub fn layer(limit: BodyLimit) -> WrapLayer<BodyLimit> {
    WrapLayer::new(limit)
}

/// A body being counted, and the limit it is counted against.
#[derive(Debug)]
pub struct Counting {
    limit: BodyLimit,
    exceeded: Arc<AtomicBool>,
}

impl Wrap for BodyLimit {
    /// Bodiless requests (most of them) are not counted.
    type Carry = Option<Counting>;

    fn before(&self, request: &mut Request) -> Result<Option<Counting>, Response> {
        if request.body().is_end_stream() {
            return Ok(None);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.0 as u64) {
            return Err(too_large(*self));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = CountedBody {
            inner: std::mem::take(request.body_mut()),
            remaining: self.0,
            exceeded: Arc::clone(&exceeded),
        };
        *request.body_mut() = Body::new(body);
        Ok(Some(Counting {
            limit: *self,
            exceeded,
        }))
    }

    fn after(counting: Option<Counting>, response: Response) -> Response {
        match counting {
            Some(c) if c.exceeded.load(Ordering::Acquire) => too_large(c.limit),
            _ => response,
        }
    }
}

fn too_large(limit: BodyLimit) -> Response {
    Problem::new(
        ProblemType::PayloadTooLarge,
        format!("the request body may be at most {} bytes", limit.0),
    )
    .into_response_with(None)
}

/// The error a reader of an oversized body sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than allowed")]
pub struct BodyTooLarge;

struct CountedBody {
    inner: Body,
    remaining: usize,
    exceeded: Arc<AtomicBool>,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge))));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            match this.remaining.checked_sub(data.len()) {
                Some(left) => this.remaining = left,
                None => {
                    this.exceeded.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge))));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::Router;
    use axum::extract::DefaultBodyLimit;
    use axum::http::StatusCode;
    use axum::routing::post;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn app(limit: usize) -> Router {
        Router::new()
            .route("/echo", post(|body: Bytes| async move { body }))
            .layer(layer(BodyLimit(limit)))
            .layer(DefaultBodyLimit::disable())
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        let chunk = Bytes::from(vec![b'x'; size]);
        Body::from_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, Infallible>(chunk.clone())),
        ))
    }

    async fn assert_too_large(response: Response) {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()["content-type"],
            crate::error::PROBLEM_JSON
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(problem["type"], "payload_too_large");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let request = Request::post("/echo")
            .header("content-length", "1001")
            // Never polled: the declared length alone decides.
            .body(Body::from_stream(futures::stream::pending::<
                Result<Bytes, Infallible>,
            >()))
            .unwrap();
        assert_too_large(app(1000).oneshot(request).await.unwrap()).await;
    }

    #[tokio::test]
    async fn a_chunked_body_is_cut_off_at_the_limit() {
        let request = Request::post("/echo").body(chunked(11, 100)).unwrap();
        assert_too_large(app(1000).oneshot(request).await.unwrap()).await;
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_pass_whole() {
        for body in [Body::from(vec![b'x'; 1000]), chunked(10, 100)] {
            let request = Request::post("/echo").body(body).unwrap();
            let response = app(1000).oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            assert_eq!(bytes.len(), 1000);
        }
    }

    #[tokio::test]
    async fn the_limit_is_the_setting_not_axums_default() {
        let request = Request::post("/echo").body(chunked(30, 100_000)).unwrap();
        let response = app(4 << 20).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
