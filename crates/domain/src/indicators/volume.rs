//! Volume-weighted indicators: On-Balance Volume and the session VWAP.

use super::{
    CandleColumns, Indicator, IndicatorError, Series, column, finite, finite_candle, finite_or,
};
use crate::Candle;

/// On-Balance Volume: starts at the first candle's volume, then adds the volume of each
/// candle that closes higher and subtracts that of each that closes lower. It is a running
/// total, so its level depends on where the series starts. Lookback 0.
pub fn obv(candles: &CandleColumns) -> Result<Series, IndicatorError> {
    let (close, volume) = (candles.close(), candles.volume());
    let mut ok = true;
    let mut total = 0.0;
    // `prev` is the close before `c`; the first candle has none and counts as a rise.
    let prev = std::iter::once(f64::NEG_INFINITY).chain(close.iter().copied());
    let mut out = vec![0.0; close.len()];
    for (slot, ((&c, &v), prev)) in out.iter_mut().zip(close.iter().zip(volume).zip(prev)) {
        ok &= c.is_finite() & v.is_finite();
        // Branch-free: the direction of a random walk is a coin toss, which a branch
        // mispredicts half the time. ±1·v and 0·v add exactly what the branches would.
        let direction = f64::from(u8::from(c > prev)) - f64::from(u8::from(c < prev));
        total += direction * v;
        *slot = total;
    }
    finite_or(ok, &[("close", close), ("volume", volume)])?;
    Ok(Series::from_raw(out))
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
pub fn vwap(candles: &CandleColumns) -> Result<Series, IndicatorError> {
    let (high, low, close, volume) = (
        candles.high(),
        candles.low(),
        candles.close(),
        candles.volume(),
    );
    let mut ok = true;
    let (mut weighted, mut traded) = (0.0, 0.0);
    let mut today = None;
    let defined = (0..close.len()).map(|i| {
        let (h, l, c, v) = (high[i], low[i], close[i], volume[i]);
        ok &= h.is_finite() & l.is_finite() & c.is_finite() & v.is_finite();
        let day = candles.open_time()[i].div_euclid(DAY_MS);
        if today != Some(day) {
            today = Some(day);
            (weighted, traded) = (0.0, 0.0);
        }
        weighted += (h + l + c) / 3.0 * v;
        traded += v;
        if traded > 0.0 {
            weighted / traded
        } else {
            f64::NAN
        }
    });
    let out = column(close.len(), 0, defined);
    let fields = [
        ("high", high),
        ("low", low),
        ("close", close),
        ("volume", volume),
    ];
    finite_or(ok, &fields)?;
    Ok(out)
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
