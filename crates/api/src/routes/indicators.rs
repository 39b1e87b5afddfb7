//! `GET /v1/indicators/{symbol}`: technical indicator series over the candles of any
//! interval, paged exactly like `/v1/ohlcv` and warmed up so the first value returned
//! equals the value computed over the whole stored history.
//!
//! Column names: each requested output is a field of every row, named after the
//! canonical token with `:` replaced by `_`, followed by the output's suffix if it has
//! one: `rsi:14` → `rsi_14`; `macd:12:26:9` → `macd_12_26_9`, `macd_12_26_9_signal`,
//! `macd_12_26_9_hist`; `bbands:20:1.5` → `bbands_20_1.5_upper`, …; `obv` → `obv`.
//! Tokens that are the same indicator once canonical (`rsi` and `rsi:14`) are computed
//! once, so names never collide.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use marketd_domain::indicators::{
    CandleColumns, IndicatorKind, IndicatorSpec, MAX_INDICATORS, ParamInfo, Series, WarmUp,
    parse_indicators,
};
use marketd_domain::{Bar, Candle, Interval, write_rfc3339_ms};
use marketd_storage::{BarPage, CandleRange, SeriesInfo, SourceChoice, Store, read_bar_values};
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use validator::Validate;

use super::number_pattern::int_range;
use super::window::{self, WindowQuery};
use super::{IntervalName, params};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::wire::{PAGE_START, Timestamp, end_page};

const DEFAULT_LIMIT: u32 = 500;
/// Candles read per round trip while loading warm-up history.
const WARM_UP_CHUNK: u32 = 10_000;

/// Query of `GET /v1/indicators/{symbol}` (`indicators` is documented by
/// [`IndicatorsParam`], which carries its generated pattern).
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IndicatorsQuery {
    #[param(ignore)]
    pub indicators: String,
    /// Candle interval (default `1h`).
    pub interval: Option<IntervalName>,
    /// First bucket to include: RFC 3339 or Unix milliseconds. A bucket is included when
    /// it opens at or after `start`. Default: `limit` buckets before `end`.
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-01T00:00:00Z")]
    pub start: Option<String>,
    /// Exclusive end: buckets opening before it are included. RFC 3339 or Unix
    /// milliseconds. Default: just after the bucket in progress.
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-02T00:00:00Z")]
    pub end: Option<String>,
    /// Rows per page, 1 to 1000 (default 500).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page. It carries the window, so `start` and `end`
    /// are ignored when it is given.
    pub cursor: Option<String>,
}

/// The `indicators` query parameter, documented by hand so its pattern is generated from
/// the domain's own list of indicators and parameter ranges.
#[derive(Debug)]
pub struct IndicatorsParam;

impl IntoParams for IndicatorsParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(indicators_pattern()))
            .build();
        vec![
            ParameterBuilder::new()
                .name("indicators")
                .parameter_in(ParameterIn::Query)
                .required(Required::True)
                .description(Some(indicators_description()))
                .schema(Some(schema))
                .example(Some(serde_json::json!(
                    "rsi:14,ema:50,macd:12:26:9,bbands:20:2"
                )))
                .build(),
        ]
    }
}

fn indicators_description() -> String {
    let mut text = format!(
        "Comma-separated indicators, at most {MAX_INDICATORS}, each `name[:param]*` with \
         positional parameters; an omitted or empty parameter takes its default. Names are \
         case-insensitive; spaces around names and parameters are ignored; only letters, \
         digits, `:`, `.`, `-`, `,` and spaces may appear. Every value matching the pattern \
         is accepted, every other is refused with 422 `validation_failed` naming the token. \
         Indicators:\n"
    );
    for kind in IndicatorKind::all() {
        let info = kind.info();
        let params: Vec<String> = info
            .params
            .iter()
            .map(|p| {
                format!(
                    "{} ({}, {}, default {})",
                    p.name,
                    p.description,
                    range(p),
                    p.default
                )
            })
            .collect();
        let _ = writeln!(
            text,
            "- `{}`: {}. Parameters: {}. Outputs: {}.",
            info.name,
            info.title,
            if params.is_empty() {
                "none".to_owned()
            } else {
                params.join("; ")
            },
            info.outputs.join(", ")
        );
    }
    text
}

