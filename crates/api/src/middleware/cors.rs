//! Cross-origin access for browser front-ends served from the configured origins, and
//! for no one else: with no origins configured the layer is left out and no response
//! carries a CORS header.
//!
//! A preflight is answered here, before authentication, because browsers send it
//! without credentials; a 401 to it would make every cross-origin call fail. The
//! headers a browser script needs to read (rate limits, request id, `Location`, `ETag`)
//! are exposed. Credentials are headers, not cookies, so cross-origin cookies stay off.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::X_API_KEY;
use super::request_id::X_REQUEST_ID;

/// How long a browser may reuse a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The layer for `origins`, or none when the list is empty.
pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                X_API_KEY,
                header::CONTENT_TYPE,
                IDEMPOTENCY_KEY,
                X_REQUEST_ID.clone(),
            ])
            .expose_headers([
                RATELIMIT,
                RATELIMIT_POLICY,
                header::RETRY_AFTER,
                X_REQUEST_ID.clone(),
                header::LOCATION,
                header::ETAG,
            ])
            .max_age(MAX_AGE),
    )
}

/// Parses a comma-separated list of origins (`https://app.example.com`,
/// `http://localhost:5173`) into the form browsers send in `Origin`.
pub fn parse_origins(raw: &str) -> Result<Vec<HeaderValue>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_origin)
        .collect()
}

fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let bad =
        |why: &str| format!("{raw:?} is not an origin such as https://app.example.com: {why}");
    if raw == "*" {
        return Err(bad("list the origins; a wildcard is not allowed"));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("an origin has no path, query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("an origin has no user name or password"));
    }
    // Browsers send the serialised origin: lowercase host, default port left out.
    HeaderValue::from_str(&url.origin().ascii_serialization()).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::middleware::from_fn;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Stands in for authentication: refuses everything it sees.
    async fn refuse(_: axum::extract::Request, _: axum::middleware::Next) -> Response {
        StatusCode::UNAUTHORIZED.into_response()
    }

    fn app(origins: &str) -> Router {
        let router = Router::new()
            .route("/v1/prices", get(|| async { "prices" }))
            .route_layer(from_fn(refuse));
        match layer(&parse_origins(origins).unwrap()) {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::options("/v1/prices")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization, x-request-id",
            )
            .body(Body::empty())
            .unwrap()
    }

    fn get_from(origin: &str) -> Request<Body> {
        Request::get("/v1/prices")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    }

    fn cors_headers(response: &Response) -> Vec<String> {
        response
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }

    #[tokio::test]
    async fn a_preflight_from_an_allowed_origin_is_answered_before_auth() {
        let response = app("https://app.example.com")
            .oneshot(preflight("https://app.example.com"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        for method in ["GET", "POST", "DELETE", "OPTIONS"] {
            assert!(methods.contains(method), "{methods}");
        }
        let allowed = headers["access-control-allow-headers"].to_str().unwrap();
        for name in [
            "authorization",
            "x-api-key",
            "content-type",
            "idempotency-key",
            "x-request-id",
        ] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert!(headers.get("access-control-allow-credentials").is_none());
    }

    #[tokio::test]
    async fn responses_to_an_allowed_origin_expose_what_scripts_need() {
        let response = app("https://app.example.com")
            .oneshot(get_from("https://app.example.com"))
            .await
            .unwrap();
        // The refusal still reaches the browser's script, readable.
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        let exposed = headers["access-control-expose-headers"].to_str().unwrap();
        for name in [
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
            "x-request-id",
            "location",
            "etag",
        ] {
            assert!(exposed.contains(name), "{exposed}");
        }
    }

    #[tokio::test]
    async fn other_origins_get_no_grant() {
        let app = app("https://app.example.com");
        for request in [
            preflight("https://evil.example"),
            get_from("https://evil.example"),
            get_from("https://app.example.com.evil.example"),
        ] {
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none()
            );
        }
    }

    #[tokio::test]
    async fn no_origins_no_cors_headers() {
        for request in [
            preflight("https://app.example.com"),
            get_from("https://app.example.com"),
        ] {
            let response = app("").oneshot(request).await.unwrap();
            assert_eq!(cors_headers(&response), Vec::<String>::new());
        }
    }

    #[test]
    fn origins_are_checked_and_normalised() {
        let parsed =
            parse_origins(" https://App.Example.com , http://localhost:5173,https://x.example:443")
                .unwrap();
        assert_eq!(
            parsed,
            [
                "https://app.example.com",
                "http://localhost:5173",
                "https://x.example"
            ]
        );
        assert!(parse_origins("").unwrap().is_empty());
        for bad in [
            "*",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://u:p@app.example.com",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
