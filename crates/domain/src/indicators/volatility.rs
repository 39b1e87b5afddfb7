//! Volatility: rolling standard deviation, Bollinger Bands, ATR and NATR.

use super::window::Ring;
use super::{Indicator, IndicatorError, Series, check_period, finite, finite_candle, run};
use crate::Candle;

/// Rolling mean and population variance of the last `period` values.
///
/// The textbook running sums of x and x² cancel badly when the spread is small next to
/// the level (a $30 000 coin moving by $30 loses six digits) and drift over long series.
/// Instead the sums are kept of deviations from an anchor near the window's mean, and
/// the anchor is moved to the exact mean, with the sums recomputed, once every `period`
/// steps: O(1) amortised, and accurate to a few ulps of the variance itself. A window of
/// identical values has a variance of exactly zero rather than a rounding residue.
#[derive(Debug, Clone)]
struct RollingVariance {
    window: Ring,
    anchor: f64,
    /// Σ (x − anchor) and Σ (x − anchor)² over the window.
    sum: f64,
    sum_sq: f64,
    since_anchor: usize,
    /// How many of the latest values equal the latest one.
    run: usize,
    last: f64,
    seen: usize,
}

impl RollingVariance {
    fn new(period: usize) -> Self {
        Self {
            window: Ring::new(period),
            anchor: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            since_anchor: 0,
            run: 0,
            last: f64::NAN,
            seen: 0,
        }
    }

    /// Adds `x` (already checked finite); returns (mean, variance) once the window is full.
    #[inline]
    fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        self.seen += 1;
        self.run = if x == self.last { self.run + 1 } else { 1 };
        self.last = x;
        if self.seen == 1 {
            self.anchor = x;
        }
        self.window.push(x);
        let d = x - self.anchor;
        self.sum += d;
        self.sum_sq += d * d;
        if !self.window.is_full() {
            return None;
        }
        let n = self.window.len() as f64;
        self.since_anchor += 1;
        if self.since_anchor >= self.window.len() {
            self.since_anchor = 0;
            self.anchor = self.window.iter().fold(0.0, |s, v| s + v) / n;
            let anchor = self.anchor;
            (self.sum, self.sum_sq) = self.window.iter().fold((0.0, 0.0), |(s, q), v| {
                let d = v - anchor;
                (s + d, q + d * d)
            });
        }
        let offset = self.sum / n;
        let var = self.sum_sq / n - offset * offset;
        let oldest = self.window.oldest() - self.anchor;
        self.sum -= oldest;
        self.sum_sq -= oldest * oldest;
        let var = if self.run >= self.window.len() || var <= 0.0 {
            0.0
        } else {
            var
        };
        Some((self.anchor + offset, var))
    }
}

/// Rolling population standard deviation over `period` values, times `k` (TA-Lib STDDEV).
/// Lookback `period − 1`.
pub fn stddev(values: &[f64], period: usize, k: f64) -> Result<Series, IndicatorError> {
    run(StdDev::new(period, k)?, values)
}

fn check_multiplier(k: f64) -> Result<(), IndicatorError> {
    if k.is_finite() {
        Ok(())
    } else {
        Err(IndicatorError::InvalidParameter {
            name: "k",
            value: k,
            expected: "a finite number",
        })
    }
}

/// Incremental [`stddev`].
#[derive(Debug, Clone)]
pub struct StdDev {
    inner: RollingVariance,
    k: f64,
}

impl StdDev {
    pub fn new(period: usize, k: f64) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        check_multiplier(k)?;
        Ok(Self {
            inner: RollingVariance::new(period),
            k,
        })
    }
}

impl Indicator for StdDev {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.inner.seen, "value")?;
        Ok(self.inner.push(x).map(|(_, var)| var.sqrt() * self.k))
    }
}

/// The three Bollinger Band columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BbandsSeries {
    pub upper: Series,
    pub middle: Series,
    pub lower: Series,
}

