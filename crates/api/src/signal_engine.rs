//! Keeps stored signals current as candles land.
//!
//! Every candle write marks its series dirty from the earliest candle it touched (see the
//! `series` table); this engine polls that bookkeeping and, for each series with closed
//! candles its signals do not yet include, recomputes only what those candles can change:
//! the changes of direction from the first touched candle on, and the latest signal of
//! each built-in strategy with its default parameters. Writers in other processes (a
//! `marketd import`, another replica's ingest) are picked up the same way.
//!
//! Stored documents are produced by the same functions that answer a request on demand,
//! so the routes may serve either and return identical bytes.

use std::time::Duration;

use marketd_domain::Candle;
use marketd_domain::strategy::{ENGINE_VERSION, Strategy, StrategyKind};
use marketd_storage::{
    SeriesInfo, SignalProgress, SignalUpdate, SourceChoice, Store, StoredSignal,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use marketd_ingest::ticks::Ticks;

use crate::error::ApiError;
use crate::middleware::response_cache::ResponseCache;
use crate::routes::history::closed_candles;
use crate::routes::signals::{SINCE_LOOKBACK, changes_in, describe};
use crate::state::Clock;

/// How often the bookkeeping is polled for new candles.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Most candles of changes recomputed in one pass. A series revised further back (a
/// first import of years of 1m candles) records its changes from this many candles
/// before its newest; older changes are computed on request.
pub const MAX_RECOMPUTE_CANDLES: i64 = 100_000;

/// Candles of changes computed per step of a recomputation.
const CHUNK_CANDLES: i64 = 1_000;

/// The strategies whose signals are stored: every built-in one, default parameters.
pub fn stored_strategies() -> Vec<Strategy> {
    StrategyKind::all()
        .into_iter()
        .filter_map(|kind| Strategy::new(kind, &[]).ok())
        .collect()
}

/// Whether `strategy` is one whose signals are stored.
pub fn is_stored(strategy: &Strategy) -> bool {
    Strategy::new(strategy.kind(), &[]).is_ok_and(|default| default.params() == strategy.params())
}

/// Open time of the newest candle of `series` that has closed by `now`.
pub fn newest_closed(series: &SeriesInfo, now: i64) -> Option<i64> {
    let step = series.interval.millis();
    let newest = series
        .last_open_time
        .min(series.interval.bucket_start(now) - step);
    (newest >= series.first_open_time).then_some(newest)
}

/// Whether the stored signals of a series include every candle closed by `now`, and no
/// candle they include was rewritten since.
pub fn is_current(progress: &SignalProgress, now: i64) -> bool {
    let Some(newest) = newest_closed(&progress.series, now) else {
        return false;
    };
    progress.through == Some(newest) && progress.dirty_from.is_none_or(|dirty| dirty > newest)
}

/// Whether a stored body was written by this engine version; others are recomputed on
/// request rather than served.
pub fn written_by_this_engine(body: &str) -> bool {
    #[derive(Deserialize)]
    struct Version<'a> {
        #[serde(borrow)]
        engine_version: &'a str,
    }
    serde_json::from_str::<Version<'_>>(body).is_ok_and(|v| v.engine_version == ENGINE_VERSION)
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Series brought up to date.
    pub updated: usize,
    /// The sum of every series' write count: it moves whenever any candle was written.
    pub revisions: i64,
}

/// One pass over every stored series.
pub async fn refresh(store: &dyn Store, now: i64) -> Result<Pass, ApiError> {
    let strategies = stored_strategies();
    let mut pass = Pass {
        updated: 0,
        revisions: 0,
    };
    for progress in store.signal_progress().await? {
        pass.revisions = pass.revisions.wrapping_add(progress.revision);
        if recompute(store, &progress, &strategies, now).await? {
            pass.updated += 1;
        }
    }
    Ok(pass)
}

/// Runs [`refresh`] on each announced candle write and every [`POLL_EVERY`] until
/// `shutdown`. A failed pass is logged and retried on the next one; it never stops the
/// service. When any candle was written since the last pass, by this process or another,
/// kept responses are dropped.
pub fn spawn(
    store: std::sync::Arc<dyn Store>,
    clock: Clock,
    responses: std::sync::Arc<ResponseCache>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen_revisions = None;
        let mut ticks = Ticks::new(POLL_EVERY, shutdown)
            .woken_by(store.changes(), marketd_storage::Change::touches_candles);
        while ticks.next().await {
            match refresh(store.as_ref(), clock()).await {
                Ok(pass) => {
                    if seen_revisions.replace(pass.revisions) != Some(pass.revisions) {
                        responses.clear();
                    }
                    if pass.updated > 0 {
                        tracing::debug!(series = pass.updated, "stored signals updated");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "updating stored signals failed"),
            }
        }
    })
}

