//! Volatility: rolling standard deviation, Bollinger Bands, ATR and NATR.

use super::window::Ring;
use super::{
    CandleColumns, Columns, Indicator, IndicatorError, Series, Wilder, all_finite, check_period,
    column, finite, finite_candle, finite_or,
};
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
    sums: AnchoredSums,
}

impl RollingVariance {
    fn new(period: usize) -> Self {
        Self {
            window: Ring::new(period),
            sums: AnchoredSums::new(period),
        }
    }

    /// Adds `x` (already checked finite); returns (mean, variance) once the window is full.
    #[inline]
    fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        self.sums.add(x);
        self.window.push(x);
        self.window
            .is_full()
            .then(|| self.sums.full(&self.window.iter(), self.window.len()))
    }
}

/// The arithmetic of [`RollingVariance`], apart from where the window is kept: a ring in
/// the incremental form, the input slice itself in the batch form.
#[derive(Debug, Clone)]
struct AnchoredSums {
    anchor: f64,
    /// Σ (x − anchor) and Σ (x − anchor)² over the window.
    sum: f64,
    sum_sq: f64,
    since_anchor: usize,
    /// `1 / period`: the means are sums times it, as in TA-Lib's VAR, rather than sums
    /// divided by the period; a division per value would cost more than the rest.
    inv: f64,
    /// How many of the latest values equal the latest one.
    run: usize,
    last: f64,
    seen: usize,
}

impl AnchoredSums {
    fn new(period: usize) -> Self {
        Self {
            anchor: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            since_anchor: 0,
            inv: 1.0 / period as f64,
            run: 0,
            last: f64::NAN,
            seen: 0,
        }
    }

    #[inline]
    fn add(&mut self, x: f64) {
        self.seen += 1;
        self.run = if x == self.last { self.run + 1 } else { 1 };
        self.last = x;
        if self.seen == 1 {
            self.anchor = x;
        }
        let d = x - self.anchor;
        self.sum += d;
        self.sum_sq += d * d;
    }

    /// With a full window of `len` values (`window`, oldest first, ending with the value
    /// just added): the mean and variance, after which the oldest leaves the sums.
    #[inline]
    fn full(&mut self, window: &(impl Iterator<Item = f64> + Clone), len: usize) -> (f64, f64) {
        self.since_anchor += 1;
        if self.since_anchor >= len {
            self.since_anchor = 0;
            self.anchor = window.clone().fold(0.0, |s, v| s + v) * self.inv;
            let anchor = self.anchor;
            (self.sum, self.sum_sq) = window.clone().fold((0.0, 0.0), |(s, q), v| {
                let d = v - anchor;
                (s + d, q + d * d)
            });
        }
        let offset = self.sum * self.inv;
        let var = self.sum_sq * self.inv - offset * offset;
        let oldest = window.clone().next().unwrap_or(self.anchor) - self.anchor;
        self.sum -= oldest;
        self.sum_sq -= oldest * oldest;
        let var = if self.run >= len || var <= 0.0 {
            0.0
        } else {
            var
        };
        (self.anchor + offset, var)
    }
}

/// Mean and variance of each full window of `values`, from index `period − 1` on, as
/// [`RollingVariance`] computes them.
fn rolling_variance(values: &[f64], period: usize) -> impl Iterator<Item = (f64, f64)> + '_ {
    let mut sums = AnchoredSums::new(period);
    let head = (period - 1).min(values.len());
    for &x in &values[..head] {
        sums.add(x);
    }
    (head..values.len()).map(move |i| {
        sums.add(values[i]);
        let window = &values[i + 1 - period..=i];
        sums.full(&window.iter().copied(), period)
    })
}

/// Rolling population standard deviation over `period` values, times `k` (TA-Lib STDDEV).
/// Lookback `period − 1`.
pub fn stddev(values: &[f64], period: usize, k: f64) -> Result<Series, IndicatorError> {
    StdDev::new(period, k)?;
    finite_or(all_finite(values), &[("value", values)])?;
    let mut out = vec![f64::NAN; values.len()];
    let head = (period - 1).min(values.len());
    let mut variances = rolling_variance(values, period);
    // Variances first, then their square roots a block at a time: a separate loop of
    // square roots vectorises, two per instruction, where in the loop above each would
    // queue at the divider behind the previous one.
    for block in out[head..].chunks_mut(SQRT_BLOCK) {
        for (slot, (_, var)) in block.iter_mut().zip(&mut variances) {
            *slot = var;
        }
        for slot in block {
            *slot = slot.sqrt() * k;
        }
    }
    Ok(Series::from_raw(out))
}

