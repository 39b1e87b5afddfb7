//! `POST /v1/backtests`, `GET /v1/backtests/{id}`, `GET /v1/backtests/{id}/trades` and
//! `DELETE /v1/backtests/{id}`: backtests as asynchronous jobs.
//!
//! Execution model: long only, all in. The signal computed at the close of candle t is
//! traded at the open of candle t+1: bullish while flat buys, bearish while long sells,
//! neutral holds. Fills pay `slippage_bps` against the open and `fee_bps` of the notional.
//! Equity is marked at each close; metrics are annualised for the interval.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use marketd_domain::Interval;
use marketd_storage::{BacktestJob, JobStatus, SourceChoice, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::strategies::parse_strategy;
use super::{IntervalName, cursor, params};
use crate::auth::Principal;
use crate::backtests::{BacktestSpec, StoredResult};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::wire::{DataEnvelope, Timestamp};

/// Most candles one backtest may cover.
pub const MAX_BACKTEST_CANDLES: i64 = 100_000;
/// Queued and running backtests one key may have.
pub const MAX_ACTIVE_BACKTESTS: u64 = 4;
const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
const TRADES_IN_RESULT: usize = 100;

/// Body of `POST /v1/backtests`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
// A whole example: an inlined field schema (the timestamps) carries none of its own.
#[schema(example = json!({
    "symbol": "BTC",
    "interval": "1h",
    "strategy": "ema_cross",
    "params": {"fast": 12, "slow": 26},
    "start": "2026-06-01T00:00:00Z",
    "end": "2026-11-01T00:00:00Z"
}))]
pub struct BacktestRequest {
    #[schema(example = "BTC", pattern = "^[A-Za-z0-9]{1,15}$")]
    pub symbol: String,
    pub interval: IntervalName,
    /// A strategy from `/v1/strategies`.
    #[schema(example = "ema_cross")]
    pub strategy: String,
    /// Strategy parameters; omitted ones take their defaults.
    #[schema(example = json!({"fast": 12, "slow": 26}))]
    pub params: Option<BTreeMap<String, f64>>,
    /// First candle traded (RFC 3339 or Unix ms); signals are warmed up on earlier candles.
    #[schema(value_type = super::params::TimestampInput, inline)]
    pub start: String,
    /// End, exclusive; at most 100000 candles after `start`.
    #[schema(value_type = super::params::TimestampInput, inline)]
    pub end: String,
    /// Fee per fill in basis points, 0 to 1000 (default 10).
    #[validate(range(min = 0.0, max = 1000.0, message = "must be between 0 and 1000"))]
    #[schema(minimum = 0, maximum = 1000)]
    pub fee_bps: Option<f64>,
    /// Slippage per fill in basis points, 0 to 1000 (default 5).
    #[validate(range(min = 0.0, max = 1000.0, message = "must be between 0 and 1000"))]
    #[schema(minimum = 0, maximum = 1000)]
    pub slippage_bps: Option<f64>,
    /// Starting cash, above 0 and at most 1e12 (default 10000).
    #[validate(range(
        exclusive_min = 0.0,
        max = 1e12,
        message = "must be above 0 and at most 1e12"
    ))]
    #[schema(exclusive_minimum = 0, maximum = 1e12)]
    pub initial_cash: Option<f64>,
}

/// One trade.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeOut {
    pub entry_time: Timestamp,
    pub entry_price: f64,
    /// `null` while the position was still open at the end (marked to the last close).
    pub exit_time: Option<Timestamp>,
    pub exit_price: Option<f64>,
    pub quantity: f64,
    pub pnl: f64,
    pub return_pct: f64,
    pub fees: f64,
}

/// A point of the equity curve.
#[derive(Debug, Serialize, ToSchema)]
pub struct EquityPoint {
    pub time: Timestamp,
    pub equity: f64,
}