fn range(p: &ParamInfo) -> String {
    if p.integer {
        format!("whole number {} to {}", p.min, p.max)
    } else {
        format!("{} to {}", p.min, p.max)
    }
}

/// One row: `open_time` and one field per output column, null where undefined. The
/// fields are named by the request, so this type stands for the schema; rows are written
/// by [`page_json`].
#[derive(Debug)]
pub struct IndicatorRow;

impl PartialSchema for IndicatorRow {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "One candle's indicator values: `open_time`, then one field per output \
                 column (see `meta.columns`), a number or null where the indicator is \
                 undefined (before its lookback).",
            ))
            .property(
                "open_time",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("Start of the candle's bucket (inclusive)."))
                    .examples([serde_json::json!("2024-01-01T00:00:00Z")]),
            )
            .required("open_time")
            .additional_properties(Some(AdditionalProperties::RefOr(
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
                    .build()
                    .into(),
            )))
            .examples([serde_json::json!({
                "open_time": "2024-01-01T00:00:00Z",
                "rsi_14": 55.3,
                "macd_12_26_9": 12.5,
                "macd_12_26_9_signal": 10.1,
                "macd_12_26_9_hist": 2.4
            })])
            .into()
    }
}

impl ToSchema for IndicatorRow {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IndicatorRow")
    }
}

/// How far back one indicator needs history for its first returned value to be exact.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarmUpStrategy {
    /// A number of candles before the page (`candles`), or every stored one when fewer.
    Candles,
    /// From 00:00 UTC of the page start's day (VWAP resets daily).
    UtcDay,
    /// From the first stored candle (OBV is a running total).
    FullHistory,
}

/// One requested indicator and the history it needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorWarmUp {
    /// Canonical token, e.g. `ema:50`.
    #[schema(example = "ema:50")]
    pub indicator: String,
    pub strategy: WarmUpStrategy,
    /// Candles needed before the first returned one (strategy `candles` only).
    #[schema(example = 625)]
    pub candles: Option<u64>,
}

/// What was loaded before the page so its first values are exact.
#[derive(Debug, Serialize, ToSchema)]
pub struct WarmUpMeta {
    /// Per indicator, what it needs: the lookback, plus for recursive indicators (EMA,
    /// RSI, MACD, ADX…) enough candles for the seed's influence to fall below 1e-9 of the
    /// value.
    pub required: Vec<IndicatorWarmUp>,
    /// Candles read and computed before the page's first row.
    pub loaded: u64,
    /// Open time of the first candle computed over; `null` when none was needed.
    pub from: Option<Timestamp>,
    /// True when the warm-up reached the first stored candle: every value is then
    /// exactly the full-history value, and early rows may be null (not enough history).
    pub reached_first_stored: bool,
}

/// One output column of the rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorColumn {
    /// Field name in every row.
    #[schema(example = "macd_12_26_9_signal")]
    pub name: String,
    /// Canonical token of the indicator it belongs to.
    #[schema(example = "macd:12:26:9")]
    pub indicator: String,
    /// The indicator's output, e.g. `macd_signal`.
    #[schema(example = "macd_signal")]
    pub output: String,
}

/// What the page holds and how it was computed.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorsMeta {
    #[schema(example = "BTC")]
    pub symbol: String,
    pub interval: IntervalName,
    /// The stored interval candles were read from; `null` when nothing stored can supply
    /// this interval.
    pub source_interval: Option<IntervalName>,
    /// True when candles were aggregated from a finer stored interval.
    pub derived: bool,
    /// The requested indicators as canonical tokens, duplicates removed.
    #[schema(example = json!(["rsi:14", "macd:12:26:9"]))]
    pub indicators: Vec<String>,
    /// The row fields besides `open_time`, in order.
    pub columns: Vec<IndicatorColumn>,
    pub warm_up: WarmUpMeta,
    /// Start of the window this page covers (inclusive).
    pub window_start: Timestamp,
    /// End of the window this page covers (exclusive).
    pub window_end: Timestamp,
    /// Rows returned: one per candle stored (or derived) in the page's window.
    pub returned: u64,
}

/// A page of indicator rows.
#[derive(Debug, ToSchema)]
pub struct IndicatorsResponse {
    pub data: Vec<IndicatorRow>,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
    pub meta: IndicatorsMeta,
}

