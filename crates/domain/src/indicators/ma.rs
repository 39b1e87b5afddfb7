//! Moving averages: SMA, EMA, WMA and the EMA cascades DEMA and TEMA.

use super::window::Ring;
use super::{Indicator, IndicatorError, Series, check_period, column, finite, finite_or};

/// TA-Lib's smoothing factor for an EMA of `period` values.
fn ema_k(period: usize) -> f64 {
    2.0 / (period as f64 + 1.0)
}

/// Simple moving average: the mean of the last `period` values. Lookback `period - 1`.
pub fn sma(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    // Straight into the output column: a second column-sized buffer would cost more in
    // fresh memory pages than the arithmetic does.
    let mut ok = true;
    let out = column(
        values.len(),
        period - 1,
        rolling_means(values, period, &mut ok),
    );
    finite_or(ok, &[("value", values)])?;
    Ok(out)
}

/// The defined part of an SMA (`values.len() − period + 1` means, or none); `ok` is
/// cleared on a non-finite value. A running total, updated in the same order as TA-Lib's
/// (and [`Sma`]'s) so the sums round alike.
fn rolling_means<'a>(
    values: &'a [f64],
    period: usize,
    ok: &'a mut bool,
) -> impl Iterator<Item = f64> + 'a {
    let head = (period - 1).min(values.len());
    let mut total = 0.0;
    for &x in &values[..head] {
        *ok &= x.is_finite();
        total += x;
    }
    let divisor = period as f64;
    // `old` runs `period − 1` behind `x`: the value that leaves the window after `x`'s.
    values[head..].iter().zip(values).map(move |(&x, &old)| {
        *ok &= x.is_finite();
        total += x;
        let window = total;
        total -= old;
        window / divisor
    })
}

/// Incremental [`sma`].
#[derive(Debug, Clone)]
pub struct Sma {
    window: Ring,
    total: f64,
    seen: usize,
}

impl Sma {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            window: Ring::new(period),
            total: 0.0,
            seen: 0,
        })
    }
}

impl Indicator for Sma {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        self.total += x;
        self.window.push(x);
        if !self.window.is_full() {
            return Ok(None);
        }
        let window = self.total;
        self.total -= self.window.oldest();
        Ok(Some(window / self.window.len() as f64))
    }
}

/// Exponential moving average with k = 2 / (period + 1), seeded with the SMA of the first
/// `period` values. Lookback `period - 1`.
pub fn ema(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let n = values.len();
    if n < period {
        finite_or(super::all_finite(values), &[("value", values)])?;
        return Ok(column(n, n, std::iter::empty()));
    }
    let smoothing = EmaStep::new(period);
    let mut prev = values[..period].iter().fold(0.0, |s, &x| s + x) / period as f64;
    let mut out = vec![f64::NAN; n];
    out[period - 1] = prev;
    // The finiteness check rides along in the loop instead of taking a pass of its own.
    let mut ok = super::all_finite(&values[..period]);
    for (slot, &x) in out[period..].iter_mut().zip(&values[period..]) {
        ok &= x.is_finite();
        prev = smoothing.next(prev, x);
        *slot = prev;
    }
    finite_or(ok, &[("value", values)])?;
    Ok(Series::from_raw(out))
}

/// One EMA step, `prev + k·(x − prev)`, computed as `k·x + (1 − k)·prev`: equal to a few
/// ulps, but the value carried from step to step waits on a multiply and an add rather
/// than a subtraction, a multiply and an add, a third less latency in a loop that does
/// nothing else.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmaStep {
    k: f64,
    keep: f64,
}

impl EmaStep {
    pub(crate) fn new(period: usize) -> Self {
        let k = ema_k(period);
        Self { k, keep: 1.0 - k }
    }

    #[inline]
    pub(crate) fn next(self, prev: f64, x: f64) -> f64 {
        x * self.k + prev * self.keep
    }
}

/// Incremental [`ema`].
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    step: EmaStep,
    seen: usize,
    /// The running seed sum while warming up, the average afterwards.
    value: f64,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            period,
            step: EmaStep::new(period),
            seen: 0,
            value: 0.0,
        })
    }
}

impl Indicator for Ema {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        if self.seen < self.period {
            self.value += x;
            return Ok(None);
        }
        if self.seen == self.period {
            self.value = (self.value + x) / self.period as f64;
        } else {
            self.value = self.step.next(self.value, x);
        }
        Ok(Some(self.value))
    }
}

/// Weighted moving average: weights 1..=period, newest heaviest. Lookback `period - 1`.
pub fn wma(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let n = values.len();
    let head = (period - 1).min(n);
    let mut ok = true;
    // The same sums, in the same order, as [`Wma::push`].
    let (mut weighted, mut plain, mut trailing) = (0.0, 0.0, 0.0);
    for (i, &x) in values[..head].iter().enumerate() {
        ok &= x.is_finite();
        plain += x;
        weighted += x * (i + 1) as f64;
    }
    let weight = period as f64;
    let divisor = ((period * (period + 1)) / 2) as f64;
    let mut out = vec![f64::NAN; n];
    // `oldest` runs `period − 1` behind `x`; it leaves the plain sum one step later.
    for ((slot, &x), &oldest) in out[head..].iter_mut().zip(&values[head..]).zip(values) {
        ok &= x.is_finite();
        plain += x;
        plain -= trailing;
        weighted += x * weight;
        trailing = oldest;
        *slot = weighted / divisor;
        weighted -= plain;
    }
    finite_or(ok, &[("value", values)])?;
    Ok(Series::from_raw(out))
}