/// One Bollinger Bands row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BbandsPoint {
    pub upper: Option<f64>,
    pub middle: Option<f64>,
    pub lower: Option<f64>,
}

/// Bollinger Bands (TA-Lib BBANDS with an SMA middle and `nbdevup = nbdevdn = k`):
/// SMA(`period`) ± k · population standard deviation. Lookback `period − 1`.
pub fn bbands(values: &[f64], period: usize, k: f64) -> Result<BbandsSeries, IndicatorError> {
    let mut state = Bbands::new(period, k)?;
    let mut out = BbandsSeries {
        upper: Vec::with_capacity(values.len()),
        middle: Vec::with_capacity(values.len()),
        lower: Vec::with_capacity(values.len()),
    };
    for &x in values {
        let p = state.push(x)?;
        out.upper.push(p.upper);
        out.middle.push(p.middle);
        out.lower.push(p.lower);
    }
    Ok(out)
}

/// Incremental [`bbands`].
#[derive(Debug, Clone)]
pub struct Bbands {
    inner: RollingVariance,
    k: f64,
}

impl Bbands {
    pub fn new(period: usize, k: f64) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        check_multiplier(k)?;
        Ok(Self {
            inner: RollingVariance::new(period),
            k,
        })
    }
}

impl Indicator for Bbands {
    type Input = f64;
    type Output = BbandsPoint;

    #[inline]
    fn push(&mut self, x: f64) -> Result<BbandsPoint, IndicatorError> {
        finite(x, self.inner.seen, "value")?;
        Ok(match self.inner.push(x) {
            Some((mean, var)) => {
                let width = self.k * var.sqrt();
                BbandsPoint {
                    upper: Some(mean + width),
                    middle: Some(mean),
                    lower: Some(mean - width),
                }
            }
            None => BbandsPoint::default(),
        })
    }
}

/// Average True Range with Wilder's smoothing, seeded with the mean of the first
/// `period` true ranges (the first candle has none). Lookback `period`.
pub fn atr(candles: &[Candle], period: usize) -> Result<Series, IndicatorError> {
    run(Atr::new(period)?, candles)
}

/// The candle's range stretched to include the previous close.
#[inline]
pub(crate) fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut range = high - low;
    let up = (prev_close - high).abs();
    if up > range {
        range = up;
    }
    let down = (prev_close - low).abs();
    if down > range {
        range = down;
    }
    range
}

/// Incremental [`atr`].
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    seen: usize,
    prev_close: f64,
    /// The seed sum while warming up, the average afterwards.
    value: f64,
}

impl Atr {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            period,
            seen: 0,
            prev_close: 0.0,
            value: 0.0,
        })
    }
}

impl Indicator for Atr {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite_candle(&c, self.seen, false)?;
        self.seen += 1;
        let tr = true_range(c.high, c.low, self.prev_close);
        self.prev_close = c.close;
        if self.seen == 1 {
            return Ok(None);
        }
        let n = self.period as f64;
        if self.seen <= self.period {
            self.value += tr;
            return Ok(None);
        }
        if self.seen == self.period + 1 {
            self.value = (self.value + tr) / n;
        } else {
            self.value = (self.value * (n - 1.0) + tr) / n;
        }
        Ok(Some(self.value))
    }
}

/// Normalised ATR: 100 · ATR / close. Lookback `period`.
pub fn natr(candles: &[Candle], period: usize) -> Result<Series, IndicatorError> {
    run(Natr::new(period)?, candles)
}

/// Incremental [`natr`].
#[derive(Debug, Clone)]
pub struct Natr {
    atr: Atr,
}

impl Natr {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self {
            atr: Atr::new(period)?,
        })
    }
}

impl Indicator for Natr {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        Ok(self.atr.push(c)?.map(|atr| {
            if c.close != 0.0 {
                atr / c.close * 100.0
            } else {
                0.0
            }
        }))
    }
}