/// The body of an [`IndicatorsResponse`], byte for byte what serialising it gives. The
/// rows are written directly: through serde every field name of every row is escaped
/// again and the buffer regrown, which cost more than computing the indicators.
fn page_json(
    names: &[String],
    open_times: &[i64],
    series: &[Series],
    offset: usize,
    next_cursor: Option<&str>,
    meta: &IndicatorsMeta,
) -> serde_json::Result<Vec<u8>> {
    let keys = names
        .iter()
        .map(|name| {
            let mut key = b",".to_vec();
            serde_json::to_writer(&mut key, name)?;
            key.push(b':');
            Ok(key)
        })
        .collect::<serde_json::Result<Vec<_>>>()?;
    let row_bytes = 40 + keys.iter().map(|k| k.len() + 24).sum::<usize>();
    let mut out = Vec::with_capacity(1024 + open_times.len() * row_bytes);
    let mut float = zmij::Buffer::new();
    out.extend_from_slice(PAGE_START);
    for (i, &open_time) in open_times.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"open_time\":\"");
        write_rfc3339_ms(&mut out, open_time);
        out.push(b'"');
        for (key, column) in keys.iter().zip(series) {
            out.extend_from_slice(key);
            match column.get(offset + i) {
                Some(value) if value.is_finite() => {
                    out.extend_from_slice(float.format_finite(value).as_bytes());
                }
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
    }
    end_page(&mut out, next_cursor, meta)?;
    Ok(out)
}

/// Column name of `output` of the indicator whose canonical token is `token`.
fn column_name(token: &str, name: &str, output: &str) -> String {
    let mut column = token.replace(':', "_");
    column.push_str(output.strip_prefix(name).unwrap_or(output));
    column
}

/// Parses the `indicators` parameter, refusing characters the pattern does not allow.
fn parse_list(raw: &str) -> Result<Vec<IndicatorSpec>, ApiError> {
    // A pattern's `$` also matches before a final newline (in ECMAScript-like engines
    // without the `u`/`y` subtleties, and in Python's), so one is tolerated there.
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | ',' | ' ')))
    {
        return Err(ApiError::invalid(
            "indicators",
            format!(
                "contains {bad:?}; only letters, digits, `:`, `.`, `-`, `,` and spaces are \
                 allowed, e.g. `rsi:14,ema:50`"
            ),
        ));
    }
    let specs =
        parse_indicators(raw).map_err(|e| ApiError::invalid("indicators", e.to_string()))?;
    let mut unique: Vec<IndicatorSpec> = Vec::with_capacity(specs.len());
    for spec in specs {
        if !unique.contains(&spec) {
            unique.push(spec);
        }
    }
    Ok(unique)
}

/// The history the page needs before its start.
#[derive(Debug, Clone, Copy, Default)]
struct Need {
    candles: usize,
    utc_day: bool,
    full_history: bool,
}

fn need(specs: &[IndicatorSpec]) -> (Need, Vec<IndicatorWarmUp>) {
    let mut need = Need::default();
    let required = specs
        .iter()
        .map(|spec| {
            let (strategy, candles) = match spec.warm_up() {
                WarmUp::Candles(n) => {
                    need.candles = need.candles.max(n);
                    (WarmUpStrategy::Candles, Some(n as u64))
                }
                WarmUp::UtcDay => {
                    need.utc_day = true;
                    (WarmUpStrategy::UtcDay, None)
                }
                WarmUp::FullHistory => {
                    need.full_history = true;
                    (WarmUpStrategy::FullHistory, None)
                }
            };
            IndicatorWarmUp {
                indicator: spec.to_string(),
                strategy,
                candles,
            }
        })
        .collect();
    (need, required)
}

/// Every bar of `range`, ascending.
async fn read_all(
    store: &dyn Store,
    range: &CandleRange,
    choice: SourceChoice,
) -> Result<Vec<Bar>, ApiError> {
    let mut bars = Vec::new();
    let mut range = range.clone();
    loop {
        let page = read_bar_values(store, &range, choice, WARM_UP_CHUNK).await?;
        bars.extend(page.bars);
        match page.next_start {
            Some(next) => range.start = next,
            None => return Ok(bars),
        }
    }
}