/// Incremental [`wma`]. Keeps the weighted sum and the plain sum of the window so each
/// step costs O(1): sliding the window lowers every weight by one, i.e. subtracts the sum.
#[derive(Debug, Clone)]
pub struct Wma {
    window: Ring,
    weighted: f64,
    plain: f64,
    trailing: f64,
    divisor: f64,
    seen: usize,
}

impl Wma {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            window: Ring::new(period),
            weighted: 0.0,
            plain: 0.0,
            trailing: 0.0,
            divisor: ((period * (period + 1)) / 2) as f64,
            seen: 0,
        })
    }
}

impl Indicator for Wma {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        self.window.push(x);
        self.plain += x;
        if !self.window.is_full() {
            self.weighted += x * self.seen as f64;
            return Ok(None);
        }
        self.plain -= self.trailing;
        self.weighted += x * self.window.len() as f64;
        self.trailing = self.window.oldest();
        let out = self.weighted / self.divisor;
        self.weighted -= self.plain;
        Ok(Some(out))
    }
}

/// Double EMA: 2·EMA − EMA(EMA). Lookback `2·(period − 1)`.
pub fn dema(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    ema_cascade::<2>(values, period)
}

/// DEMA (`STAGES = 2`) or TEMA (3) in one pass: each stage is an EMA of the one before,
/// seeded like [`Ema`] with the mean of its first `period` inputs. The stages' carried
/// values are independent chains, so running them in one loop overlaps their latencies
/// and costs little more than a single EMA.
fn ema_cascade<const STAGES: usize>(
    values: &[f64],
    period: usize,
) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let n = values.len();
    let lookback = STAGES * (period - 1);
    if n <= lookback {
        finite_or(super::all_finite(values), &[("value", values)])?;
        return Ok(column(n, n, std::iter::empty()));
    }
    let step = EmaStep::new(period);
    let p = period as f64;
    let mean = |xs: &[f64]| xs.iter().fold(0.0, |s, &x| s + x) / p;
    // Seed each stage from the first `period` outputs of the stage before it.
    let mut e1 = mean(&values[..period]);
    let mut firsts = Vec::with_capacity(2 * period);
    firsts.push(e1);
    for &x in &values[period..(STAGES - 1) * (period - 1) + period] {
        e1 = step.next(e1, x);
        firsts.push(e1);
    }
    let combine = |e1: f64, e2: f64, e3: f64| {
        if STAGES == 2 {
            2.0 * e1 - e2
        } else {
            3.0 * e1 - 3.0 * e2 + e3
        }
    };
    let mut e2 = mean(&firsts[..period]);
    let mut e3 = 0.0;
    if STAGES == 3 {
        let mut seconds = Vec::with_capacity(period);
        seconds.push(e2);
        for &x in &firsts[period..] {
            e2 = step.next(e2, x);
            seconds.push(e2);
        }
        e3 = mean(&seconds);
    }
    // A plain loop over the output with the three averages in locals: each stage is
    // one multiply-add chain, and the stages overlap across iterations. The finiteness
    // check rides along instead of taking a pass of its own.
    let mut out = vec![f64::NAN; n];
    out[lookback] = combine(e1, e2, e3);
    let mut ok = super::all_finite(&values[..=lookback]);
    for (slot, &x) in out[lookback + 1..].iter_mut().zip(&values[lookback + 1..]) {
        ok &= x.is_finite();
        e1 = step.next(e1, x);
        e2 = step.next(e2, e1);
        if STAGES == 3 {
            e3 = step.next(e3, e2);
        }
        *slot = combine(e1, e2, e3);
    }
    finite_or(ok, &[("value", values)])?;
    Ok(Series::from_raw(out))
}

/// Incremental [`dema`].
#[derive(Debug, Clone)]
pub struct Dema {
    first: Ema,
    second: Ema,
}

impl Dema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self {
            first: Ema::new(period)?,
            second: Ema::new(period)?,
        })
    }
}

impl Indicator for Dema {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        let Some(e1) = self.first.push(x)? else {
            return Ok(None);
        };
        Ok(self.second.push(e1)?.map(|e2| 2.0 * e1 - e2))
    }
}

/// Triple EMA: 3·EMA − 3·EMA(EMA) + EMA(EMA(EMA)). Lookback `3·(period − 1)`.
pub fn tema(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    ema_cascade::<3>(values, period)
}

/// Incremental [`tema`].
#[derive(Debug, Clone)]
pub struct Tema {
    first: Ema,
    second: Ema,
    third: Ema,
}

impl Tema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self {
            first: Ema::new(period)?,
            second: Ema::new(period)?,
            third: Ema::new(period)?,
        })
    }
}

impl Indicator for Tema {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        let Some(e1) = self.first.push(x)? else {
            return Ok(None);
        };
        let Some(e2) = self.second.push(e1)? else {
            return Ok(None);
        };
        Ok(self.third.push(e2)?.map(|e3| 3.0 * e1 - 3.0 * e2 + e3))
    }
}
