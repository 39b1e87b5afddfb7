//! `GET /v1/signals` and `GET /v1/signals/{symbol}/history`: what each strategy says
//! about a symbol, computed from closed candles only, reproducibly.
//!
//! Every signal carries its rule, its input window, the indicator values it used and a
//! hash of its inputs with the engine version. A signal depends only on the candles
//! closed by its `as_of`, so repeating a request with the returned `as_of` returns the
//! same signal, or a different `input_hash` when stored candles were revised since.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use marketd_domain::strategy::{ENGINE_VERSION, SignalPoint, Strategy, StrategyKind, input_hash};
use marketd_domain::{Candle, Interval};
use marketd_storage::{SourceChoice, Store};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::history::closed_candles;
use super::strategies::{params_map, parse_strategy};
use super::{IntervalName, cursor, params};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::signal_engine;
use crate::state::AppState;
use crate::wire::Timestamp;

/// Closed candles examined beyond the warm-up to find when the direction last changed.
pub(crate) const SINCE_LOOKBACK: usize = 1_000;
const MAX_SYMBOLS: usize = 20;
/// Most candles one history request may cover.
const MAX_HISTORY_CANDLES: i64 = 100_000;
const DEFAULT_HISTORY_CANDLES: i64 = 1_000;

/// Query of `GET /v1/signals`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignalsQuery {
    /// Comma-separated symbols (at most 20), e.g. `BTC,ETH`.
    #[param(
        pattern = "^[A-Za-z0-9]{1,15}(,[A-Za-z0-9]{1,15}){0,19}$",
        example = "BTC,ETH"
    )]
    pub symbols: String,
    /// Candle interval (default `1h`).
    pub interval: Option<IntervalName>,
    /// One strategy (see `/v1/strategies`); omit for all of them with default parameters.
    #[param(example = "ema_cross")]
    pub strategy: Option<String>,
    /// Parameters of `strategy` as `name:value` pairs, e.g. `fast:10,slow:30`.
    #[param(example = "fast:12,slow:26")]
    pub params: Option<String>,
    /// Point in time (RFC 3339 or Unix ms): the signal as known then, from candles closed
    /// by then. Default now.
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-13T12:00:00Z")]
    pub as_of: Option<String>,
}

/// The candles a signal was computed from.
#[derive(Debug, Serialize, ToSchema)]
pub struct InputWindow {
    pub interval: IntervalName,
    /// Open time of the first candle used (warm-up included).
    pub first_open_time: Option<Timestamp>,
    /// Open time of the last, most recent closed candle.
    pub last_open_time: Option<Timestamp>,
    pub candles: u64,
    /// True when the interval was aggregated from a finer stored one.
    pub derived: bool,
}

/// The latest signal of one strategy for one symbol.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalOut {
    #[schema(example = "BTC")]
    pub symbol: String,
    pub interval: IntervalName,
    #[schema(example = "ema_cross")]
    pub strategy: String,
    /// Every parameter, resolved (defaults filled in).
    pub params: BTreeMap<String, f64>,
    /// `bullish`, `bearish` or `neutral`.
    #[schema(example = "bullish")]
    pub direction: String,
    /// From -1 (strongly bearish) to 1 (strongly bullish).
    #[schema(example = 0.42)]
    pub strength: f64,
    /// False when there are too few closed candles for the strategy's indicators; the
    /// direction is then `neutral`.
    pub defined: bool,
    /// When the direction last changed (open time of that candle).
    pub since: Option<Timestamp>,
    /// True when no change was found in the candles examined: the direction has held at
    /// least since `since`.
    pub since_is_lower_bound: bool,
    /// The instant the signal is known: the close of its last candle.
    pub as_of: Option<Timestamp>,
    #[schema(example = "bullish when EMA(12) > EMA(26); bearish when below")]
    pub rule: String,
    /// Indicator values the rule compared, at the last candle.
    pub inputs: BTreeMap<String, f64>,
    pub input_window: InputWindow,
    /// Hash of the engine version, strategy, parameters, interval and every input candle.
    #[schema(example = "9f2c4e1a7b3d5c60")]
    pub input_hash: String,
    #[schema(example = "1")]
    pub engine_version: String,
}