/// Reads the warm-up bars before `page_start`: at least `need.candles` of them (by
/// count, widening backwards over gaps), everything since 00:00 UTC of the page's day
/// when asked, everything when asked, and never before `first` (the first stored bucket).
async fn read_warm_up(
    store: &dyn Store,
    base: &CandleRange,
    choice: SourceChoice,
    page_start: i64,
    first: i64,
    need: Need,
) -> Result<Vec<Bar>, ApiError> {
    let Some(from) = warm_up_start(base.interval, page_start, first, need) else {
        return Ok(Vec::new());
    };
    let range = CandleRange {
        start: from,
        end: page_start,
        ..base.clone()
    };
    let bars = read_all(store, &range, choice).await?;
    widen_warm_up(store, base, choice, page_start, first, need, (from, bars)).await
}

/// Widens a warm-up read from `from` (holding `bars`) backwards over gaps until it holds
/// `need.candles` bars or reaches `first`.
async fn widen_warm_up(
    store: &dyn Store,
    base: &CandleRange,
    choice: SourceChoice,
    page_start: i64,
    first: i64,
    need: Need,
    (mut from, mut bars): (i64, Vec<Bar>),
) -> Result<Vec<Bar>, ApiError> {
    let step = base.interval.millis();
    while bars.len() < need.candles && from > first {
        // Gaps: widen by twice the shortfall, and by at least half the span read so
        // far so sparse history still takes few round trips, until enough or the first
        // bucket.
        let missing = (need.candles - bars.len()) as i64;
        let span = missing
            .saturating_mul(2 * step)
            .max((page_start - from) / 2)
            .max(step);
        let earlier = from.saturating_sub(span).max(first);
        let range = CandleRange {
            start: earlier,
            end: from,
            ..base.clone()
        };
        let mut more = read_all(store, &range, choice).await?;
        more.append(&mut bars);
        bars = more;
        from = earlier;
    }
    Ok(bars)
}

/// Where the first read of the warm-up before `page_start` starts; `None` when no bar
/// before the page is needed or can exist.
fn warm_up_start(interval: Interval, page_start: i64, first: i64, need: Need) -> Option<i64> {
    if page_start <= first {
        return None;
    }
    let step = interval.millis();
    let count_start = page_start.saturating_sub((need.candles as i64).saturating_mul(step));
    let from = if need.full_history {
        first
    } else if need.utc_day {
        count_start.min(Interval::D1.bucket_start(page_start))
    } else {
        count_start
    }
    .max(first);
    (from < page_start).then_some(from)
}

/// The page of `range` and its warm-up bars. A native series whose warm-up is a bounded
/// span just before the page is read in one round trip; a warm-up that falls short over
/// gaps, a derived interval or a full history take [`read_warm_up`]'s reads.
async fn read_page_and_warm_up(
    store: &dyn Store,
    range: &CandleRange,
    choice: SourceChoice,
    limit: u32,
    first: Option<i64>,
    need: Need,
) -> Result<(Vec<Bar>, BarPage), ApiError> {
    let Some(first) = first else {
        let page = read_bar_values(store, range, choice, limit).await?;
        return Ok((Vec::new(), page));
    };
    let joined_from = warm_up_start(range.interval, range.start, first, need)
        .filter(|_| choice == SourceChoice::Native && !need.full_history);
    if let Some(from) = joined_from {
        // Native bars are one per bucket, so the span holds at most this many.
        let warm_buckets = (range.start - from) / range.interval.millis();
        if let Ok(warm_buckets) = u32::try_from(warm_buckets)
            && warm_buckets <= WARM_UP_CHUNK
        {
            let joined = CandleRange {
                start: from,
                ..range.clone()
            };
            let read = read_bar_values(store, &joined, choice, warm_buckets + limit).await?;
            let mut warm = read.bars;
            let split = warm.partition_point(|b| b.candle.open_time < range.start);
            let mut bars = warm.split_off(split);
            let next_start = match bars.get(limit as usize) {
                Some(bar) => Some(bar.candle.open_time),
                None => read.next_start,
            };
            bars.truncate(limit as usize);
            if bars.is_empty() {
                warm.clear();
            } else {
                warm = widen_warm_up(store, range, choice, range.start, first, need, (from, warm))
                    .await?;
            }
            return Ok((warm, BarPage { bars, next_start }));
        }
    }
    let page = read_bar_values(store, range, choice, limit).await?;
    let warm = if page.bars.is_empty() {
        Vec::new()
    } else {
        read_warm_up(store, range, choice, range.start, first, need).await?
    };
    Ok((warm, page))
}