/// The first candle whose changes must be recomputed, and where recorded history starts.
struct Span {
    replace_from: i64,
    history_from: i64,
}

fn span(progress: &SignalProgress, newest: i64) -> Option<Span> {
    let series = &progress.series;
    let step = series.interval.millis();
    let pending_from = match progress.through {
        None => series.first_open_time,
        Some(through) => progress
            .dirty_from
            .map_or(through + step, |dirty| dirty.min(through + step)),
    };
    if pending_from > newest {
        return None;
    }
    let floor = newest - (MAX_RECOMPUTE_CANDLES - 1) * step;
    let recorded = progress
        .history_from
        .filter(|&from| pending_from >= from && pending_from >= floor);
    Some(match recorded {
        Some(history_from) => Span {
            replace_from: pending_from,
            history_from,
        },
        // Nothing recorded yet, or candles changed before what is recorded: record the
        // whole (bounded) history afresh.
        None => Span {
            replace_from: i64::MIN,
            history_from: series.first_open_time.max(floor),
        },
    })
}

/// Brings one series' stored signals up to `now`; false when they already were.
async fn recompute(
    store: &dyn Store,
    progress: &SignalProgress,
    strategies: &[Strategy],
    now: i64,
) -> Result<bool, ApiError> {
    let series = &progress.series;
    let interval = series.interval;
    let Some(newest) = newest_closed(series, now) else {
        return Ok(false);
    };
    let Some(span) = span(progress, newest) else {
        return Ok(false);
    };
    let step = interval.millis();
    let until = newest + step;
    let most_warm_up = strategies.iter().map(Strategy::warm_up).max().unwrap_or(0) as i64;

    let mut latest = Vec::new();
    let (candles, _) = closed_candles(
        store,
        &series.symbol,
        interval,
        until - (most_warm_up + SINCE_LOOKBACK as i64) * step,
        until,
    )
    .await?;
    for strategy in strategies {
        let window = since(
            &candles,
            until - (strategy.warm_up() + SINCE_LOOKBACK) as i64 * step,
        );
        let signal = describe(
            &series.symbol,
            interval,
            strategy,
            window,
            SourceChoice::Native,
        )?;
        latest.push(StoredSignal {
            strategy: strategy.kind().name().to_owned(),
            open_time: newest,
            body: to_json(&signal)?,
        });
    }

    // In chunks, each with its own warm-up and saved on its own, so memory stays small
    // however many candles changed, and an interrupted pass resumes where it stopped. A
    // chunk's changes are exactly what a history request starting there finds. Only the
    // last save brings `through` to the newest candle, which is when routes serve them.
    let mut replace_from = span.replace_from;
    let mut chunk_start = span.replace_from.max(span.history_from);
    while chunk_start < until {
        let mut changes = Vec::new();
        let chunk_end = until.min(chunk_start + CHUNK_CANDLES * step);
        let warm_from = chunk_start - (most_warm_up + 1) * step;
        let (candles, _) =
            closed_candles(store, &series.symbol, interval, warm_from, chunk_end).await?;
        for strategy in strategies {
            let name = strategy.kind().name();
            let window = since(
                &candles,
                chunk_start - (strategy.warm_up() as i64 + 1) * step,
            );
            let points = strategy
                .evaluate(window)
                .map_err(|e| ApiError::Internal(format!("evaluating {name}: {e}")))?;
            for change in changes_in(&points, chunk_start, chunk_end, step) {
                changes.push(StoredSignal {
                    strategy: name.to_owned(),
                    open_time: change.open_time.0,
                    body: to_json(&change)?,
                });
            }
        }
        store
            .save_signals(&SignalUpdate {
                symbol: series.symbol.clone(),
                interval,
                revision: progress.revision,
                through: chunk_end - step,
                history_from: span.history_from,
                replace_from,
                latest: if chunk_end == until {
                    std::mem::take(&mut latest)
                } else {
                    Vec::new()
                },
                changes,
            })
            .await?;
        replace_from = chunk_end;
        chunk_start = chunk_end;
    }
    Ok(true)
}

/// The candles opening at or after `open_time` (`candles` is ascending).
fn since(candles: &[Candle], open_time: i64) -> &[Candle] {
    &candles[candles.partition_point(|c| c.open_time < open_time)..]
}

fn to_json(value: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(format!("encoding a signal: {e}")))
}
