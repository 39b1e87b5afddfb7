//! marketd's HTTP API: routes, extractors, middleware and the OpenAPI document.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod wire;

use axum::Router;
use axum::middleware::from_fn;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, Problem, ProblemType};
pub use state::AppState;

use routes::{assets, health, ohlcv, prices};

/// Every route with its OpenAPI description. Routes are registered here only, through
/// `routes!`, so a handler without a spec cannot be served.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health_get))
        .routes(routes!(health::ready_get))
        .routes(routes!(assets::assets_list))
        .routes(routes!(assets::assets_get))
        .routes(routes!(prices::prices_list))
        .routes(routes!(ohlcv::ohlcv_get))
        .routes(routes!(routes::indicators::indicators_get))
}

/// The OpenAPI document, as served at `/openapi.json` and committed in `openapi/`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The complete application: routes, docs and the middleware stack.
pub fn app(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let router = router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    // Outermost first. The request id comes before everything so every later layer, log
    // line and problem document can carry it; problem rendering sits inside it so it can
    // read the id, and outside the router so it also sees axum's own 404/405 responses.
    router.layer(
        ServiceBuilder::new()
            .layer(from_fn(middleware::request_id::request_id))
            .layer(TraceLayer::new_for_http())
            .layer(from_fn(middleware::problem::problem_details)),
    )
}