/// A document computed for this request, or the identical one the signal engine stored.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Entry<T> {
    Computed(T),
    Stored(Box<RawValue>),
}

impl<T> Entry<T> {
    fn stored(body: String) -> Result<Self, ApiError> {
        RawValue::from_string(body)
            .map(Entry::Stored)
            .map_err(|e| ApiError::Internal(format!("a stored signal is not JSON: {e}")))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalsMeta {
    /// Requested symbols that marketd does not track.
    pub unknown: Vec<String>,
    /// The point in time the signals were computed for.
    pub as_of: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalList {
    pub data: Vec<SignalOut>,
    pub meta: SignalsMeta,
}

/// What `SignalList` documents, with entries that may come from storage.
#[derive(Debug, Serialize)]
struct SignalListBody {
    data: Vec<Entry<SignalOut>>,
    meta: SignalsMeta,
}

fn as_of_param(raw: Option<&str>, now: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(now),
        Some(raw) => {
            let at = params::timestamp("as_of", raw).map_err(|e| ApiError::Validation(vec![e]))?;
            if at > now {
                return Err(ApiError::invalid("as_of", "must not be in the future"));
            }
            Ok(at)
        }
    }
}

/// Evaluates `strategy` on `candles` and describes the last point.
pub(crate) fn describe(
    symbol: &str,
    interval: Interval,
    strategy: &Strategy,
    candles: &[Candle],
    choice: SourceChoice,
) -> Result<SignalOut, ApiError> {
    let points = strategy
        .evaluate(candles)
        .map_err(|e| ApiError::Internal(format!("evaluating {}: {e}", strategy.kind().name())))?;
    let last: Option<&SignalPoint> = points.last();
    let first_defined = points.iter().find(|p| p.defined).map(|p| p.open_time);
    let step = interval.millis();
    Ok(SignalOut {
        symbol: symbol.to_owned(),
        interval: interval.into(),
        strategy: strategy.kind().name().to_owned(),
        params: params_map(strategy),
        direction: last.map_or("neutral", |p| p.direction.as_str()).to_owned(),
        strength: last.map_or(0.0, |p| p.strength),
        defined: last.is_some_and(|p| p.defined),
        since: last.filter(|p| p.defined).map(|p| Timestamp(p.since)),
        since_is_lower_bound: last.is_some_and(|p| p.defined && Some(p.since) == first_defined),
        as_of: candles.last().map(|c| Timestamp(c.open_time + step)),
        rule: strategy.rule(),
        inputs: last
            .map(|p| p.inputs.iter().cloned().collect())
            .unwrap_or_default(),
        input_window: InputWindow {
            interval: interval.into(),
            first_open_time: candles.first().map(|c| Timestamp(c.open_time)),
            last_open_time: candles.last().map(|c| Timestamp(c.open_time)),
            candles: candles.len() as u64,
            derived: matches!(choice, SourceChoice::Derived(_)),
        },
        input_hash: input_hash(strategy, interval.as_str(), candles),
        engine_version: ENGINE_VERSION.to_owned(),
    })
}

/// The stored latest signals of a series by strategy name, when they are exactly what
/// [`latest`] would compute now: the series' newest candle closed in the last interval
/// (so the request's window ends where the stored one does) and the engine has included
/// it, and nothing it included has been rewritten since.
async fn stored_latest(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    now: i64,
) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(progress) = store.signal_progress_of(symbol, interval).await? else {
        return Ok(BTreeMap::new());
    };
    let live = signal_engine::newest_closed(&progress.series, now)
        .is_some_and(|newest| newest == interval.bucket_start(now) - interval.millis());
    if !live || !signal_engine::is_current(&progress, now) {
        return Ok(BTreeMap::new());
    }
    Ok(store
        .latest_signals(symbol, interval)
        .await?
        .into_iter()
        .filter(|s| Some(s.open_time) == progress.through)
        .filter(|s| signal_engine::written_by_this_engine(&s.body))
        .map(|s| (s.strategy, s.body))
        .collect())
}

async fn latest(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    strategy: &Strategy,
    as_of: i64,
) -> Result<SignalOut, ApiError> {
    let bars = (strategy.warm_up() + SINCE_LOOKBACK) as i64;
    let start = interval.bucket_start(as_of) - bars * interval.millis();
    let (candles, choice) = closed_candles(store, symbol, interval, start, as_of).await?;
    describe(symbol, interval, strategy, &candles, choice)
}

/// Latest signals.
///
/// The latest signal of each requested symbol for one strategy (or every strategy with
/// default parameters): direction, strength in [-1, 1], when it last changed, and how it
/// was reached (rule, indicator inputs, input window, input hash, engine version). Only
/// closed candles are used; with `as_of` the signal is the one known at that instant.
/// Signals of the built-in strategies with default parameters on stored intervals are
/// kept current as candles land and served from storage; other parameters, derived
/// intervals and `as_of` are computed on request. Both give the same answer.
/// Requires scope `signals:read`.
#[utoipa::path(get, path = "/v1/signals", tag = "signals", operation_id = "signals_list",
    params(SignalsQuery),
    security(("bearer" = ["signals:read"]), ("api_key" = ["signals:read"])),
    responses(
        (status = 200, description = "Latest signals", body = SignalList),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown strategy, bad parameters or symbols", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn signals_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SignalsQuery>,
) -> Result<Response, ApiError> {
    let symbols = params::symbol_list(&query.symbols, MAX_SYMBOLS)?;
    let interval: Interval = query.interval.unwrap_or(IntervalName::H1).into();
    let strategies = match query.strategy.as_deref() {
        Some(name) => vec![parse_strategy(name, query.params.as_deref())?],
        None if query.params.is_some() => {
            return Err(ApiError::invalid(
                "params",
                "needs a `strategy` to apply to",
            ));
        }
        None => StrategyKind::all()
            .into_iter()
            .filter_map(|kind| Strategy::new(kind, &[]).ok())
            .collect(),
    };
    let now = state.now();
    let as_of = as_of_param(query.as_of.as_deref(), now)?;
    let wants_stored = query.as_of.is_none() && strategies.iter().any(signal_engine::is_stored);
    let mut data = Vec::new();
    let mut unknown = Vec::new();
    for symbol in &symbols {
        if state.store.asset(symbol).await?.is_none() {
            unknown.push(symbol.clone());
            continue;
        }
        let mut stored = if wants_stored {
            stored_latest(state.store.as_ref(), symbol, interval, now).await?
        } else {
            BTreeMap::new()
        };
        for strategy in &strategies {
            let body = signal_engine::is_stored(strategy)
                .then(|| stored.remove(strategy.kind().name()))
                .flatten();
            data.push(match body {
                Some(body) => Entry::stored(body)?,
                None => Entry::Computed(
                    latest(state.store.as_ref(), symbol, interval, strategy, as_of).await?,
                ),
            });
        }
    }
    let meta = SignalsMeta {
        unknown,
        as_of: Timestamp(as_of),
    };
    Ok(Json(SignalListBody { data, meta }).into_response())
}

/// Query of `GET /v1/signals/{symbol}/history`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Candle interval (default `1h`).
    pub interval: Option<IntervalName>,
    /// The strategy (see `/v1/strategies`).
    #[param(example = "rsi_reversion")]
    pub strategy: String,
    /// Parameters as `name:value` pairs.
    pub params: Option<String>,
    /// First candle considered (default: 1000 candles before `end`).
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-01T00:00:00Z")]
    pub start: Option<String>,
    /// End of the window, exclusive (default now); at most 100000 candles after `start`.
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-31T00:00:00Z")]
    pub end: Option<String>,
    /// Changes per page, 1 to 1000 (default 100).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// A change of direction.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalChange {
    /// Open time of the candle whose close produced the new direction.
    pub open_time: Timestamp,
    /// When the new direction became known: that candle's close.
    pub as_of: Timestamp,
    #[schema(example = "bearish")]
    pub direction: String,
    /// The direction before; `null` for the first defined signal in the window.
    pub previous: Option<String>,
    pub strength: f64,
    pub inputs: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryMeta {
    pub symbol: String,
    pub interval: IntervalName,
    pub strategy: String,
    pub params: BTreeMap<String, f64>,
    pub rule: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub engine_version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalHistory {
    pub data: Vec<SignalChange>,
    pub next_cursor: Option<String>,
    pub meta: HistoryMeta,
}

/// What `SignalHistory` documents, with entries that may come from storage.
#[derive(Debug, Serialize)]
struct SignalHistoryBody {
    data: Vec<Entry<SignalChange>>,
    next_cursor: Option<String>,
    meta: HistoryMeta,
}

/// The changes of direction among `points` (ascending) whose candle opens in
/// `[start, end)`. A point is a change when its direction differs from the defined point
/// before it, which may lie before `start`; the first defined point of all is a change
/// with no `previous`.
pub(crate) fn changes_in(
    points: &[SignalPoint],
    start: i64,
    end: i64,
    step: i64,
) -> Vec<SignalChange> {
    let mut changes = Vec::new();
    let mut previous: Option<&SignalPoint> = None;
    for point in points.iter().filter(|p| p.defined) {
        let changed = previous.is_none_or(|p| p.direction != point.direction);
        if changed && point.open_time >= start && point.open_time < end {
            changes.push(SignalChange {
                open_time: Timestamp(point.open_time),
                as_of: Timestamp(point.open_time + step),
                direction: point.direction.as_str().to_owned(),
                previous: previous.map(|p| p.direction.as_str().to_owned()),
                strength: point.strength,
                inputs: point.inputs.iter().cloned().collect(),
            });
        }
        previous = Some(point);
    }
    changes
}

/// The stored changes opening in `[first, end)`, when the stored changes of this series
/// reach back to `start` and include every candle closed by `now`; None otherwise.
async fn stored_history(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    strategy: &Strategy,
    (start, first, end): (i64, i64, i64),
    limit: u32,
    now: i64,
) -> Result<Option<Vec<(i64, Entry<SignalChange>)>>, ApiError> {
    if !signal_engine::is_stored(strategy) {
        return Ok(None);
    }
    let Some(progress) = store.signal_progress_of(symbol, interval).await? else {
        return Ok(None);
    };
    let covered = progress.history_from.is_some_and(|from| from <= start);
    if !covered || !signal_engine::is_current(&progress, now) {
        return Ok(None);
    }
    let name = strategy.kind().name();
    let rows = store
        .signal_changes(symbol, interval, name, first, end, limit)
        .await?;
    if !rows
        .iter()
        .all(|r| signal_engine::written_by_this_engine(&r.body))
    {
        return Ok(None);
    }
    rows.into_iter()
        .map(|r| Ok((r.open_time, Entry::stored(r.body)?)))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Up to `limit` + 1 changes opening in `[start, end)` after the cursor's `after`, with
/// their open times: from storage when the stored changes of this series are exactly what
/// computing them would give, else computed.
async fn history_page(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    strategy: &Strategy,
    (start, end, after): (i64, i64, Option<i64>),
    limit: usize,
    now: i64,
) -> Result<Vec<(i64, Entry<SignalChange>)>, ApiError> {
    let first = after.map_or(start, |a| start.max(a + 1));
    let fetch = u32::try_from(limit + 1).unwrap_or(u32::MAX);
    if let Some(stored) = stored_history(
        store,
        symbol,
        interval,
        strategy,
        (start, first, end),
        fetch,
        now,
    )
    .await?
    {
        return Ok(stored);
    }
    let step = interval.millis();
    let warm = (strategy.warm_up() + 1) as i64 * step;
    let (candles, _) = closed_candles(store, symbol, interval, start - warm, end.min(now)).await?;
    let points = strategy
        .evaluate(&candles)
        .map_err(|e| ApiError::Internal(format!("evaluating {}: {e}", strategy.kind().name())))?;
    Ok(changes_in(&points, start, end, step)
        .into_iter()
        .filter(|c| c.open_time.0 >= first)
        .take(limit + 1)
        .map(|c| (c.open_time.0, Entry::Computed(c)))
        .collect())
}

/// Signal history.
///
/// Every change of direction of one strategy for one symbol within `[start, end)`,
/// oldest first, each with the inputs that caused it. Computed from closed candles with
/// the same warm-up as `/v1/signals`, so the two always agree. Changes of the built-in
/// strategies with default parameters on stored intervals are recorded as candles land
/// (the last 100000 candles of a series at most) and served from storage; anything else
/// is computed on request. Requires scope `signals:read`.
#[utoipa::path(get, path = "/v1/signals/{symbol}/history", tag = "signals", operation_id = "signals_history",
    params(("symbol" = String, Path, description = "Asset symbol", example = "BTC", pattern = "^[A-Za-z0-9]{1,15}$"), HistoryQuery),
    security(("bearer" = ["signals:read"]), ("api_key" = ["signals:read"])),
    responses(
        (status = 200, description = "Changes of direction", body = SignalHistory),
        (status = 400, description = "Malformed query, cursor or range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown symbol", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown strategy, bad parameters or a range too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn signals_history(
    State(state): State<AppState>,
    ApiPath(raw_symbol): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let symbol =
        params::symbol("symbol", &raw_symbol).map_err(|e| ApiError::Validation(vec![e]))?;
    let symbol = symbol.to_string();
    let interval: Interval = query.interval.unwrap_or(IntervalName::H1).into();
    let strategy = parse_strategy(&query.strategy, query.params.as_deref())?;
    let now = state.now();
    let step = interval.millis();
    let end = match query.end.as_deref() {
        Some(raw) => params::timestamp("end", raw).map_err(|e| ApiError::Validation(vec![e]))?,
        None => now,
    };
    let start = match query.start.as_deref() {
        Some(raw) => params::timestamp("start", raw).map_err(|e| ApiError::Validation(vec![e]))?,
        None => end.saturating_sub(DEFAULT_HISTORY_CANDLES * step),
    };
    if start >= end {
        return Err(ApiError::InvalidRange {
            field: "start",
            message: "must be before `end`",
        });
    }
    if (end - start) / step > MAX_HISTORY_CANDLES {
        return Err(ApiError::RangeTooLarge(format!(
            "at most {MAX_HISTORY_CANDLES} {interval} candles per request; narrow start..end"
        )));
    }
    if state.store.asset(&symbol).await?.is_none() {
        return Err(ApiError::UnknownSymbol(symbol));
    }
    // The cursor separates fields with `|`; the token must not contain one.
    let token = std::iter::once(strategy.kind().name().to_owned())
        .chain(strategy.params().iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(":");
    let (start_text, end_text) = (start.to_string(), end.to_string());
    let fingerprint = [
        symbol.as_str(),
        interval.as_str(),
        &token,
        &start_text,
        &end_text,
    ];
    let after = match query.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let fields =
                cursor::decode(raw, fingerprint.len() + 1).ok_or(ApiError::InvalidCursor)?;
            if fields[..fingerprint.len()]
                .iter()
                .zip(fingerprint)
                .any(|(a, b)| a != b)
            {
                return Err(ApiError::InvalidCursor);
            }
            Some(
                fields[fingerprint.len()]
                    .parse::<i64>()
                    .map_err(|_| ApiError::InvalidCursor)?,
            )
        }
    };

    let start = interval.bucket_start(start);
    let limit = query.limit.unwrap_or(100) as usize;
    let mut page = history_page(
        state.store.as_ref(),
        &symbol,
        interval,
        &strategy,
        (start, end, after),
        limit,
        now,
    )
    .await?;
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(open_time, _)| {
            let last = open_time.to_string();
            let mut fields: Vec<&str> = fingerprint.to_vec();
            fields.push(&last);
            cursor::encode(&fields)
        })
    } else {
        None
    };
    let meta = HistoryMeta {
        symbol,
        interval: interval.into(),
        strategy: strategy.kind().name().to_owned(),
        params: params_map(&strategy),
        rule: strategy.rule(),
        start: Timestamp(start),
        end: Timestamp(end),
        engine_version: ENGINE_VERSION.to_owned(),
    };
    Ok(Json(SignalHistoryBody {
        data: page.into_iter().map(|(_, entry)| entry).collect(),
        next_cursor,
        meta,
    })
    .into_response())
}