/// Values per block of the square-root pass of [`stddev`] and [`bbands`]: small enough
/// that the block is still in the L1 cache when it is read back.
const SQRT_BLOCK: usize = 256;

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
        finite(x, self.inner.sums.seen, "value")?;
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
    Bbands::new(period, k)?;
    finite_or(all_finite(values), &[("value", values)])?;
    let n = values.len();
    let mut columns = Columns::<3>::new(n);
    let [upper, middle, lower] = columns.split();
    let head = (period - 1).min(n);
    let mut moments = rolling_variance(values, period);
    // As in [`stddev`]: the variance is parked in `upper` and the square roots taken in
    // a vectorised pass over each block.
    let blocks = upper[head..]
        .chunks_mut(SQRT_BLOCK)
        .zip(middle[head..].chunks_mut(SQRT_BLOCK))
        .zip(lower[head..].chunks_mut(SQRT_BLOCK));
    for ((upper, middle), lower) in blocks {
        for ((u, m), (mean, var)) in upper.iter_mut().zip(middle.iter_mut()).zip(&mut moments) {
            (*u, *m) = (var, mean);
        }
        for ((u, &m), l) in upper.iter_mut().zip(middle.iter()).zip(lower) {
            let width = k * u.sqrt();
            (*u, *l) = (m + width, m - width);
        }
    }
    let [upper, middle, lower] = columns.finish();
    Ok(BbandsSeries {
        upper,
        middle,
        lower,
    })
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
        finite(x, self.inner.sums.seen, "value")?;
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
pub fn atr(candles: &CandleColumns, period: usize) -> Result<Series, IndicatorError> {
    average_true_range(candles, period, |atr, _| atr)
}

/// ATR over the columns, each value passed through `finish(atr, close)`: the loop of
/// [`Atr::push`] over slices, with one finiteness flag for the whole series.
fn average_true_range(
    candles: &CandleColumns,
    period: usize,
    finish: impl Fn(f64, f64) -> f64,
) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let n = close.len();
    let finite_at = |i: usize| high[i].is_finite() & low[i].is_finite() & close[i].is_finite();
    let mut ok = (0..period.min(n)).fold(true, |ok, i| ok & finite_at(i));
    let range = |i: usize| true_range(high[i], low[i], close[i - 1]);
    let out = if n <= period {
        column(n, n, std::iter::empty())
    } else {
        let mut atr = (1..=period).fold(0.0, |s, i| s + range(i)) / period as f64;
        ok &= finite_at(period);
        let wilder = Wilder::new(period);
        let mut out = vec![f64::NAN; n];
        out[period] = atr;
        // A plain loop over zipped slices: the average stays in a register and no index
        // is bounds-checked.
        let rows = high[period + 1..]
            .iter()
            .zip(&low[period + 1..])
            .zip(&close[period + 1..])
            .zip(&close[period..]);
        for (slot, (((&h, &l), &c), &prev_close)) in out[period + 1..].iter_mut().zip(rows) {
            ok &= h.is_finite() & l.is_finite() & c.is_finite();
            atr = wilder.mean(atr, true_range(h, l, prev_close));
            *slot = atr;
        }
        // `finish` in a pass of its own, which vectorises: NATR's divisions two per
        // instruction instead of one per row, queued at the divider in the loop above.
        for (slot, &c) in out[period..].iter_mut().zip(&close[period..]) {
            *slot = finish(*slot, c);
        }
        Series::from_raw(out)
    };
    finite_or(ok, &[("high", high), ("low", low), ("close", close)])?;
    Ok(out)
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
    wilder: Wilder,
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
            wilder: Wilder::new(period),
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
            self.value = self.wilder.mean(self.value, tr);
        }
        Ok(Some(self.value))
    }
}

/// Normalised ATR: 100 · ATR / close. Lookback `period`.
pub fn natr(candles: &CandleColumns, period: usize) -> Result<Series, IndicatorError> {
    average_true_range(candles, period, natr_value)
}

#[inline]
fn natr_value(atr: f64, close: f64) -> f64 {
    if close != 0.0 {
        atr / close * 100.0
    } else {
        0.0
    }
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
        Ok(self.atr.push(c)?.map(|atr| natr_value(atr, c.close)))
    }
}
