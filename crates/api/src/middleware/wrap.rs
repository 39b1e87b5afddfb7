//! The shape most of marketd's layers share: look at (or refuse) the request on its way
//! in, then adjust the response on its way out, with no waiting of their own.
//!
//! axum's `from_fn` would express each of them as an async function, but it clones the
//! whole service stack beneath it and boxes a future on every request; ten of them
//! stacked made that copying a tenth of the time spent on a cached answer. A [`Wrap`]
//! calls the service beneath it in place and keeps what it needs for the response in
//! a plain value, so a request pays only for the work each layer actually does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use tower::{BoxError, Layer, Service};

/// A middleware that needs no `.await` of its own.
pub trait Wrap: Clone + Send + Sync + Unpin + 'static {
    /// What the way in leaves for the way out.
    type Carry: Send + Unpin + 'static;

    /// Prepares `request` for the services beneath, or answers it here with `Err`.
    #[allow(
        clippy::result_large_err,
        reason = "the error is the answer itself, moved out once, on the rare refusal"
    )]
    fn before(&self, request: &mut Request) -> Result<Self::Carry, Response>;

    /// Adjusts the response the services beneath gave; by default, leaves it be.
    fn after(carry: Self::Carry, response: Response) -> Response {
        drop(carry);
        response
    }
}

/// Applies a [`Wrap`] as a tower layer.
#[derive(Debug, Clone)]
pub struct WrapLayer<W>(W);

impl<W> WrapLayer<W> {
    pub fn new(wrap: W) -> Self {
        Self(wrap)
    }
}

impl<W: Clone, S> Layer<S> for WrapLayer<W> {
    type Service = Wrapped<W, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wrapped {
            wrap: self.0.clone(),
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Wrapped<W, S> {
    wrap: W,
    inner: S,
}

impl<W, S, B> Service<Request> for Wrapped<W, S>
where
    W: Wrap,
    S: Service<Request, Response = axum::http::Response<B>>,
    S::Future: Unpin,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WrapFuture<W, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.wrap.before(&mut request) {
            Ok(carry) => WrapFuture::Running {
                inner: self.inner.call(request),
                carry: Some(carry),
            },
            Err(answer) => WrapFuture::Answered(Some(answer)),
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "a wrapped future was polled after it completed";

pub enum WrapFuture<W: Wrap, F> {
    Running { inner: F, carry: Option<W::Carry> },
    Answered(Option<Response>),
}

impl<W: Wrap, F> std::fmt::Debug for WrapFuture<W, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running { .. } => "WrapFuture::Running",
            Self::Answered(_) => "WrapFuture::Answered",
        })
    }
}

impl<W, F, B, E> Future for WrapFuture<W, F>
where
    W: Wrap,
    F: Future<Output = Result<axum::http::Response<B>, E>> + Unpin,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Self::Running { inner, carry } => match Pin::new(inner).poll(cx) {
                Poll::Ready(Ok(response)) => {
                    let Some(carry) = carry.take() else {
                        panic!("{POLLED_AFTER_COMPLETION}")
                    };
                    // Free when the body is already a `Body`, as it is under most layers.
                    Poll::Ready(Ok(W::after(carry, response.map(Body::new))))
                }
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            },
            Self::Answered(answer) => match answer.take() {
                Some(answer) => Poll::Ready(Ok(answer)),
                None => panic!("{POLLED_AFTER_COMPLETION}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Refuses `/refused`, counts the requests it lets through and tags their answers.
    #[derive(Clone, Default)]
    struct Tagging(Arc<AtomicUsize>);

    impl Wrap for Tagging {
        type Carry = usize;

        fn before(&self, request: &mut Request) -> Result<usize, Response> {
            if request.uri().path() == "/refused" {
                let mut answer = Response::new(Body::empty());
                *answer.status_mut() = StatusCode::FORBIDDEN;
                return Err(answer);
            }
            Ok(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }

        fn after(carry: usize, mut response: Response) -> Response {
            response
                .headers_mut()
                .insert("x-seen", HeaderValue::from(carry));
            response
        }
    }

    #[tokio::test]
    async fn runs_around_the_inner_service_or_answers_in_its_place() {
        let reached = Arc::new(AtomicUsize::new(0));
        let handler_calls = Arc::clone(&reached);
        let counter = Tagging::default();
        let app = Router::new()
            .route(
                "/{*path}",
                get(move || async move {
                    handler_calls.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }),
            )
            .layer(WrapLayer::new(counter.clone()));

        for expected in ["1", "2"] {
            let request = Request::get("/a").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-seen"], expected);
        }
        let request = Request::get("/refused").body(Body::empty()).unwrap();
        let refused = app.oneshot(request).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(!refused.headers().contains_key("x-seen"));
        assert_eq!(reached.load(Ordering::Relaxed), 2);
        assert_eq!(counter.0.load(Ordering::Relaxed), 2);
    }
}
