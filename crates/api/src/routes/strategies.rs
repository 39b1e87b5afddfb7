//! `GET /v1/strategies`: the built-in strategies, their parameters and what they mean,
//! and the parsing of a strategy choice shared by the signal and backtest routes.

use std::collections::BTreeMap;

use axum::Json;
use marketd_domain::strategy::{Strategy, StrategyKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};

/// One parameter of a strategy.
#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyParamOut {
    #[schema(example = "fast")]
    pub name: String,
    pub description: String,
    /// `integer` or `number`.
    #[schema(example = "integer")]
    #[serde(rename = "type")]
    pub kind: String,
    pub default: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// A built-in strategy.
#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyOut {
    #[schema(example = "ema_cross")]
    pub name: String,
    /// What it measures and when it is bullish or bearish, in plain language.
    pub description: String,
    /// The rule with default parameters.
    pub rule: String,
    pub params: Vec<StrategyParamOut>,
    /// Closed candles needed before the first signal, with default parameters.
    pub warm_up_candles: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyList {
    pub data: Vec<StrategyOut>,
}

/// A strategy chosen by name with `name:value` parameters (`fast:10,slow:30`); each
/// problem is a field error on `strategy` or `params`.
pub fn parse_strategy(name: &str, params: Option<&str>) -> Result<Strategy, ApiError> {
    let kind = StrategyKind::from_name(name.trim()).ok_or_else(|| {
        let known: Vec<&str> = StrategyKind::all().iter().map(|k| k.name()).collect();
        ApiError::invalid(
            "strategy",
            format!("unknown strategy `{name}`; one of {}", known.join(", ")),
        )
    })?;
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for token in params
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match token
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim().parse::<f64>()))
        {
            Some((key, Ok(value))) if value.is_finite() => parsed.push((key.to_owned(), value)),
            _ => errors.push(FieldError {
                field: "params".into(),
                message: format!("`{token}` is not `name:number`"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Strategy::new(kind, &parsed).map_err(|e| ApiError::invalid("params", e.to_string()))
}

/// The resolved parameters as a map for responses.
pub fn params_map(strategy: &Strategy) -> BTreeMap<String, f64> {
    strategy
        .params()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Built-in strategies.
///
/// Every strategy marketd computes signals and backtests with: its parameters (type,
/// default, range) and a plain-language description of when it is bullish, bearish or
/// neutral. Requires scope `signals:read`.
#[utoipa::path(get, path = "/v1/strategies", tag = "signals", operation_id = "strategies_list",
    security(("bearer" = ["signals:read"]), ("api_key" = ["signals:read"])),
    responses(
        (status = 200, description = "The strategies", body = StrategyList),
    ))]
pub async fn strategies_list() -> Json<StrategyList> {
    let data = StrategyKind::all()
        .into_iter()
        .map(|kind| {
            let info = kind.info();
            let defaults = Strategy::new(kind, &[]);
            StrategyOut {
                name: info.name.to_owned(),
                description: info.description.to_owned(),
                rule: defaults.as_ref().map(Strategy::rule).unwrap_or_default(),
                warm_up_candles: defaults.as_ref().map_or(0, |s| s.warm_up() as u64),
                params: info
                    .params
                    .iter()
                    .map(|p| StrategyParamOut {
                        name: p.name.to_owned(),
                        description: p.description.to_owned(),
                        kind: if p.integer { "integer" } else { "number" }.to_owned(),
                        default: p.default,
                        minimum: p.min,
                        maximum: p.max,
                    })
                    .collect(),
            }
        })
        .collect();
    Json(StrategyList { data })
}
