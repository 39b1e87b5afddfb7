//! `GET /metrics`: Prometheus text exposition of the service's requests, database pool
//! and exchange ingest.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use marketd_ingest::resilience::{BreakerState, SourceStats};
use marketd_storage::{POOL_WAIT_BUCKETS, PoolWaitStats};

use crate::metrics::{escape, family, gauge};
use crate::state::AppState;

/// Prometheus metrics.
///
/// Requests by route template, method and status, latency histograms, requests in flight,
/// authentication failures and rate-limit rejections; database pool connections; per
/// exchange source: requests by outcome, retries, calls refused by an open circuit, rows
/// accepted and rejected, last latency and circuit state; ingest lag per configured
/// series. Text exposition format 0.0.4. No API key needed. When the operator gives
/// metrics an address of their own (`MARKETD_METRICS_LISTEN`), they are served there
/// and this address answers 404.
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics_get",
    responses((status = 200, description = "Metrics in the Prometheus text format",
        body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "Metrics are served on a separate address",
        body = crate::Problem, content_type = "application/problem+json")))]
pub async fn metrics_get(State(state): State<AppState>) -> Response {
    if state.metrics_elsewhere {
        return crate::ApiError::NotFound.into_response();
    }
    render(&state).await
}

/// `/metrics` on its own address: the same text.
pub async fn metrics_only(State(state): State<AppState>) -> Response {
    render(&state).await
}

async fn render(state: &AppState) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    state.metrics.render(&mut out);
    let pool = state.store.pool_stats();
    family(
        &mut out,
        "marketd_db_pool_connections",
        "gauge",
        "Database pool connections by state.",
    );
    let busy = pool.size.saturating_sub(pool.idle);
    let _ = writeln!(out, "marketd_db_pool_connections{{state=\"busy\"}} {busy}");
    let _ = writeln!(
        out,
        "marketd_db_pool_connections{{state=\"idle\"}} {}",
        pool.idle
    );
    gauge(
        &mut out,
        "marketd_db_pool_max_connections",
        "Most connections the pool may open.",
        pool.max,
    );
    render_pool_waits(&mut out, &pool.waits);
    let cache = &state.response_cache;
    family(
        &mut out,
        "marketd_response_cache_requests_total",
        "counter",
        "Cacheable GET requests: hits and misses of the response cache, and the 304s among them.",
    );
    for (result, n) in [
        ("hit", &cache.hits),
        ("miss", &cache.misses),
        ("not_modified", &cache.not_modified),
    ] {
        let n = n.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "marketd_response_cache_requests_total{{result=\"{result}\"}} {n}"
        );
    }
    gauge(
        &mut out,
        "marketd_response_cache_bytes",
        "Bytes of keys and bodies the response cache holds.",
        cache.weighted_size(),
    );
    render_sources(state, &mut out);
    render_lag(state, &mut out).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn render_pool_waits(out: &mut String, waits: &PoolWaitStats) {
    family(
        out,
        "marketd_db_pool_wait_seconds",
        "histogram",
        "Time database work waited for a pooled connection (for a transaction, until its BEGIN returned), timed-out waits included.",
    );
    for (le, n) in POOL_WAIT_BUCKETS.iter().zip(waits.at_most) {
        let _ = writeln!(
            out,
            "marketd_db_pool_wait_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "marketd_db_pool_wait_seconds_bucket{{le=\"+Inf\"}} {}",
        waits.count
    );
    let _ = writeln!(
        out,
        "marketd_db_pool_wait_seconds_sum {}",
        waits.sum_micros as f64 / 1e6
    );
    let _ = writeln!(out, "marketd_db_pool_wait_seconds_count {}", waits.count);
}

/// A per-source family: name, type, help and how to read its value.
type SourceFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SourceStats) -> f64,
);

fn render_sources(state: &AppState, out: &mut String) {
    let sources = &state.ingest.sources;
    if sources.is_empty() {
        return;
    }
    // Two instances of one exchange (different base URLs) are told apart by position.
    let labelled: Vec<(String, SourceStats)> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                format!("source=\"{}\",instance=\"{i}\"", escape(s.name())),
                s.stats(),
            )
        })
        .collect();
    family(
        out,
        "marketd_ingest_requests_total",
        "counter",
        "Upstream requests by source and outcome.",
    );
    for (labels, stats) in &labelled {
        let r = &stats.requests;
        for (outcome, n) in [
            ("ok", r.ok),
            ("client_error", r.client_error),
            ("server_error", r.server_error),
            ("rate_limited", r.rate_limited),
            ("timeout", r.timeout),
            ("network", r.network),
            ("bad_payload", r.bad_payload),
            ("too_large", r.too_large),
        ] {
            let _ = writeln!(
                out,
                "marketd_ingest_requests_total{{{labels},outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    let per_source: [SourceFamily; 6] = [
        (
            "marketd_ingest_retries_total",
            "counter",
            "Upstream attempts after the first within one call.",
            |s| s.retries as f64,
        ),
        (
            "marketd_ingest_short_circuited_total",
            "counter",
            "Calls refused without a request because the circuit was open.",
            |s| s.short_circuited as f64,
        ),
        (
            "marketd_ingest_rows_accepted_total",
            "counter",
            "Upstream rows that passed every check.",
            |s| s.rows_accepted as f64,
        ),
        (
            "marketd_ingest_rows_rejected_total",
            "counter",
            "Upstream rows refused one by one.",
            |s| s.rows_rejected as f64,
        ),
        (
            "marketd_ingest_last_latency_seconds",
            "gauge",
            "Duration of the last completed upstream request.",
            |s| s.last_latency.map_or(0.0, |d| d.as_secs_f64()),
        ),
        (
            "marketd_ingest_circuit_open",
            "gauge",
            "Circuit breaker state: 0 closed, 1 open, 0.5 half-open (probing).",
            |s| match s.breaker {
                BreakerState::Closed => 0.0,
                BreakerState::Open => 1.0,
                BreakerState::HalfOpen => 0.5,
            },
        ),
    ];
    for (name, kind, help, value) in per_source {
        family(out, name, kind, help);
        for (labels, stats) in &labelled {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(stats));
        }
    }
}

async fn render_lag(state: &AppState, out: &mut String) {
    if state.ingest.series.is_empty() {
        return;
    }
    // A failed read leaves the family out rather than failing the scrape.
    let Ok(stored) = state.store.series(None).await else {
        return;
    };
    let now = state.now();
    family(
        out,
        "marketd_ingest_lag_seconds",
        "gauge",
        "Now minus the close of the newest closed candle, per configured series.",
    );
    for (symbol, interval) in &state.ingest.series {
        let newest = stored
            .iter()
            .find(|s| &s.symbol == symbol && s.interval == *interval)
            .map(|s| {
                s.last_open_time
                    .min(interval.bucket_start(now) - interval.millis())
            });
        if let Some(open_time) = newest {
            let lag = (now - (open_time + interval.millis())) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "marketd_ingest_lag_seconds{{symbol=\"{}\",interval=\"{interval}\"}} {lag}",
                escape(symbol)
            );
        }
    }
}
