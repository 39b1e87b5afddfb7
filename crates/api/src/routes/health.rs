//! `/healthz` (the process is alive) and `/readyz` (it can serve: the database answers).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use marketd_ingest::resilience::BreakerState;

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
    /// Exchange sources this process is configured to ingest from, and their state. A
    /// failing source does not make the process unready: its data is served as stale.
    pub sources: Vec<SourceReadiness>,
}

/// One exchange source as readiness reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceReadiness {
    #[schema(example = "binance")]
    pub name: &'static str,
    /// Position among the configured sources, telling apart two of the same exchange.
    pub instance: usize,
    /// `closed` (requests flow), `open` (failing fast) or `half_open` (probing).
    #[schema(example = "closed")]
    pub circuit: &'static str,
    /// Upstream requests answered successfully, and those that failed, since start.
    pub requests_ok: u64,
    pub requests_failed: u64,
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
    let sources = state
        .ingest
        .sources
        .iter()
        .enumerate()
        .map(|(instance, source)| {
            let stats = source.stats();
            let r = &stats.requests;
            SourceReadiness {
                name: source.name(),
                instance,
                circuit: match stats.breaker {
                    BreakerState::Closed => "closed",
                    BreakerState::Open => "open",
                    BreakerState::HalfOpen => "half_open",
                },
                requests_ok: r.ok,
                requests_failed: r.client_error
                    + r.server_error
                    + r.rate_limited
                    + r.timeout
                    + r.network
                    + r.bad_payload
                    + r.too_large,
            }
        })
        .collect();
    Ok(Json(Readiness {
        status: "ready",
        database,
        sources,
    }))
}
