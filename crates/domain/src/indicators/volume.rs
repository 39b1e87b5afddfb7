//! Volume-weighted indicators: On-Balance Volume and the session VWAP.

use super::{Indicator, IndicatorError, Series, finite, finite_candle, run};
use crate::Candle;

/// On-Balance Volume: starts at the first candle's volume, then adds the volume of each
/// candle that closes higher and subtracts that of each that closes lower. It is a running
/// total, so its level depends on where the series starts. Lookback 0.
pub fn obv(candles: &[Candle]) -> Result<Series, IndicatorError> {
    run(Obv::new(), candles)
}

/// Incremental [`obv`].
#[derive(Debug, Clone, Default)]
pub struct Obv {
    seen: usize,
    prev_close: f64,
    total: f64,
}

impl Obv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Indicator for Obv {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite(c.close, self.seen, "close")?;
        finite(c.volume, self.seen, "volume")?;
        if self.seen == 0 {
            self.total = c.volume;
        } else if c.close > self.prev_close {
            self.total += c.volume;
        } else if c.close < self.prev_close {
            self.total -= c.volume;
        }
        self.seen += 1;
        self.prev_close = c.close;
        Ok(Some(self.total))
    }
}

const DAY_MS: i64 = 86_400_000;

/// Volume-weighted average price over the UTC day: Σ TP·volume / Σ volume since the first
/// candle of the day, TP = (high + low + close) / 3, restarting when `open_time` enters a
/// new UTC day. `None` until the day has seen some volume. TA-Lib has no VWAP.
pub fn vwap(candles: &[Candle]) -> Result<Series, IndicatorError> {
    run(Vwap::new(), candles)
}

/// Incremental [`vwap`].
#[derive(Debug, Clone, Default)]
pub struct Vwap {
    seen: usize,
    day: Option<i64>,
    weighted: f64,
    volume: f64,
}

impl Vwap {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Indicator for Vwap {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite_candle(&c, self.seen, true)?;
        self.seen += 1;
        let day = c.open_time.div_euclid(DAY_MS);
        if self.day != Some(day) {
            self.day = Some(day);
            self.weighted = 0.0;
            self.volume = 0.0;
        }
        self.weighted += (c.high + c.low + c.close) / 3.0 * c.volume;
        self.volume += c.volume;
        Ok((self.volume > 0.0).then(|| self.weighted / self.volume))
    }
}
