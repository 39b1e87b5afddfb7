//! Moving averages: SMA, EMA, WMA and the EMA cascades DEMA and TEMA.

use super::smoothing::{Smoothed, Smoothing};
use super::window::Ring;
use super::{Indicator, IndicatorError, Series, check_period, column, finite, finite_or};

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
    let smoothing = Smoothing::ema(period);
    let seed = values[..period].iter().fold(0.0, |s, &x| s + x) / period as f64;
    let mut out = vec![f64::NAN; n];
    out[period - 1] = seed;
    // The finiteness check rides along in the loop instead of taking a pass of its own.
    let mut ok = super::all_finite(&values[..period]);
    // The first step before the loop, so that the loop has only the two-step form.
    let mut rows = out[period..].iter_mut().zip(&values[period..]);
    if let Some((slot, &x)) = rows.next() {
        ok &= x.is_finite();
        let mut ema = smoothing.first(seed, x);
        *slot = ema.value;
        for (slot, &x) in rows {
            ok &= x.is_finite();
            ema = smoothing.next(ema, x);
            *slot = ema.value;
        }
    }
    finite_or(ok, &[("value", values)])?;
    Ok(Series::from_raw(out))
}

/// Incremental [`ema`].
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    smoothing: Smoothing,
    seen: usize,
    /// The running seed sum (in `value`) while warming up, the average afterwards.
    state: Smoothed,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            period,
            smoothing: Smoothing::ema(period),
            seen: 0,
            state: Smoothed::default(),
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
            self.state.value += x;
            return Ok(None);
        }
        if self.seen == self.period {
            self.state = Smoothing::start((self.state.value + x) / self.period as f64);
            Ok(Some(self.state.value))
        } else {
            Ok(Some(self.smoothing.step(&mut self.state, x)))
        }
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
    let step = Smoothing::ema(period);
    let p = period as f64;
    let mean = |xs: &[f64]| xs.iter().fold(0.0, |s, &x| s + x) / p;
    // Seed each stage from the first `period` outputs of the stage before it, stepping
    // as [`Ema::push`] does.
    let mut e1 = Smoothing::start(mean(&values[..period]));
    let mut firsts = Vec::with_capacity(2 * period);
    firsts.push(e1.value);
    for &x in &values[period..(STAGES - 1) * (period - 1) + period] {
        firsts.push(step.step(&mut e1, x));
    }
    let combine = |e1: Smoothed, e2: Smoothed, e3: Smoothed| {
        if STAGES == 2 {
            2.0 * e1.value - e2.value
        } else {
            3.0 * e1.value - 3.0 * e2.value + e3.value
        }
    };
    let mut e2 = Smoothing::start(mean(&firsts[..period]));
    let mut e3 = Smoothing::start(0.0);
    if STAGES == 3 {
        let mut seconds = Vec::with_capacity(period);
        seconds.push(e2.value);
        for &x in &firsts[period..] {
            seconds.push(step.step(&mut e2, x));
        }
        e3 = Smoothing::start(mean(&seconds));
    }
    // A plain loop over the output with the averages in locals: each stage is two
    // interleaved multiply-add chains, and the stages overlap across iterations. The
    // first step is taken before the loop (a stage may have just been seeded), so the
    // loop has only the two-step form. The finiteness check rides along instead of
    // taking a pass of its own.
    let mut out = vec![f64::NAN; n];
    out[lookback] = combine(e1, e2, e3);
    let mut ok = super::all_finite(&values[..=lookback]);
    let mut rows = out[lookback + 1..].iter_mut().zip(&values[lookback + 1..]);
    if let Some((slot, &x)) = rows.next() {
        ok &= x.is_finite();
        step.step(&mut e1, x);
        step.step(&mut e2, e1.value);
        if STAGES == 3 {
            step.step(&mut e3, e2.value);
        }
        *slot = combine(e1, e2, e3);
        for (slot, &x) in rows {
            ok &= x.is_finite();
            e1 = step.next(e1, x);
            e2 = step.next(e2, e1.value);
            if STAGES == 3 {
                e3 = step.next(e3, e2.value);
            }
            *slot = combine(e1, e2, e3);
        }
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
