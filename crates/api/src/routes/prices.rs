//! `GET /v1/prices`: the latest price of each requested asset with 24-hour statistics.

use axum::Json;
use axum::extract::State;
use marketd_domain::LatestPrice;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::params;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::wire::Timestamp;

/// Most symbols one request may name.
const MAX_SYMBOLS: usize = 100;

/// Query of `GET /v1/prices`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PricesQuery {
    /// Comma-separated symbols, e.g. `BTC,ETH` (at most 100, case-insensitive). Omit for
    /// every tracked asset.
    #[param(
        pattern = "^[A-Za-z0-9]{1,15}(,[A-Za-z0-9]{1,15}){0,99}$",
        example = "BTC,ETH"
    )]
    pub symbols: Option<String>,
}

/// The latest price of one asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceOut {
    #[schema(example = "BTC")]
    pub symbol: String,
    /// Last traded price in the quote currency.
    #[schema(example = 64_123.5)]
    pub price: f64,
    /// Absolute change over the last 24 hours.
    pub change_24h: f64,
    /// Change over the last 24 hours, in percent.
    pub change_24h_pct: f64,
    pub high_24h: f64,
    pub low_24h: f64,
    /// Traded volume over the last 24 hours, in units of the asset.
    pub volume_24h: f64,
    /// When the source observed this price.
    pub as_of: Timestamp,
    /// The source that supplied it.
    #[schema(example = "simulated")]
    pub source: String,
    /// True when `as_of` is older than the freshness bound (2 minutes): the value is the
    /// last known one, not a live one.
    pub stale: bool,
}

/// Facts about the whole answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricesMeta {
    /// Requested symbols with no price: not tracked, or no data yet.
    pub unknown: Vec<String>,
    /// True when any returned price is stale.
    pub stale: bool,
    /// The oldest `as_of` among the returned prices; `null` when none was returned.
    pub as_of: Option<Timestamp>,
}

/// Latest prices.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricesResponse {
    pub data: Vec<PriceOut>,
    pub meta: PricesMeta,
}

pub(crate) fn price_out(p: LatestPrice, now: i64, stale_after_ms: i64) -> PriceOut {
    PriceOut {
        change_24h: p.change_24h(),
        change_24h_pct: p.change_24h_pct(),
        stale: now - p.as_of > stale_after_ms,
        symbol: p.symbol,
        price: p.price,
        high_24h: p.high_24h,
        low_24h: p.low_24h,
        volume_24h: p.volume_24h,
        as_of: Timestamp(p.as_of),
        source: p.source,
    }
}

/// Latest prices.
///
/// The latest price of each requested asset with its 24-hour change, high, low and
/// volume, `as_of` and source. Symbols with no price are listed in `meta.unknown`
/// rather than failing the request. When a price is older than its freshness bound it is
/// still returned, flagged `stale`. Requires scope `prices:read`.
#[utoipa::path(get, path = "/v1/prices", tag = "prices", operation_id = "prices_list",
    security(("bearer" = ["prices:read"]), ("api_key" = ["prices:read"])),
    params(PricesQuery),
    responses(
        (status = 200, description = "Latest prices", body = PricesResponse),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid symbols", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn prices_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PricesQuery>,
) -> Result<Json<PricesResponse>, ApiError> {
    let symbols = match query.symbols.as_deref() {
        Some(raw) => params::symbol_list(raw, MAX_SYMBOLS)?,
        None => state
            .store
            .assets()
            .await?
            .into_iter()
            .map(|a| a.symbol)
            .collect(),
    };
    let prices = state.store.latest_prices(&symbols).await?;
    let unknown = symbols
        .iter()
        .filter(|s| !prices.iter().any(|p| &p.symbol == *s))
        .cloned()
        .collect();
    let now = state.now();
    let data: Vec<PriceOut> = prices
        .into_iter()
        .map(|p| price_out(p, now, state.stale_after_ms))
        .collect();
    let meta = PricesMeta {
        unknown,
        stale: data.iter().any(|p| p.stale),
        as_of: data.iter().map(|p| p.as_of).min(),
    };
    Ok(Json(PricesResponse { data, meta }))
}
