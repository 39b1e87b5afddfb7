//! Loading closed candles for computations that must not look ahead: signals and
//! backtests see a candle only once its interval has ended.

use marketd_domain::{Candle, Interval};
use marketd_storage::{CandleRange, SourceChoice, Store, read_bars};

use crate::error::ApiError;

/// Candles read per round trip.
const PAGE: u32 = 10_000;

/// Candles of `symbol` at `interval` opening at or after `start` whose interval has ended
/// by `until`, ascending, with the source they were read from (`Unavailable` when
/// nothing stored can supply the interval).
pub async fn closed_candles(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    start: i64,
    until: i64,
) -> Result<(Vec<Candle>, SourceChoice), ApiError> {
    let stored = store.series(Some(symbol)).await?;
    let start = interval.bucket_start(start);
    let choice = SourceChoice::pick(&stored, symbol, interval, start);
    // A bucket opening before this instant has closed by `until`.
    let end = interval.bucket_start(until);
    let mut candles = Vec::new();
    let mut range = CandleRange {
        symbol: symbol.to_owned(),
        interval,
        start,
        end,
    };
    while range.start < range.end {
        let page = read_bars(store, &range, choice, PAGE).await?;
        candles.extend(page.bars.iter().map(|bar| bar.candle));
        match page.next_start {
            Some(next) => range.start = next,
            None => break,
        }
    }
    Ok((candles, choice))
}

/// Bars a year holds at `interval`, for annualising returns.
pub fn periods_per_year(interval: Interval) -> f64 {
    365.25 * 86_400_000.0 / interval.millis() as f64
}
