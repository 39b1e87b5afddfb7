//! Headers that tell browsers to treat marketd's responses as data, never as a page to
//! run, sniff, frame or leak the URL of: on every response, errors included.
//!
//! The API itself needs no scripts, styles or frames, so its policy forbids them all.
//! Swagger UI under `/docs` is a page: it loads its own scripts, styles and images,
//! sets inline styles from its scripts, and fetches the document and "Try it out"
//! calls from this origin; its policy allows exactly that.
//!
//! Responses sent over HTTPS also carry HSTS, so a browser never again tries plain HTTP
//! for this host. Over plain HTTP the header would be ignored by browsers, and it could
//! mislead a proxy that terminates TLS in front of marketd, so it is never sent there.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};

const API_POLICY: HeaderValue =
    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");

const DOCS_POLICY: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'",
);

/// Two years, the lifetime browsers' preload lists ask for.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=63072000; includeSubDomains");

/// A request extension the server sets on requests that came over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// Where Swagger UI is served.
pub const DOCS_PREFIX: &str = "/docs";

fn is_docs(path: &str) -> bool {
    path.strip_prefix(DOCS_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn layer() -> WrapLayer<SecurityHeaders> {
    WrapLayer::new(SecurityHeaders)
}

#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders;

/// What the response's headers depend on.
#[derive(Debug)]
pub struct Destination {
    docs: bool,
    over_tls: bool,
}

impl Wrap for SecurityHeaders {
    type Carry = Destination;

    fn before(&self, request: &mut Request) -> Result<Destination, Response> {
        Ok(Destination {
            docs: is_docs(request.uri().path()),
            over_tls: request.extensions().get::<OverTls>().is_some(),
        })
    }

    fn after(destination: Destination, response: Response) -> Response {
        add_headers(destination, response)
    }
}

fn add_headers(Destination { docs, over_tls }: Destination, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if over_tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    let fixed: [(HeaderName, HeaderValue); 4] = [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::CONTENT_SECURITY_POLICY,
            if docs { DOCS_POLICY } else { API_POLICY },
        ),
    ];
    // Replace, not append: whatever set one of these further in does not get a second copy.
    for (name, value) in fixed {
        headers.insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/v1/prices", get(|| async { "{}" }))
            .route("/docs/", get(|| async { "<html></html>" }))
            .route("/docsearch", get(|| async { "not the docs" }))
            .layer(layer())
    }

    async fn headers(path: &str) -> (StatusCode, axum::http::HeaderMap) {
        let response = app()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        (response.status(), response.headers().clone())
    }

    #[tokio::test]
    async fn every_response_gets_the_strict_set() {
        for path in ["/v1/prices", "/nowhere", "/docsearch"] {
            let (_, headers) = headers(path).await;
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
            assert_eq!(headers["x-frame-options"], "DENY", "{path}");
            assert_eq!(
                headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn the_docs_may_load_their_own_scripts_and_styles() {
        let (status, headers) = headers("/docs/").await;
        assert_eq!(status, StatusCode::OK);
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn hsts_only_over_tls() {
        let (_, plain) = headers("/v1/prices").await;
        assert!(!plain.contains_key("strict-transport-security"));

        for path in ["/v1/prices", "/nowhere", "/docs/"] {
            let mut request = Request::get(path).body(Body::empty()).unwrap();
            request.extensions_mut().insert(OverTls);
            let response = app().oneshot(request).await.unwrap();
            assert_eq!(
                response.headers()["strict-transport-security"],
                "max-age=63072000; includeSubDomains",
                "{path}"
            );
        }
    }

    #[test]
    fn only_the_docs_tree_is_the_docs() {
        assert!(is_docs("/docs"));
        assert!(is_docs("/docs/"));
        assert!(is_docs("/docs/swagger-ui.css"));
        assert!(!is_docs("/docsearch"));
        assert!(!is_docs("/v1/docs"));
    }
}
