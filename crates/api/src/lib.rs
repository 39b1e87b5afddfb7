//! marketd's HTTP API: routes, extractors, middleware and the OpenAPI document.

pub mod alerts;
pub mod auth;
pub mod backtests;
pub mod error;
pub mod extract;
pub mod limiter;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod price_stream;
pub mod routes;
pub mod signal_engine;
pub mod state;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, Problem, ProblemType};
pub use state::AppState;

use middleware::auth::X_API_KEY;

use routes::{assets, audit, health, keys, ohlcv, prices};

/// Every route with its OpenAPI description. Routes are registered here only, through
/// `routes!`, so a handler without a spec cannot be served.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health_get))
        .routes(routes!(health::ready_get))
        .routes(routes!(routes::metrics::metrics_get))
        .routes(routes!(assets::assets_list))
        .routes(routes!(assets::assets_get))
        .routes(routes!(prices::prices_list))
        .routes(routes!(routes::stream::stream_prices))
        .routes(routes!(ohlcv::ohlcv_get))
        .routes(routes!(routes::indicators::indicators_get))
        .routes(routes!(keys::keys_create, keys::keys_list))
        .routes(routes!(keys::keys_get, keys::keys_revoke))
        .routes(routes!(keys::keys_rotate))
        .routes(routes!(keys::keys_self))
        .routes(routes!(audit::audit_list))
        .routes(routes!(routes::strategies::strategies_list))
        .routes(routes!(routes::signals::signals_list))
        .routes(routes!(routes::signals::signals_history))
        .routes(routes!(routes::backtests::backtests_create))
        .routes(routes!(
            routes::backtests::backtests_get,
            routes::backtests::backtests_cancel
        ))
        .routes(routes!(routes::backtests::backtests_trades))
}

/// Every route template the app serves, as axum's `MatchedPath` reports them.
pub fn route_templates() -> Vec<String> {
    let mut templates: Vec<String> = openapi().paths.paths.into_keys().collect();
    templates.extend(["/openapi.json", "/docs", "/docs/", "/docs/{*rest}"].map(String::from));
    templates
}

/// The OpenAPI document, as served at `/openapi.json` and committed in `openapi/`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    openapi::document_auth_responses(&mut doc);
    openapi::document_transport_responses(&mut doc);
    doc
}

#[cfg(not(feature = "insecure-no-auth-for-benchmarks"))]
fn with_access_control(router: OpenApiAxumRouter, state: &AppState) -> OpenApiAxumRouter {
    let access = middleware::auth::Access::of(state);
    // Authentication hands authenticated requests straight to rate limiting, and rate
    // limiting to the response cache: one middleware boundary per request instead of
    // three, and a cached answer never skips a scope check or a quota.
    router.route_layer(from_fn_with_state(access, middleware::auth::authenticate))
}

#[cfg(feature = "insecure-no-auth-for-benchmarks")]
fn with_access_control(router: OpenApiAxumRouter, state: &AppState) -> OpenApiAxumRouter {
    tracing::error!("built without authentication or rate limits: for benchmarks only");
    router.route_layer(from_fn_with_state(
        Arc::clone(&state.response_cache),
        middleware::response_cache::cache,
    ))
}

type OpenApiAxumRouter = Router<AppState>;

/// A handler panicked: answer 500 without the panic message, which may hold request data.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("a request handler panicked");
    Problem::new(ProblemType::InternalError, "an unexpected error occurred")
        .into_response_with(None)
}

/// `/metrics` alone, for an address of its own that the public never reaches; anything
/// else there is a 404.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(routes::metrics::metrics_only),
        )
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        .layer(middleware::problem::layer())
}

/// The complete application: routes, docs and the middleware stack.
pub fn app(state: AppState, settings: &middleware::Settings) -> Router {
    let (router, _) = api_router().split_for_parts();
    // Route layers run after routing, so they know the route template and its required
    // scope: authenticate, then rate-limit the key, then the response cache.
    let metrics = Arc::clone(&state.metrics);
    let auth = Arc::clone(&state.auth);
    let router = with_access_control(router, &state)
        .merge(
            SwaggerUi::new(middleware::security_headers::DOCS_PREFIX)
                .url("/openapi.json", openapi()),
        )
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    // Outermost first (DESIGN §5: request id, trace, metrics, timeout, body limit,
    // compression, CORS, then auth and rate limiting as route layers):
    // - credentials are marked sensitive before anything can log them;
    // - the request id comes next so every later layer, log line and problem carries it;
    // - metrics see every answer, problems and timeouts included, by route template;
    // - security headers wrap everything else, so errors and panics get them too;
    // - problem rendering sits inside those (and outside the router, to also see axum's
    //   own 404/405) and completes the problems of every layer below it;
    // - an oversized head is refused before anything else reads it;
    // - a key in the URL is refused before the trace layer records the URL;
    // - the time limits run inside the trace span, so a timeout is logged with its
    //   request, and outside everything that reads the body, so the body deadline
    //   covers every reader;
    // - the body limit comes before anything reads the body;
    // - compression sees responses in their final shape, CORS headers included;
    // - CORS sits outside authentication, which is a route layer: a preflight never
    //   reaches it, and a 401, 403 or 429 stays readable to a browser script.
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                X_API_KEY,
            ]))
            .layer(middleware::request_id::layer())
            .layer(middleware::metrics::layer(metrics))
            .layer(middleware::security_headers::layer())
            .layer(middleware::problem::layer())
            // Inside problem rendering, so a panic becomes a 500 problem with the request id.
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(middleware::header_limit::layer(settings.header_limit))
            .layer(middleware::credentials::layer())
            .layer(middleware::client_ip::layer(auth))
            .layer(middleware::trace::layer())
            .layer(settings.timeouts)
            .layer(middleware::body_limit::layer(settings.body_limit))
            // The limit above is the only one: axum's extractors would otherwise cap
            // bodies at their own 2 MB whatever the setting says.
            .layer(DefaultBodyLimit::disable())
            .layer(middleware::compression::layer())
            .option_layer(middleware::cors::layer(&settings.cors_origins)),
    )
}
