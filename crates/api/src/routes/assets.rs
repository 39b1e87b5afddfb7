//! `GET /v1/assets` and `GET /v1/assets/{symbol}`: what marketd tracks and which candle
//! data it holds for each asset.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use marketd_domain::Interval;
use marketd_storage::{Asset, SeriesInfo, SourceChoice};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::{IntervalName, cursor, params};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::wire::{DataEnvelope, Timestamp};

const DEFAULT_LIMIT: u32 = 100;

/// Query of `GET /v1/assets`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetListQuery {
    /// Maximum assets per page, 1 to 1000 (default 100).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// Candles stored natively for one interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredSeries {
    pub interval: IntervalName,
    /// Open time of the first stored candle.
    pub first_open_time: Timestamp,
    /// Open time of the last stored candle.
    pub last_open_time: Timestamp,
}

/// A tracked asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetOut {
    /// Uppercase symbol.
    #[schema(example = "BTC")]
    pub symbol: String,
    #[schema(example = "Bitcoin")]
    pub name: String,
    /// Currency prices are quoted in.
    #[schema(example = "USD")]
    pub quote: String,
    /// Sources supplying this asset, in priority order.
    #[schema(example = json!(["simulated"]))]
    pub sources: Vec<String>,
    /// Intervals stored natively, with their data range.
    pub stored: Vec<StoredSeries>,
    /// Every interval `/v1/ohlcv` can serve for this asset: the stored ones and those
    /// derived from them.
    pub intervals: Vec<IntervalName>,
}

/// A page of assets.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    pub data: Vec<AssetOut>,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
}

fn asset_out(asset: Asset, series: &[SeriesInfo]) -> AssetOut {
    let stored: Vec<StoredSeries> = series
        .iter()
        .filter(|s| s.symbol == asset.symbol)
        .map(|s| StoredSeries {
            interval: s.interval.into(),
            first_open_time: Timestamp(s.first_open_time),
            last_open_time: Timestamp(s.last_open_time),
        })
        .collect();
    let intervals = Interval::ALL
        .into_iter()
        .filter(|i| {
            SourceChoice::pick(series, &asset.symbol, *i, i64::MAX) != SourceChoice::Unavailable
        })
        .map(IntervalName::from)
        .collect();
    AssetOut {
        symbol: asset.symbol,
        name: asset.name,
        quote: asset.quote,
        sources: asset.sources,
        stored,
        intervals,
    }
}

/// List tracked assets.
///
/// Every asset marketd tracks, ordered by symbol, with the intervals it can serve.
/// Requires scope `prices:read`.
#[utoipa::path(get, path = "/v1/assets", tag = "assets", operation_id = "assets_list",
    security(("bearer" = ["prices:read"]), ("api_key" = ["prices:read"])),
    params(AssetListQuery),
    responses(
        (status = 200, description = "A page of assets", body = AssetList,
            headers(("link" = String, description = "`<…>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn assets_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AssetListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            cursor::decode(c, 1)
                .ok_or(ApiError::InvalidCursor)?
                .remove(0),
        ),
        None => None,
    };
    let (assets, series) = tokio::try_join!(state.store.assets(), state.store.series(None))?;
    let mut remaining = assets.into_iter().filter(|a| {
        after
            .as_ref()
            .is_none_or(|after| a.symbol.as_str() > after.as_str())
    });
    let page: Vec<AssetOut> = remaining
        .by_ref()
        .take(limit)
        .map(|a| asset_out(a, &series))
        .collect();
    let next_cursor = match (remaining.next(), page.last()) {
        (Some(_), Some(last)) => Some(cursor::encode(&[&last.symbol])),
        _ => None,
    };
    let mut headers = HeaderMap::new();
    if let Some(next) = &next_cursor {
        let link = format!("</v1/assets?limit={limit}&cursor={next}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok((
        headers,
        Json(AssetList {
            data: page,
            next_cursor,
        }),
    )
        .into_response())
}

/// Get one asset.
///
/// The asset with its stored series and servable intervals. The symbol is
/// case-insensitive. Requires scope `prices:read`.
#[utoipa::path(get, path = "/v1/assets/{symbol}", tag = "assets", operation_id = "assets_get",
    security(("bearer" = ["prices:read"]), ("api_key" = ["prices:read"])),
    params(("symbol" = String, Path, description = "Asset symbol, e.g. `BTC`", pattern = "^[A-Za-z0-9]{1,15}$")),
    responses(
        (status = 200, description = "The asset", body = DataEnvelope<AssetOut>),
        (status = 404, description = "No tracked asset has this symbol", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The symbol is not well-formed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn assets_get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<DataEnvelope<AssetOut>>, ApiError> {
    let symbol = params::symbol("symbol", &raw).map_err(|e| ApiError::Validation(vec![e]))?;
    let (asset, series) = state
        .store
        .asset_with_series(symbol.as_str())
        .await?
        .ok_or_else(|| ApiError::UnknownSymbol(symbol.to_string()))?;
    Ok(Json(DataEnvelope {
        data: asset_out(asset, &series),
    }))
}
