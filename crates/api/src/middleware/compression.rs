//! Response compression, brotli or gzip as the client's `Accept-Encoding` prefers.
//!
//! Left alone: bodies under 1 KiB, where the saving is a few bytes and the cost is the
//! same; event streams, because a compressor holds bytes back until it has enough and an
//! event must reach the client when it happens; and problem documents, which the problem
//! layer outside this one rewrites after the fact.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tower::layer::util::Stack;
use tower::util::MapResponseLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};

/// Bodies smaller than this are sent uncompressed.
pub const MIN_SIZE: u16 = 1024;

pub type When = And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

pub type Layer = Stack<MapResponseLayer<fn(Response) -> Response>, CompressionLayer<When>>;

pub fn layer() -> Layer {
    // Spelled out because tower-http's default predicate fixes the threshold at 32 bytes.
    let compression = CompressionLayer::new().compress_when(
        SizeAbove::new(MIN_SIZE)
            .and(NotForContentType::SSE)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::const_new(crate::error::PROBLEM_JSON)),
    );
    Stack::new(
        MapResponseLayer::new(fuse as fn(Response) -> Response),
        compression,
    )
}

/// The compressor polls a body once more after it has ended, and a streamed body
/// (`Body::from_stream` over `futures::stream::unfold`) panics when polled past its end.
fn fuse(response: Response) -> Response {
    response.map(|body| Body::new(Fused(Some(body))))
}

struct Fused(Option<Body>);

impl HttpBody for Fused {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(body) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
        if frame.is_none() {
            self.0 = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn big_json() -> String {
        let rows: Vec<String> = (0..200)
            .map(|i| format!("{{\"open_time\":{i},\"close\":{}.5}}", 100 + i))
            .collect();
        format!("{{\"data\":[{}]}}", rows.join(","))
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/big",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], big_json()) }),
            )
            .route(
                "/small",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        "{\"data\":[]}",
                    )
                }),
            )
            .route(
                "/events",
                get(|| async {
                    let body = "data: {\"price\":1}\n\n".repeat(200);
                    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
                }),
            )
            .route(
                "/stream",
                get(|| async {
                    // Not fused: panics if polled again after it ended.
                    let rows = futures::stream::unfold(0, |i| async move {
                        (i < 500).then(|| {
                            let row = format!("{i},{}.5\n", 100 + i);
                            (Ok::<_, std::convert::Infallible>(row), i + 1)
                        })
                    });
                    (
                        [(header::CONTENT_TYPE, "text/csv")],
                        Body::from_stream(rows),
                    )
                }),
            )
            .route(
                "/problem",
                get(|| async {
                    let detail = "x".repeat(2048);
                    let body =
                        format!("{{\"type\":\"validation_failed\",\"detail\":\"{detail}\"}}");
                    ([(header::CONTENT_TYPE, crate::error::PROBLEM_JSON)], body).into_response()
                }),
            )
            .layer(layer())
    }

    async fn fetch(path: &str, accept: Option<&str>) -> (Option<String>, Vec<u8>) {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let encoding = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (encoding, body.to_vec())
    }

    #[tokio::test]
    async fn large_json_is_compressed_as_asked_and_decodes_to_the_same_bytes() {
        let (encoding, body) = fetch("/big", Some("gzip")).await;
        assert_eq!(encoding.as_deref(), Some("gzip"));
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, big_json());

        let (encoding, body) = fetch("/big", Some("gzip;q=0.5, br")).await;
        assert_eq!(encoding.as_deref(), Some("br"));
        let mut decoded = String::new();
        brotli::Decompressor::new(&body[..], 4096)
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, big_json());
    }

    #[tokio::test]
    async fn streamed_bodies_are_compressed_to_their_end() {
        let expected: String = (0..500).map(|i| format!("{i},{}.5\n", 100 + i)).collect();
        let (encoding, body) = fetch("/stream", Some("gzip")).await;
        assert_eq!(encoding.as_deref(), Some("gzip"));
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, expected);
    }

    #[tokio::test]
    async fn identity_unless_asked() {
        for accept in [None, Some("identity"), Some("zstd")] {
            let (encoding, body) = fetch("/big", accept).await;
            assert_eq!(encoding, None, "{accept:?}");
            assert_eq!(body, big_json().into_bytes());
        }
    }

    #[tokio::test]
    async fn small_bodies_event_streams_and_problems_are_left_alone() {
        let (encoding, body) = fetch("/small", Some("gzip, br")).await;
        assert_eq!(encoding, None);
        assert_eq!(body, b"{\"data\":[]}");
        for path in ["/events", "/problem"] {
            let (encoding, _) = fetch(path, Some("gzip, br")).await;
            assert_eq!(encoding, None, "{path}");
        }
    }
}