/// First bucket of `interval` the source series can supply.
fn first_bucket(
    stored: &[SeriesInfo],
    symbol: &str,
    source: Option<Interval>,
    interval: Interval,
) -> Option<i64> {
    let source = source?;
    stored
        .iter()
        .find(|s| s.symbol == symbol && s.interval == source)
        .map(|s| interval.bucket_start(s.first_open_time))
}

/// Indicators.
///
/// Technical indicator series of one asset at any interval (derived intervals as in
/// `/v1/ohlcv`), one row per candle of the page with `open_time` and one field per output
/// column, null where the indicator is not yet defined. Window, `limit` and cursor
/// semantics are exactly those of `/v1/ohlcv`: follow `next_cursor` (or the `Link`
/// header) to walk a range; every row comes once, and pages join into the same series as
/// one big page.
///
/// Field names: the canonical token with `:` replaced by `_`, then the output's suffix:
/// `rsi:14` → `rsi_14`; `macd:12:26:9` → `macd_12_26_9`, `macd_12_26_9_signal`,
/// `macd_12_26_9_hist`; `bbands:20:2` → `bbands_20_2_upper`, `_middle`, `_lower`;
/// `adx:14` → `adx_14`, `adx_14_plus_di`, `adx_14_minus_di`; `obv` → `obv`.
/// `meta.columns` lists them in order. Repeating an indicator computes it once.
///
/// Warm-up: the first value returned equals the value computed over the whole stored
/// history. Before the page, marketd loads per indicator (`meta.warm_up`): for windowed
/// and recursive indicators, `lookback` candles plus, for recursive ones, enough for the
/// seed's influence to fall below 1e-9 — counted in candles, read backwards and widened
/// over gaps, or from the first stored candle when there are fewer; for `vwap`, from
/// 00:00 UTC of the page start's day; for `obv`, a running total, everything from the
/// first stored candle, so its cost grows with the stored history. Requires scope
/// `signals:read`.
#[utoipa::path(get, path = "/v1/indicators/{symbol}", tag = "indicators", operation_id = "indicators_get",
    security(("bearer" = ["signals:read"]), ("api_key" = ["signals:read"])),
    params(
        ("symbol" = String, Path, description = "Asset symbol, e.g. `BTC`", pattern = "^[A-Za-z0-9]{1,15}$"),
        IndicatorsParam,
        IndicatorsQuery,
    ),
    responses(
        (status = 200, description = "Indicator rows",
            headers(("link" = String, description = "`<…>; rel=\"next\"` when there is a next page")),
            body = IndicatorsResponse, content_type = "application/json"),
        (status = 400, description = "Malformed query (including a missing `indicators`) or cursor, or `start` not before `end`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No tracked asset has this symbol", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters: an `indicators` token that does not parse (the message names it and what is allowed), more than 10 indicators, or `limit` out of range", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn indicators_get(
    State(state): State<AppState>,
    ApiPath(raw_symbol): ApiPath<String>,
    ApiQuery(query): ApiQuery<IndicatorsQuery>,
) -> Result<Response, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let symbol = params::symbol("symbol", &raw_symbol)
        .map_err(|e| errors.push(e))
        .ok();
    let specs = match parse_list(&query.indicators) {
        Ok(specs) => Some(specs),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(other) => return Err(other),
    };
    let (Some(symbol), Some(specs)) = (symbol, specs) else {
        return Err(ApiError::Validation(errors));
    };
    let interval: Interval = query.interval.unwrap_or(IntervalName::H1).into();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let now = state.now();
    let window = window::resolve(
        &WindowQuery {
            start: query.start.as_deref(),
            end: query.end.as_deref(),
            cursor: query.cursor.as_deref(),
            default_span: i64::from(limit),
        },
        &symbol,
        interval,
        now,
    )?;

    let Some((_, stored)) = state.store.asset_with_series(symbol.as_str()).await? else {
        return Err(ApiError::UnknownSymbol(symbol.to_string()));
    };
    let (need, required) = need(&specs);
    let step = interval.millis();
    // The source is chosen for where the warm-up is expected to start in the walk's
    // window (not this page), so every page of a walk reads the same series.
    let expected_from = if need.full_history {
        i64::MIN
    } else {
        let by_count = window
            .start
            .saturating_sub((need.candles as i64).saturating_mul(step));
        if need.utc_day {
            by_count.min(Interval::D1.bucket_start(window.start))
        } else {
            by_count
        }
    };
    let choice = SourceChoice::pick(&stored, symbol.as_str(), interval, expected_from);
    let range = CandleRange {
        symbol: symbol.to_string(),
        interval,
        start: window.page_start,
        end: window.end,
    };
    let first = first_bucket(
        &stored,
        symbol.as_str(),
        choice.source_interval(interval),
        interval,
    );
    let (warm, page) =
        read_page_and_warm_up(state.store.as_ref(), &range, choice, limit, first, need).await?;
    let reached_first_stored = match (first, warm.first().or(page.bars.first())) {
        (Some(first), Some(bar)) => bar.candle.open_time <= first,
        _ => false,
    };
    let from = warm.first().map(|b| Timestamp(b.candle.open_time));
    let loaded = warm.len();
    let candles: Vec<Candle> = warm.iter().chain(&page.bars).map(|b| b.candle).collect();
    let columns_in = CandleColumns::from_candles(&candles);

    let mut names = Vec::new();
    let mut columns = Vec::new();
    let mut series = Vec::new();
    for spec in &specs {
        let token = spec.to_string();
        let computed = spec
            .compute_columns(&columns_in)
            .map_err(|e| ApiError::Internal(format!("computing {token}: {e}")))?;
        for column in computed {
            let name = column_name(&token, spec.name(), column.name);
            names.push(name.clone());
            columns.push(IndicatorColumn {
                name,
                indicator: token.clone(),
                output: column.name.to_owned(),
            });
            series.push(column.values);
        }
    }
    let open_times: Vec<i64> = page.bars.iter().map(|b| b.candle.open_time).collect();

    let open_bucket_end = interval.bucket_start(now).saturating_add(step);
    let page_end = page
        .next_start
        .unwrap_or_else(|| window.end.min(open_bucket_end));
    let next_cursor = page
        .next_start
        .map(|next| window::next_cursor(&symbol, interval, &window, next));
    let tokens: Vec<String> = specs.iter().map(ToString::to_string).collect();
    let meta = IndicatorsMeta {
        symbol: symbol.to_string(),
        interval: interval.into(),
        source_interval: choice.source_interval(interval).map(IntervalName::from),
        derived: matches!(choice, SourceChoice::Derived(_)),
        indicators: tokens.clone(),
        columns,
        warm_up: WarmUpMeta {
            required,
            loaded: loaded as u64,
            from,
            reached_first_stored,
        },
        window_start: Timestamp(window.page_start),
        window_end: Timestamp(page_end.max(window.page_start)),
        returned: open_times.len() as u64,
    };
    let mut response_headers = HeaderMap::new();
    if let Some(next) = &next_cursor {
        let link = format!(
            "</v1/indicators/{symbol}?interval={interval}&limit={limit}&indicators={}&cursor={next}>; rel=\"next\"",
            tokens.join(",")
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response_headers.insert(header::LINK, value);
        }
    }
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = page_json(
        &names,
        &open_times,
        &series,
        loaded,
        next_cursor.as_deref(),
        &meta,
    )
    .map_err(|e| ApiError::Internal(format!("serialising an indicator page: {e}")))?;
    Ok((response_headers, body).into_response())
}

