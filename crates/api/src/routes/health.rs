//! `/healthz` (the process is alive) and `/readyz` (it can serve: the database answers).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Readiness and the checks behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every check passed.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The database backend: `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    pub database: &'static str,
}

/// Liveness probe.
///
/// Answers 200 whenever the process can serve HTTP; it checks no dependency, so an
/// orchestrator never restarts marketd because the database is down. No API key needed.
#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "health_get",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn health_get() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness probe.
///
/// Answers 200 when the database answers a query, 503 (with `Retry-After`) when it does
/// not, so load balancers route around an instance that cannot serve data. No API key needed.
#[utoipa::path(get, path = "/readyz", tag = "ops", operation_id = "ready_get",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "The database is unavailable", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn ready_get(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let database = match state.store.backend() {
        marketd_storage::Backend::Sqlite => "sqlite",
        marketd_storage::Backend::Postgres => "postgres",
    };
    state.store.ping().await.map_err(|err| {
        // Any failure to answer means "not ready", whatever its cause.
        ApiError::Store(match err {
            marketd_storage::StoreError::Database(e) => marketd_storage::StoreError::Unavailable(e),
            other => other,
        })
    })?;
    Ok(Json(Readiness {
        status: "ready",
        database,
    }))
}
