//! Time limits on the two halves of a request that the client and the server each own.
//!
//! The body must arrive within `body` of the headers, or the answer is 408
//! `body_timeout`: a client that stalls or trickles its upload cannot keep a handler (and
//! the database connection it may hold) waiting. The handler then has `handler` to
//! produce the response head, or the answer is 503 `timeout`; never 408, which would
//! blame the client for the server's slowness. Event streams under `/v1/stream/` live as
//! long as the client listens, so the handler limit does not apply to them.
//!
//! Only the response head is timed: a long CSV download that has started is not cut off.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::error::{Problem, ProblemType};

/// Paths whose responses are long-lived streams.
pub const STREAM_PREFIX: &str = "/v1/stream/";

/// Default time a handler gets to produce the response head.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the whole request body gets to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub handler: Duration,
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handler: DEFAULT_HANDLER_TIMEOUT,
            body: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// Whether the handler limit spares this path.
pub fn exempt(path: &str) -> bool {
    path.starts_with(STREAM_PREFIX)
}

impl<S> Layer<S> for Timeouts {
    type Service = TimeLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeLimited {
            limits: *self,
            inner,
        }
    }
}

/// The service beneath, held to [`Timeouts`]. A service rather than an async function
/// so that it calls the service beneath in place instead of cloning it per request.
#[derive(Debug, Clone)]
pub struct TimeLimited<S> {
    limits: Timeouts,
    inner: S,
}

impl<S, B> Service<Request> for TimeLimited<S>
where
    S: Service<Request, Response = axum::http::Response<B>>,
    S::Future: Unpin,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimeLimitedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (request, body) = watch_body(request, self.limits.body);
        let deadline = (!exempt(request.uri().path()))
            .then(|| Box::pin(tokio::time::sleep(self.limits.handler)));
        TimeLimitedFuture {
            inner: self.inner.call(request),
            deadline,
            body,
            limits: self.limits,
        }
    }
}

pub struct TimeLimitedFuture<F> {
    inner: F,
    /// None for exempt streams.
    deadline: Option<Pin<Box<Sleep>>>,
    body: Option<Arc<Watch>>,
    limits: Timeouts,
}

impl<F> std::fmt::Debug for TimeLimitedFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeLimitedFuture")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for TimeLimitedFuture<F>
where
    F: Future<Output = Result<axum::http::Response<B>, E>> + Unpin,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            // Whatever the handler made of the failed read (most say 400), the cause was
            // the client's pace.
            Poll::Ready(Ok(_)) if this.body_is(BodyState::Expired) => {
                Poll::Ready(Ok(body_timed_out(this.limits.body)))
            }
            Poll::Ready(outcome) => Poll::Ready(outcome.map(|r| r.map(Body::new))),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Ok(this.handler_timed_out())),
                _ => Poll::Pending,
            },
        }
    }
}

impl<F> TimeLimitedFuture<F> {
    fn body_is(&self, state: BodyState) -> bool {
        self.body.as_ref().is_some_and(|b| b.get() == state)
    }

    fn handler_timed_out(&self) -> Response {
        // Still waiting for the body at the handler's deadline: the client is the slow one.
        if self.body_is(BodyState::Reading) {
            return body_timed_out(self.limits.body);
        }
        tracing::warn!(
            limit_ms = self.limits.handler.as_millis() as u64,
            "handler timed out"
        );
        Problem::new(
            ProblemType::Timeout,
            "the server did not answer in time; retry later or ask for less",
        )
        .into_response_with(None)
    }
}

fn body_timed_out(limit: Duration) -> Response {
    Problem::new(
        ProblemType::BodyTimeout,
        format!(
            "the request body must arrive within {} ms of the headers",
            limit.as_millis()
        ),
    )
    .into_response_with(None)
}

