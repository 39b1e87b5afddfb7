//! Stored signals: the latest signal per (series, strategy) and every change of
//! direction, with the bookkeeping that says which series have candles newer than their
//! signals. Bodies are opaque JSON documents written and read by the API.

use async_trait::async_trait;
use marketd_domain::Interval;

use crate::{Result, SeriesInfo};

/// A stored series and how far its stored signals have got.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalProgress {
    pub series: SeriesInfo,
    /// Counts candle writes to the series; a save clears the dirty mark only when no
    /// write happened since the revision it read.
    pub revision: i64,
    /// Earliest candle written since signals were last saved, if any.
    pub dirty_from: Option<i64>,
    /// Open time of the last closed candle the stored signals include.
    pub through: Option<i64>,
    /// Open time of the first candle whose changes are recorded.
    pub history_from: Option<i64>,
}

/// One stored document: a latest signal (keyed by its last candle) or a change of
/// direction (keyed by the candle that caused it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSignal {
    pub strategy: String,
    pub open_time: i64,
    pub body: String,
}

/// Everything one recomputation of a series produced, saved in one transaction.
#[derive(Debug, Clone)]
pub struct SignalUpdate {
    pub symbol: String,
    pub interval: Interval,
    /// The revision read before the candles were; see [`SignalProgress::revision`].
    pub revision: i64,
    pub through: i64,
    pub history_from: i64,
    /// Stored changes at or after this open time are replaced by `changes`.
    pub replace_from: i64,
    pub latest: Vec<StoredSignal>,
    pub changes: Vec<StoredSignal>,
}

#[async_trait]
pub trait SignalStore: Send + Sync + 'static {
    /// Every stored series with its signal bookkeeping.
    async fn signal_progress(&self) -> Result<Vec<SignalProgress>>;

    /// One series' bookkeeping.
    async fn signal_progress_of(
        &self,
        symbol: &str,
        interval: Interval,
    ) -> Result<Option<SignalProgress>>;

    /// Saves a recomputation: replaces the series' changes from `replace_from` on, upserts
    /// its latest signals and records `through` and `history_from`. The dirty mark is
    /// cleared only when the series' revision is still `update.revision`.
    async fn save_signals(&self, update: &SignalUpdate) -> Result<()>;

    /// The stored latest signals of a series, one per strategy.
    async fn latest_signals(&self, symbol: &str, interval: Interval) -> Result<Vec<StoredSignal>>;

    /// Stored changes of one strategy with `start <= open_time < end`, ascending, at most
    /// `limit`.
    async fn signal_changes(
        &self,
        symbol: &str,
        interval: Interval,
        strategy: &str,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<StoredSignal>>;
}

pub(crate) type ProgressRow = (
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(crate) const PROGRESS_COLUMNS: &str = "symbol, period, first_open_time, last_open_time, \
     revision, signals_dirty_from, signals_through, signals_history_from";

pub(crate) fn progress_from_rows(rows: Vec<ProgressRow>) -> Vec<SignalProgress> {
    rows.into_iter()
        .filter_map(
            |(symbol, period, first, last, revision, dirty, through, history)| {
                let series =
                    crate::read::series_from_rows(vec![(symbol, period, first, last)]).pop()?;
                Some(SignalProgress {
                    series,
                    revision,
                    dirty_from: dirty,
                    through,
                    history_from: history,
                })
            },
        )
        .collect()
}

pub(crate) fn stored_from_rows(rows: Vec<(String, i64, String)>) -> Vec<StoredSignal> {
    rows.into_iter()
        .map(|(strategy, open_time, body)| StoredSignal {
            strategy,
            open_time,
            body,
        })
        .collect()
}