// ---------------------------------------------------------------------------------------
// The pattern of `indicators`, generated from the domain's list so it cannot drift.
//
// It describes exactly what the parser accepts (within the characters allowed above):
// a value matching it always parses, and one that does not is refused. Numbers may carry
// leading zeros and, for whole-number parameters, a `.000` tail; MACD's fast period must
// be below its slow one, written as alternatives over the significant digits that use
// back-references for a shared prefix.
// ---------------------------------------------------------------------------------------

/// Optional spaces, the only whitespace allowed.
const SP: &str = " *";

/// A whole number in `[lo, hi]` as the parser reads it: leading zeros and a `.000` tail.
fn whole(lo: u64, hi: u64) -> String {
    format!(r"0*(?:{})(?:\.0*)?", int_range(lo, hi))
}

/// A decimal in `[0, max]` (`max` whole) as the parser reads it, `-0` included.
fn decimal(max: u64) -> String {
    let below = if max > 1 {
        format!("0|{}", int_range(1, max - 1))
    } else {
        "0".to_owned()
    };
    format!(r"0*(?:(?:{below})(?:\.[0-9]*)?|\.[0-9]+|{max}(?:\.0*)?)|-(?:0+\.?0*|\.0+)")
}

fn value(info: &ParamInfo) -> String {
    if info.integer {
        whole(info.min as u64, info.max as u64)
    } else {
        decimal(info.max as u64)
    }
}

