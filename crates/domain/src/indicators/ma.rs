//! Moving averages: SMA, EMA, WMA and the EMA cascades DEMA and TEMA.

use super::window::Ring;
use super::{Indicator, IndicatorError, Series, check_period, finite, run};

/// TA-Lib's smoothing factor for an EMA of `period` values.
fn ema_k(period: usize) -> f64 {
    2.0 / (period as f64 + 1.0)
}

/// Simple moving average: the mean of the last `period` values. Lookback `period - 1`.
pub fn sma(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let mut out = Vec::with_capacity(values.len());
    let head = (period - 1).min(values.len());
    // A running total, updated in the same order as TA-Lib's so the sums round alike.
    let mut total = 0.0;
    for (i, &x) in values[..head].iter().enumerate() {
        total += finite(x, i, "value")?;
        out.push(None);
    }
    let divisor = period as f64;
    for i in head..values.len() {
        total += finite(values[i], i, "value")?;
        let window = total;
        total -= values[i + 1 - period];
        out.push(Some(window / divisor));
    }
    Ok(out)
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
    let mut out = Vec::with_capacity(values.len());
    if values.len() < period {
        for (i, &x) in values.iter().enumerate() {
            finite(x, i, "value")?;
            out.push(None);
        }
        return Ok(out);
    }
    let mut seed = 0.0;
    for (i, &x) in values[..period].iter().enumerate() {
        seed += finite(x, i, "value")?;
    }
    out.resize(period - 1, None);
    let k = ema_k(period);
    let mut prev = seed / period as f64;
    out.push(Some(prev));
    for (i, &x) in values.iter().enumerate().skip(period) {
        prev = (finite(x, i, "value")? - prev) * k + prev;
        out.push(Some(prev));
    }
    Ok(out)
}

/// Incremental [`ema`].
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    k: f64,
    seen: usize,
    /// The running seed sum while warming up, the average afterwards.
    value: f64,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self::with_k(period, ema_k(period)))
    }

    pub(crate) fn with_k(period: usize, k: f64) -> Self {
        Self {
            period,
            k,
            seen: 0,
            value: 0.0,
        }
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
            self.value = (x - self.value) * self.k + self.value;
        }
        Ok(Some(self.value))
    }
}

/// Weighted moving average: weights 1..=period, newest heaviest. Lookback `period - 1`.
pub fn wma(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    run(Wma::new(period)?, values)
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
    run(Dema::new(period)?, values)
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
    run(Tema::new(period)?, values)
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
