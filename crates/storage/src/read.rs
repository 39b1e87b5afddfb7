//! Reading candles at any interval: natively stored ones as they are, coarser ones
//! derived from the finest stored interval that divides them.

use std::sync::Arc;

use futures::Stream;
use marketd_domain::{Aggregator, Bar, Interval};

use crate::{Result, SeriesInfo, Store};

/// Fine candles fetched per round trip while deriving a coarser interval.
const DERIVE_CHUNK: u32 = 10_000;

/// A half-open window of one series: candles with `start <= open_time < end`.
#[derive(Debug, Clone)]
pub struct CandleRange {
    pub symbol: String,
    pub interval: Interval,
    pub start: i64,
    pub end: i64,
}

/// Where the candles of a requested interval come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// Stored at exactly this interval.
    Native,
    /// Aggregated from this finer stored interval.
    Derived(Interval),
    /// Nothing stored that could supply it.
    Unavailable,
}

impl SourceChoice {
    /// Picks the native series if stored. Otherwise derives from the finest stored interval
    /// that divides `interval` and whose data reaches back to `window_start`; if none
    /// reaches that far, from the one with the longest history. Finer sources make
    /// complete buckets; but a fine series kept only for recent days must not hide the
    /// longer history of a coarser one.
    pub fn pick(
        stored: &[SeriesInfo],
        symbol: &str,
        interval: Interval,
        window_start: i64,
    ) -> Self {
        let mut candidates: Vec<&SeriesInfo> = stored
            .iter()
            .filter(|s| {
                s.symbol == symbol && (s.interval == interval || s.interval.divides(interval))
            })
            .collect();
        if candidates.iter().any(|s| s.interval == interval) {
            return SourceChoice::Native;
        }
        candidates.retain(|s| s.interval < interval);
        let covering = candidates
            .iter()
            .filter(|s| s.first_open_time <= window_start)
            .min_by_key(|s| s.interval);
        let longest = candidates
            .iter()
            .min_by_key(|s| (s.first_open_time, s.interval));
        covering.or(longest).map_or(SourceChoice::Unavailable, |s| {
            SourceChoice::Derived(s.interval)
        })
    }

    /// The interval rows are read from, if any.
    pub fn source_interval(self, requested: Interval) -> Option<Interval> {
        match self {
            SourceChoice::Native => Some(requested),
            SourceChoice::Derived(fine) => Some(fine),
            SourceChoice::Unavailable => None,
        }
    }
}

/// One page of bars and where the next page starts, if there is one.
#[derive(Debug, Clone)]
pub struct BarPage {
    pub bars: Vec<Bar>,
    pub next_start: Option<i64>,
}

/// Reads up to `limit` bars of `range`, ascending. `range.start` should be aligned to the
/// interval; a bar is included when its bucket opens inside the range.
pub async fn read_bars(
    store: &dyn Store,
    range: &CandleRange,
    choice: SourceChoice,
    limit: u32,
) -> Result<BarPage> {
    read(store, range, choice, limit, Sources::Read).await
}

/// [`read_bars`] for computing on the values alone: native bars may come without their
/// `source` (see [`Store::candle_values`]).
pub async fn read_bar_values(
    store: &dyn Store,
    range: &CandleRange,
    choice: SourceChoice,
    limit: u32,
) -> Result<BarPage> {
    read(store, range, choice, limit, Sources::MaySkip).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sources {
    Read,
    MaySkip,
}

async fn read(
    store: &dyn Store,
    range: &CandleRange,
    choice: SourceChoice,
    limit: u32,
    sources: Sources,
) -> Result<BarPage> {
    let limit = limit.max(1);
    match choice {
        SourceChoice::Unavailable => Ok(BarPage {
            bars: Vec::new(),
            next_start: None,
        }),
        SourceChoice::Native => {
            let (symbol, interval) = (&range.symbol, range.interval);
            let (start, end, limit_read) = (range.start, range.end, limit + 1);
            let mut bars = match sources {
                Sources::Read => {
                    store
                        .candles(symbol, interval, start, end, limit_read)
                        .await?
                }
                Sources::MaySkip => {
                    store
                        .candle_values(symbol, interval, start, end, limit_read)
                        .await?
                }
            };
            let next_start = split_off_next(&mut bars, limit);
            Ok(BarPage { bars, next_start })
        }
        SourceChoice::Derived(fine) => derive_page(store, range, fine, limit).await,
    }
}

fn split_off_next(bars: &mut Vec<Bar>, limit: u32) -> Option<i64> {
    let limit = limit as usize;
    let next = bars.get(limit).map(|b| b.candle.open_time);
    bars.truncate(limit);
    next
}

async fn derive_page(
    store: &dyn Store,
    range: &CandleRange,
    fine: Interval,
    limit: u32,
) -> Result<BarPage> {
    // The last bucket that opens before `end` may close after it: read its fine candles too.
    let fine_end = range.interval.ceil(range.end);
    let mut aggregator = Aggregator::new(range.interval);
    let mut bars = Vec::new();
    let mut cursor = range.start;
    loop {
        let chunk = store
            .candles(&range.symbol, fine, cursor, fine_end, DERIVE_CHUNK)
            .await?;
        let exhausted = chunk.len() < DERIVE_CHUNK as usize;
        if let Some(last) = chunk.last() {
            cursor = last.candle.open_time + 1;
        }
        bars.extend(chunk.into_iter().filter_map(|bar| aggregator.push(bar)));
        if bars.len() > limit as usize {
            break;
        }
        if exhausted {
            bars.extend(aggregator.finish());
            break;
        }
    }
    bars.retain(|b| b.candle.open_time < range.end);
    let next_start = split_off_next(&mut bars, limit);
    Ok(BarPage { bars, next_start })
}

/// Streams every bar of `range` in pages of `page_size`, holding one page at a time, and
/// stops after `max_rows` bars.
pub fn stream_bars(
    store: Arc<dyn Store>,
    range: CandleRange,
    choice: SourceChoice,
    page_size: u32,
    max_rows: u64,
) -> impl Stream<Item = Result<Vec<Bar>>> + Send + 'static {
    struct State {
        store: Arc<dyn Store>,
        range: CandleRange,
        next: Option<i64>,
        remaining: u64,
    }
    let start = range.start;
    let state = State {
        store,
        range,
        next: Some(start),
        remaining: max_rows,
    };
    futures::stream::unfold(state, move |mut state| async move {
        let start = state.next?;
        if state.remaining == 0 {
            return None;
        }
        let page_limit =
            u32::try_from(state.remaining.min(u64::from(page_size))).unwrap_or(page_size);
        let range = CandleRange {
            start,
            ..state.range.clone()
        };
        match read_bars(state.store.as_ref(), &range, choice, page_limit).await {
            Ok(page) => {
                state.next = page.next_start;
                state.remaining -= page.bars.len() as u64;
                Some((Ok(page.bars), state))
            }
            Err(err) => {
                state.next = None;
                Some((Err(err), state))
            }
        }
    })
}

pub(crate) fn series_from_rows(rows: Vec<(String, String, i64, i64)>) -> Vec<SeriesInfo> {
    rows.into_iter()
        .filter_map(|(symbol, period, first_open_time, last_open_time)| {
            // A period this build does not know (written by a newer version) is skipped.
            let interval = period.parse().ok()?;
            Some(SeriesInfo {
                symbol,
                interval,
                first_open_time,
                last_open_time,
            })
        })
        .collect()
}