/// The outcome of a finished backtest.
#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestResultOut {
    /// Final equity over initial cash, minus one.
    pub total_return: f64,
    pub cagr: f64,
    /// Largest peak-to-trough fall of equity, as a positive fraction.
    pub max_drawdown: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub trade_count: u64,
    pub win_rate: f64,
    /// Fraction of candles with a position held.
    pub exposure: f64,
    pub fees_paid: f64,
    pub final_equity: f64,
    /// At most 500 points, evenly spaced, first and last included.
    pub equity_curve: Vec<EquityPoint>,
    /// The first 100 trades; the rest at `/v1/backtests/{id}/trades`.
    pub trades: Vec<TradeOut>,
    pub trades_total: u64,
}

/// A backtest job.
#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestOut {
    #[schema(example = "01937d3e-8f5a-7c3b-9a1e-2b4c6d8e0f12")]
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "queued")]
    pub status: String,
    pub symbol: String,
    pub interval: String,
    pub strategy: String,
    pub params: BTreeMap<String, f64>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub initial_cash: f64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Why a failed job failed.
    pub error: Option<String>,
    pub result: Option<BacktestResultOut>,
}

fn trade_out(t: &crate::backtests::StoredTrade) -> TradeOut {
    TradeOut {
        entry_time: Timestamp(t.entry_time),
        entry_price: t.entry_price,
        exit_time: t.exit_time.map(Timestamp),
        exit_price: t.exit_price,
        quantity: t.quantity,
        pnl: t.pnl,
        return_pct: t.return_pct,
        fees: t.fees,
    }
}

fn stored_result(job: &BacktestJob) -> Option<StoredResult> {
    job.result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
}

fn job_out(job: &BacktestJob) -> Result<BacktestOut, ApiError> {
    let spec: BacktestSpec = serde_json::from_str(&job.request)
        .map_err(|e| ApiError::Internal(format!("stored backtest {}: {e}", job.id)))?;
    let result = stored_result(job).map(|r| BacktestResultOut {
        total_return: r.total_return,
        cagr: r.cagr,
        max_drawdown: r.max_drawdown,
        sharpe: r.sharpe,
        sortino: r.sortino,
        trade_count: r.trade_count as u64,
        win_rate: r.win_rate,
        exposure: r.exposure,
        fees_paid: r.fees_paid,
        final_equity: r.final_equity,
        equity_curve: r
            .equity_curve
            .iter()
            .map(|(t, e)| EquityPoint {
                time: Timestamp(*t),
                equity: *e,
            })
            .collect(),
        trades: r
            .trades
            .iter()
            .take(TRADES_IN_RESULT)
            .map(trade_out)
            .collect(),
        trades_total: r.trades.len() as u64,
    });
    Ok(BacktestOut {
        id: job.id.clone(),
        status: job.status.as_str().to_owned(),
        symbol: spec.symbol,
        interval: spec.interval,
        strategy: spec.strategy,
        params: spec.params.into_iter().collect(),
        start: Timestamp(spec.start),
        end: Timestamp(spec.end),
        fee_bps: spec.fee_bps,
        slippage_bps: spec.slippage_bps,
        initial_cash: spec.initial_cash,
        created_at: Timestamp(job.created_at),
        started_at: job.started_at.map(Timestamp),
        finished_at: job.finished_at.map(Timestamp),
        error: job.error.clone(),
        result,
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = Some(value.as_bytes())
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.iter().all(|b| (0x21..=0x7e).contains(b)))
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Validates a request into the spec a worker runs.
async fn spec_of(state: &AppState, body: &BacktestRequest) -> Result<BacktestSpec, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let symbol =
        params::symbol("symbol", &body.symbol).map_err(|e| ApiError::Validation(vec![e]))?;
    let params_text: Vec<String> = body
        .params
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    let strategy = parse_strategy(&body.strategy, Some(&params_text.join(",")))?;
    let start = params::timestamp("start", &body.start)
        .map_err(|e| errors.push(e))
        .ok();
    let end = params::timestamp("end", &body.end)
        .map_err(|e| errors.push(e))
        .ok();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::invalid("start", "must be a timestamp"));
    };
    let interval: Interval = body.interval.into();
    let start = interval.bucket_start(start);
    if start >= end {
        return Err(ApiError::InvalidRange {
            field: "start",
            message: "must be before `end`",
        });
    }
    if (end - start) / interval.millis() > MAX_BACKTEST_CANDLES {
        return Err(ApiError::RangeTooLarge(format!(
            "a backtest covers at most {MAX_BACKTEST_CANDLES} {interval} candles; narrow start..end or use a longer interval"
        )));
    }
    let symbol = symbol.to_string();
    if state.store.asset(&symbol).await?.is_none() {
        return Err(ApiError::UnknownSymbol(symbol));
    }
    let stored = state.store.series(Some(&symbol)).await?;
    if SourceChoice::pick(&stored, &symbol, interval, start) == SourceChoice::Unavailable {
        return Err(ApiError::invalid(
            "interval",
            format!("no stored candles of {symbol} can supply {interval}"),
        ));
    }
    Ok(BacktestSpec {
        symbol,
        interval: interval.as_str().to_owned(),
        strategy: strategy.kind().name().to_owned(),
        params: strategy
            .params()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        start,
        end,
        fee_bps: body.fee_bps.unwrap_or(10.0),
        slippage_bps: body.slippage_bps.unwrap_or(5.0),
        initial_cash: body.initial_cash.unwrap_or(10_000.0),
    })
}