/// A parameter slot: spaces, an optional value, spaces.
fn slot(value: &str) -> String {
    format!("{SP}(?:{value})?{SP}")
}

fn case_insensitive(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `:p1(:p2(:p3)?)?` for the given parameter patterns, each slot optional.
fn nested(slots: &[String]) -> String {
    slots
        .iter()
        .rev()
        .fold(String::new(), |inner, slot| format!("(?::{slot}{inner})?"))
}

/// MACD's parameters with fast < slow, given or defaulted.
fn macd_params(params: &[ParamInfo], group: &mut usize) -> String {
    let (fast, slow, signal) = (&params[0], &params[1], &params[2]);
    let (lo, hi) = (fast.min.max(slow.min) as u64, fast.max.min(slow.max) as u64);
    let (fast_default, slow_default) = (fast.default as u64, slow.default as u64);
    let num = |sig: &str| format!(r"0*(?:{sig})(?:\.0*)?");
    let fast_alone = num(&int_range(fast.min as u64, slow_default - 1));
    let slow_alone = num(&int_range(fast_default + 1, slow.max as u64));
    let sep = format!(r"(?:\.0*)?{SP}:{SP}0*");
    let mut pairs = Vec::new();
    // Significant digits of different lengths: the shorter is smaller.
    let width = |n: u64| n.to_string().len();
    for lf in width(lo)..=width(hi) {
        for ls in lf + 1..=width(hi) {
            let clip = |l: usize| {
                let (a, b) = (
                    10_u64.pow(l as u32 - 1).max(lo),
                    (10_u64.pow(l as u32) - 1).min(hi),
                );
                int_range(a, b)
            };
            pairs.push(format!("(?:{}){sep}(?:{})", clip(lf), clip(ls)));
        }
    }
    // Same length: a shared prefix, then a smaller digit, then any digits.
    for l in width(lo)..=width(hi) {
        let lower = 10_u64.pow(l as u32 - 1).max(lo);
        let upper = (10_u64.pow(l as u32) - 1).min(hi);
        if lower >= upper {
            continue;
        }
        // Only whole decades are split this way; a clipped length (the first, from `lo`)
        // must be a single digit, where the prefix is empty.
        for j in 0..l {
            let tail = match l - j - 1 {
                0 => String::new(),
                n => format!("[0-9]{{{n}}}"),
            };
            let first_digit_min = if j == 0 {
                (lower / 10_u64.pow(l as u32 - 1)) as u8
            } else {
                0
            };
            for x in first_digit_min..9 {
                let y = if x + 1 == 9 {
                    "9".to_owned()
                } else {
                    format!("[{}-9]", x + 1)
                };
                if j == 0 {
                    pairs.push(format!("{x}{tail}{sep}{y}{tail}"));
                } else {
                    *group += 1;
                    let prefix = match j {
                        1 => "[1-9]".to_owned(),
                        n => format!("[1-9][0-9]{{{}}}", n - 1),
                    };
                    // `(?:\N)` so a following digit is not read as part of the number.
                    pairs.push(format!("({prefix}){x}{tail}{sep}(?:\\{}){y}{tail}", *group));
                }
            }
        }
    }
    let pair = format!(r"{SP}0*(?:{})(?:\.0*)?{SP}", pairs.join("|"));
    let first_two =
        format!("(?:{SP}:{SP}|{SP}:{SP}{slow_alone}{SP}|{SP}{fast_alone}{SP}:{SP}|{pair})");
    format!(
        "(?::(?:{}|{first_two}(?::{})?))?",
        slot(&fast_alone),
        slot(&value(signal))
    )
}

/// The `indicators` pattern.
pub fn indicators_pattern() -> String {
    let mut group = 0;
    let kinds: Vec<String> = IndicatorKind::all()
        .map(|kind| {
            let info = kind.info();
            let params = if kind == IndicatorKind::Macd {
                macd_params(info.params, &mut group)
            } else {
                nested(
                    &info
                        .params
                        .iter()
                        .map(|p| slot(&value(p)))
                        .collect::<Vec<_>>(),
                )
            };
            format!("{}{SP}{params}", case_insensitive(info.name))
        })
        .collect();
    let token = format!("{SP}(?:{}){SP}", kinds.join("|"));
    format!("^{token}(?:,{token}){{0,{}}}$", MAX_INDICATORS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_columns_uniquely() {
        assert_eq!(column_name("rsi:14", "rsi", "rsi"), "rsi_14");
        assert_eq!(
            column_name("macd:12:26:9", "macd", "macd_signal"),
            "macd_12_26_9_signal"
        );
        assert_eq!(
            column_name("adx:14", "adx", "adx_plus_di"),
            "adx_14_plus_di"
        );
        assert_eq!(column_name("obv", "obv", "obv"), "obv");
    }

    /// A page as serde writes it: the reference [`page_json`] must match byte for byte.
    fn serialised_by_serde(
        names: &[String],
        open_times: &[i64],
        series: &[Series],
        offset: usize,
        next_cursor: Option<&str>,
        meta: IndicatorsMeta,
    ) -> Vec<u8> {
        use serde::ser::{SerializeMap, Serializer};

        struct Row<'a>(&'a [String], i64, Vec<Option<f64>>);
        impl Serialize for Row<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len() + 1))?;
                map.serialize_entry("open_time", &Timestamp(self.1))?;
                for (name, value) in self.0.iter().zip(&self.2) {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
        #[derive(Serialize)]
        struct Body<'a> {
            data: Vec<Row<'a>>,
            next_cursor: Option<&'a str>,
            meta: IndicatorsMeta,
        }
        let data = open_times
            .iter()
            .enumerate()
            .map(|(i, &t)| Row(names, t, series.iter().map(|s| s.get(offset + i)).collect()))
            .collect();
        serde_json::to_vec(&Body {
            data,
            next_cursor,
            meta,
        })
        .unwrap()
    }

    #[test]
    fn a_page_is_written_as_serde_would_write_it() {
        let meta = || IndicatorsMeta {
            symbol: "BTC".to_owned(),
            interval: IntervalName::H1,
            source_interval: Some(IntervalName::M1),
            derived: true,
            indicators: vec!["rsi:14".to_owned(), "odd".to_owned()],
            columns: vec![IndicatorColumn {
                name: "rsi_14".to_owned(),
                indicator: "rsi:14".to_owned(),
                output: "rsi".to_owned(),
            }],
            warm_up: WarmUpMeta {
                required: vec![IndicatorWarmUp {
                    indicator: "rsi:14".to_owned(),
                    strategy: WarmUpStrategy::Candles,
                    candles: Some(250),
                }],
                loaded: 1,
                from: Some(Timestamp(0)),
                reached_first_stored: false,
            },
            window_start: Timestamp(3_600_000),
            window_end: Timestamp(18_000_000),
            returned: 4,
        };
        // A name needing escapes, a value past the end of its column, undefined values
        // and floats whose shortest form is awkward.
        let names = vec!["rsi_14".to_owned(), "q\"uote\u{1}".to_owned()];
        let series = [
            Series::from_raw(vec![1.0, f64::NAN, -0.1, 1e-7, 123_456_789.123_456_78]),
            Series::from_raw(vec![0.0, f64::INFINITY, 5e300, -0.0]),
        ];
        let open_times = [3_600_000, 7_200_000, 10_800_000, -1_000];
        for next_cursor in [None, Some("abc")] {
            let written = page_json(&names, &open_times, &series, 1, next_cursor, &meta()).unwrap();
            let expected =
                serialised_by_serde(&names, &open_times, &series, 1, next_cursor, meta());
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
        let empty = page_json(&names, &[], &series, 0, None, &meta()).unwrap();
        assert_eq!(
            empty,
            serialised_by_serde(&names, &[], &series, 0, None, meta())
        );
    }

    #[test]
    fn duplicates_are_computed_once() {
        let specs = parse_list("rsi, RSI:14 ,ema:50").unwrap();
        assert_eq!(specs.len(), 2);
        assert!(parse_list("rsi\u{3000}").is_err());
    }
}