/// Wraps the body of `request`, if it has one, in a deadline; the returned watch tells
/// how reading it went. Bodiless requests (most of them) pay nothing.
fn watch_body(request: Request, limit: Duration) -> (Request, Option<Arc<Watch>>) {
    if request.body().is_end_stream() {
        return (request, None);
    }
    let watch = Arc::new(Watch(AtomicU8::new(BodyState::Unread as u8)));
    let (parts, inner) = request.into_parts();
    let body = DeadlineBody {
        inner,
        deadline: Box::pin(tokio::time::sleep(limit)),
        watch: Arc::clone(&watch),
    };
    (Request::from_parts(parts, Body::new(body)), Some(watch))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum BodyState {
    /// Not asked for yet: a handler that is slow without reading the body is not
    /// waiting for the client.
    Unread,
    Reading,
    Complete,
    Expired,
}

#[derive(Debug)]
struct Watch(AtomicU8);

impl Watch {
    fn get(&self) -> BodyState {
        match self.0.load(Ordering::Acquire) {
            0 => BodyState::Unread,
            1 => BodyState::Reading,
            2 => BodyState::Complete,
            _ => BodyState::Expired,
        }
    }

    fn set(&self, state: BodyState) {
        self.0.store(state as u8, Ordering::Release);
    }
}

/// The error a reader of an overdue body sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    watch: Arc<Watch>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match this.watch.get() {
            BodyState::Expired => return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            BodyState::Complete => return Pin::new(&mut this.inner).poll_frame(cx),
            BodyState::Unread => this.watch.set(BodyState::Reading),
            BodyState::Reading => {}
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.watch.set(BodyState::Complete);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.watch.set(BodyState::Expired);
                    Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
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
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::{get, post};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "late"
    }

    async fn echo(body: Bytes) -> Bytes {
        body
    }

    fn app(handler: Duration, body: Duration) -> Router {
        Router::new()
            .route("/v1/prices", get(slow))
            .route("/v1/stream/prices", get(|| async { "streaming" }))
            .route("/v1/stream/slow", get(slow))
            .route("/echo", post(echo))
            .route("/ignore", post(slow))
            .layer(Timeouts { handler, body })
    }

    async fn problem(response: Response) -> Value {
        assert_eq!(
            response.headers()["content-type"],
            crate::error::PROBLEM_JSON
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn only_streams_are_exempt() {
        assert!(exempt("/v1/stream/prices"));
        assert!(!exempt("/v1/streams"));
        assert!(!exempt("/v1/prices"));
        assert!(!exempt("/v1/ohlcv/BTC"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_a_503_timeout() {
        let response = app(Duration::from_secs(10), Duration::from_secs(10))
            .oneshot(Request::get("/v1/prices").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem(response).await["type"], "timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn streams_are_not_cut_off() {
        let app = app(Duration::from_secs(10), Duration::from_secs(10));
        let response = app
            .clone()
            .oneshot(
                Request::get("/v1/stream/prices")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // A stream handler outlives the handler limit many times over.
        let pending = app.oneshot(Request::get("/v1/stream/slow").body(Body::empty()).unwrap());
        let outcome = tokio::time::timeout(Duration::from_secs(60), pending).await;
        assert!(
            outcome.is_err(),
            "the stream route was answered: {outcome:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_a_408() {
        let (mut sender, body) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(1);
        sender.try_send(Ok(Bytes::from_static(b"{\"par"))).unwrap();
        let request = Request::post("/echo")
            .body(Body::from_stream(body))
            .unwrap();
        let response = app(Duration::from_secs(30), Duration::from_secs(2))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(problem(response).await["type"], "body_timeout");
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_still_arriving_at_the_handler_deadline_is_a_408() {
        let (sender, body) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(1);
        let request = Request::post("/echo")
            .body(Body::from_stream(body))
            .unwrap();
        let response = app(Duration::from_secs(1), Duration::from_secs(30))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_that_never_reads_the_body_is_still_a_503() {
        let (sender, body) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(1);
        let request = Request::post("/ignore")
            .body(Body::from_stream(body))
            .unwrap();
        let response = app(Duration::from_secs(1), Duration::from_secs(30))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timely_body_is_read_whole() {
        let response = app(Duration::from_secs(1), Duration::from_secs(1))
            .oneshot(Request::post("/echo").body(Body::from("hello")).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"hello");
    }
}