fn accepted(job: &BacktestJob, status: StatusCode) -> Result<Response, ApiError> {
    let mut response = (
        status,
        Json(DataEnvelope {
            data: job_out(job)?,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/backtests/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Start a backtest.
///
/// Queues a backtest of a strategy over `[start, end)` and answers at once with `202` and
/// the job (`Location` names it); poll `GET /v1/backtests/{id}`. With an
/// `Idempotency-Key` header, repeating the same request returns the same job for 24 hours;
/// the same key with a different body is a 422. At most 100000 candles per backtest and 4
/// queued or running backtests per key (429 beyond). Requires scope `backtests:run`.
#[utoipa::path(post, path = "/v1/backtests", tag = "backtests", operation_id = "backtests_create",
    request_body = BacktestRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "Makes retries safe: the same key and body return the same job for 24 hours (1 to 255 visible ASCII characters)")),
    security(("bearer" = ["backtests:run"]), ("api_key" = ["backtests:run"])),
    responses(
        (status = 202, description = "The queued job", body = DataEnvelope<BacktestOut>,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 200, description = "The job this idempotency key already started", body = DataEnvelope<BacktestOut>),
        (status = 400, description = "Malformed body or a reversed range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown symbol", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a range too large, or an idempotency key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn backtests_create(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BacktestRequest>,
) -> Result<Response, ApiError> {
    let idempotency = idempotency_key(&headers)?;
    let spec = spec_of(&state, &body).await?;
    let request = serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    let request_hash: String = Sha256::digest(request.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = state.now();
    if let Some(key) = &idempotency
        && let Some(existing) = state
            .store
            .backtest_by_idempotency_key(&caller.id, key, now)
            .await?
    {
        if existing.request_hash != request_hash {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "already used with a different request; use a new key",
            ));
        }
        return accepted(&existing, StatusCode::OK);
    }
    if state.store.active_backtests(&caller.id).await? >= MAX_ACTIVE_BACKTESTS {
        return Err(ApiError::TooManyJobs(format!(
            "at most {MAX_ACTIVE_BACKTESTS} queued or running backtests per key; wait for one to finish"
        )));
    }
    let job = BacktestJob {
        id: uuid::Uuid::now_v7().to_string(),
        key_id: caller.id.clone(),
        status: JobStatus::Queued,
        request,
        request_hash,
        idempotency_until: idempotency.as_ref().map(|_| now + IDEMPOTENCY_TTL_MS),
        idempotency_key: idempotency.clone(),
        created_at: now,
        started_at: None,
        finished_at: None,
        error: None,
        result: None,
    };
    match state.store.insert_backtest(&job).await {
        Ok(()) => {}
        // Two concurrent requests with one idempotency key: the other one won.
        Err(StoreError::Conflict) => {
            let key = idempotency.unwrap_or_default();
            let existing = state
                .store
                .backtest_by_idempotency_key(&caller.id, &key, now)
                .await?
                .ok_or_else(|| ApiError::Conflict("the idempotency key is in use".into()))?;
            if existing.request_hash != job.request_hash {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "already used with a different request; use a new key",
                ));
            }
            return accepted(&existing, StatusCode::OK);
        }
        Err(err) => return Err(err.into()),
    }
    state.jobs.wake();
    accepted(&job, StatusCode::ACCEPTED)
}

async fn own_job(state: &AppState, caller: &str, id: &str) -> Result<BacktestJob, ApiError> {
    let valid = uuid::Uuid::parse_str(id).is_ok();
    let job = if valid {
        state.store.backtest(id).await?
    } else {
        None
    };
    // Another key's job does not exist, as far as this caller can tell.
    job.filter(|j| j.key_id == caller).ok_or(ApiError::NotFound)
}

/// A backtest job.
///
/// Status (`queued`, `running`, `succeeded`, `failed`, `cancelled`) and, when done, the
/// result: total return, CAGR, max drawdown, Sharpe and Sortino, trade count, win rate,
/// exposure, fees, the equity curve (at most 500 points) and the first 100 trades. Only
/// the key that started it can see it. Requires scope `backtests:run`.
#[utoipa::path(get, path = "/v1/backtests/{id}", tag = "backtests", operation_id = "backtests_get",
    params(("id" = String, Path, description = "Job id")),
    security(("bearer" = ["backtests:run"]), ("api_key" = ["backtests:run"])),
    responses(
        (status = 200, description = "The job", body = DataEnvelope<BacktestOut>),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn backtests_get(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = own_job(&state, &caller.id, &id).await?;
    Ok(Json(DataEnvelope {
        data: job_out(&job)?,
    })
    .into_response())
}

/// Cancel a backtest.
///
/// A queued or running job becomes `cancelled`; a finished one is returned unchanged.
/// Requires scope `backtests:run`.
#[utoipa::path(delete, path = "/v1/backtests/{id}", tag = "backtests", operation_id = "backtests_cancel",
    params(("id" = String, Path, description = "Job id")),
    security(("bearer" = ["backtests:run"]), ("api_key" = ["backtests:run"])),
    responses(
        (status = 200, description = "The job", body = DataEnvelope<BacktestOut>),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn backtests_cancel(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = own_job(&state, &caller.id, &id).await?;
    let job = state
        .store
        .cancel_backtest(&job.id, state.now())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(DataEnvelope {
        data: job_out(&job)?,
    })
    .into_response())
}

/// Query of `GET /v1/backtests/{id}/trades`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TradesQuery {
    /// Trades per page, 1 to 1000 (default 100).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradeList {
    pub data: Vec<TradeOut>,
    pub next_cursor: Option<String>,
}

/// A backtest's trades.
///
/// Every trade of a succeeded backtest, in order, cursor-paginated. Requires scope
/// `backtests:run`.
#[utoipa::path(get, path = "/v1/backtests/{id}/trades", tag = "backtests", operation_id = "backtests_trades",
    params(("id" = String, Path, description = "Job id"), TradesQuery),
    security(("bearer" = ["backtests:run"]), ("api_key" = ["backtests:run"])),
    responses(
        (status = 200, description = "A page of trades", body = TradeList),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not succeeded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn backtests_trades(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<TradesQuery>,
) -> Result<Response, ApiError> {
    let job = own_job(&state, &caller.id, &id).await?;
    let result = stored_result(&job)
        .ok_or_else(|| ApiError::Conflict(format!("the backtest is {}", job.status.as_str())))?;
    let offset = match query.cursor.as_deref() {
        None => 0,
        Some(raw) => {
            let fields = cursor::decode(raw, 2).ok_or(ApiError::InvalidCursor)?;
            if fields[0] != job.id {
                return Err(ApiError::InvalidCursor);
            }
            fields[1]
                .parse::<usize>()
                .map_err(|_| ApiError::InvalidCursor)?
        }
    };
    let limit = query.limit.unwrap_or(100) as usize;
    let data: Vec<TradeOut> = result
        .trades
        .iter()
        .skip(offset)
        .take(limit)
        .map(trade_out)
        .collect();
    let next = offset + data.len();
    let next_cursor =
        (next < result.trades.len()).then(|| cursor::encode(&[&job.id, &next.to_string()]));
    Ok(Json(TradeList { data, next_cursor }).into_response())
}
