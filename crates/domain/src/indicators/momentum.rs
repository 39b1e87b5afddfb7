//! Oscillators and momentum: RSI, MACD, Stochastic, Stochastic RSI, Williams %R, ROC,
//! CCI and MFI.

use super::ma::{Ema, Sma};
use super::window::{Extreme, Ring};
use super::{Indicator, IndicatorError, Series, check_period, finite, finite_candle, run};
use crate::Candle;

/// Relative Strength Index with Wilder's smoothing: the first average gain and loss are
/// plain means of the first `period` changes, later ones `(prev·(period−1) + x) / period`.
/// 0 while nothing has moved at all. Lookback `period`.
pub fn rsi(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    run(Rsi::new(period)?, values)
}

/// Incremental [`rsi`].
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    seen: usize,
    prev: f64,
    gain: f64,
    loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            period,
            seen: 0,
            prev: 0.0,
            gain: 0.0,
            loss: 0.0,
        })
    }
}

impl Indicator for Rsi {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        let change = x - self.prev;
        self.prev = x;
        if self.seen == 1 {
            return Ok(None);
        }
        let n = self.period as f64;
        let seeding = self.seen <= self.period + 1;
        if !seeding {
            self.loss *= n - 1.0;
            self.gain *= n - 1.0;
        }
        if change < 0.0 {
            self.loss -= change;
        } else {
            self.gain += change;
        }
        if seeding && self.seen <= self.period {
            return Ok(None);
        }
        self.loss /= n;
        self.gain /= n;
        let total = self.gain + self.loss;
        Ok(Some(if total != 0.0 {
            100.0 * (self.gain / total)
        } else {
            0.0
        }))
    }
}

/// The three MACD columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MacdSeries {
    pub macd: Series,
    pub signal: Series,
    pub hist: Series,
}

/// One MACD row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MacdPoint {
    pub macd: Option<f64>,
    pub signal: Option<f64>,
    pub hist: Option<f64>,
}

/// MACD: EMA(fast) − EMA(slow), its EMA(signal), and their difference.
///
/// As in TA-Lib, both EMAs are seeded on candle `slow − 1` (the fast one with the SMA of
/// the `fast` values ending there), and all three columns start together once the signal
/// is defined: lookback `slow + signal − 2`.
pub fn macd(
    values: &[f64],
    fast: usize,
    slow: usize,
    signal: usize,
) -> Result<MacdSeries, IndicatorError> {
    let mut state = Macd::new(fast, slow, signal)?;
    let mut out = MacdSeries {
        macd: Vec::with_capacity(values.len()),
        signal: Vec::with_capacity(values.len()),
        hist: Vec::with_capacity(values.len()),
    };
    for &x in values {
        let p = state.push(x)?;
        out.macd.push(p.macd);
        out.signal.push(p.signal);
        out.hist.push(p.hist);
    }
    Ok(out)
}

/// Incremental [`macd`].
#[derive(Debug, Clone)]
pub struct Macd {
    fast: usize,
    slow: usize,
    k_fast: f64,
    k_slow: f64,
    seen: usize,
    /// Seed sums while warming up, then the EMAs themselves.
    fast_ema: f64,
    slow_ema: f64,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, IndicatorError> {
        check_period("fast", fast, 1)?;
        check_period("signal", signal, 1)?;
        if slow <= fast {
            return Err(IndicatorError::InvalidParameter {
                name: "slow",
                value: slow as f64,
                expected: "greater than fast",
            });
        }
        Ok(Self {
            fast,
            slow,
            k_fast: 2.0 / (fast as f64 + 1.0),
            k_slow: 2.0 / (slow as f64 + 1.0),
            seen: 0,
            fast_ema: 0.0,
            slow_ema: 0.0,
            signal: Ema::new(signal)?,
        })
    }
}

impl Indicator for Macd {
    type Input = f64;
    type Output = MacdPoint;

    #[inline]
    fn push(&mut self, x: f64) -> Result<MacdPoint, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        if self.seen < self.slow {
            self.slow_ema += x;
            if self.seen > self.slow - self.fast {
                self.fast_ema += x;
            }
            return Ok(MacdPoint::default());
        }
        if self.seen == self.slow {
            self.slow_ema = (self.slow_ema + x) / self.slow as f64;
            self.fast_ema = (self.fast_ema + x) / self.fast as f64;
        } else {
            self.slow_ema = (x - self.slow_ema) * self.k_slow + self.slow_ema;
            self.fast_ema = (x - self.fast_ema) * self.k_fast + self.fast_ema;
        }
        let line = self.fast_ema - self.slow_ema;
        Ok(match self.signal.push(line)? {
            Some(signal) => MacdPoint {
                macd: Some(line),
                signal: Some(signal),
                hist: Some(line - signal),
            },
            None => MacdPoint::default(),
        })
    }
}

/// %K and %D of a stochastic oscillator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StochSeries {
    pub k: Series,
    pub d: Series,
}

/// One stochastic row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StochPoint {
    pub k: Option<f64>,
    pub d: Option<f64>,
}

/// Whether `difference` of two quantities of size `scale` is rounding noise rather than a
/// real difference: below about 90 ulps of the operands. Relative, so an asset quoted in
/// millionths of a dollar keeps its signal.
#[inline]
pub(crate) fn negligible(difference: f64, scale: f64) -> bool {
    difference.abs() <= 1e-14 * scale
}

/// Where `close` sits in the `[lowest, highest]` range, in percent; 0 for an empty range.
#[inline]
fn percent_k(close: f64, lowest: f64, highest: f64) -> f64 {
    let range = highest - lowest;
    if negligible(range, highest.abs() + lowest.abs()) {
        0.0
    } else {
        (close - lowest) / (range / 100.0)
    }
}

fn stoch_columns<I>(mut state: I, inputs: &[I::Input]) -> Result<StochSeries, IndicatorError>
where
    I: Indicator<Output = StochPoint>,
    I::Input: Copy,
{
    let mut out = StochSeries {
        k: Vec::with_capacity(inputs.len()),
        d: Vec::with_capacity(inputs.len()),
    };
    for &input in inputs {
        let p = state.push(input)?;
        out.k.push(p.k);
        out.d.push(p.d);
    }
    Ok(out)
}

/// Slow stochastic (TA-Lib STOCH with SMA smoothing): fast %K over `fastk` candles,
/// slow %K = SMA(`slowk`) of it, %D = SMA(`slowd`) of slow %K. Both columns start at
/// `fastk + slowk + slowd − 3`.
pub fn stoch(
    candles: &[Candle],
    fastk: usize,
    slowk: usize,
    slowd: usize,
) -> Result<StochSeries, IndicatorError> {
    stoch_columns(Stoch::new(fastk, slowk, slowd)?, candles)
}

/// Incremental [`stoch`].
#[derive(Debug, Clone)]
pub struct Stoch {
    highest: Extreme<true>,
    lowest: Extreme<false>,
    fastk: usize,
    slowk: Sma,
    slowd: Sma,
    seen: usize,
}

impl Stoch {
    pub fn new(fastk: usize, slowk: usize, slowd: usize) -> Result<Self, IndicatorError> {
        check_period("fastk", fastk, 1)?;
        Ok(Self {
            highest: Extreme::new(fastk),
            lowest: Extreme::new(fastk),
            fastk,
            slowk: Sma::new(slowk)?,
            slowd: Sma::new(slowd)?,
            seen: 0,
        })
    }
}

impl Indicator for Stoch {
    type Input = Candle;
    type Output = StochPoint;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<StochPoint, IndicatorError> {
        finite_candle(&c, self.seen, false)?;
        self.seen += 1;
        let highest = self.highest.push(c.high);
        let lowest = self.lowest.push(c.low);
        if self.seen < self.fastk {
            return Ok(StochPoint::default());
        }
        let Some(k) = self.slowk.push(percent_k(c.close, lowest, highest))? else {
            return Ok(StochPoint::default());
        };
        Ok(match self.slowd.push(k)? {
            Some(d) => StochPoint {
                k: Some(k),
                d: Some(d),
            },
            None => StochPoint::default(),
        })
    }
}

/// Stochastic RSI (TA-Lib STOCHRSI, SMA for %D): the fast stochastic of RSI(`period`)
/// over `fastk` values, %D its SMA(`fastd`). Both start at `period + fastk + fastd − 2`.
pub fn stochrsi(
    values: &[f64],
    period: usize,
    fastk: usize,
    fastd: usize,
) -> Result<StochSeries, IndicatorError> {
    stoch_columns(StochRsi::new(period, fastk, fastd)?, values)
}

/// Incremental [`stochrsi`].
#[derive(Debug, Clone)]
pub struct StochRsi {
    rsi: Rsi,
    highest: Extreme<true>,
    lowest: Extreme<false>,
    fastk: usize,
    rsi_seen: usize,
    fastd: Sma,
}

impl StochRsi {
    pub fn new(period: usize, fastk: usize, fastd: usize) -> Result<Self, IndicatorError> {
        check_period("fastk", fastk, 1)?;
        Ok(Self {
            rsi: Rsi::new(period)?,
            highest: Extreme::new(fastk),
            lowest: Extreme::new(fastk),
            fastk,
            rsi_seen: 0,
            fastd: Sma::new(fastd)?,
        })
    }
}

impl Indicator for StochRsi {
    type Input = f64;
    type Output = StochPoint;

    #[inline]
    fn push(&mut self, x: f64) -> Result<StochPoint, IndicatorError> {
        let Some(r) = self.rsi.push(x)? else {
            return Ok(StochPoint::default());
        };
        self.rsi_seen += 1;
        let highest = self.highest.push(r);
        let lowest = self.lowest.push(r);
        if self.rsi_seen < self.fastk {
            return Ok(StochPoint::default());
        }
        let k = percent_k(r, lowest, highest);
        Ok(match self.fastd.push(k)? {
            Some(d) => StochPoint {
                k: Some(k),
                d: Some(d),
            },
            None => StochPoint::default(),
        })
    }
}

/// Williams %R: −100·(highest high − close) / (highest high − lowest low) over `period`
/// candles, 0 for an empty range. Lookback `period − 1`.
pub fn willr(candles: &[Candle], period: usize) -> Result<Series, IndicatorError> {
    run(WillR::new(period)?, candles)
}

/// Incremental [`willr`].
#[derive(Debug, Clone)]
pub struct WillR {
    highest: Extreme<true>,
    lowest: Extreme<false>,
    period: usize,
    seen: usize,
}

impl WillR {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            highest: Extreme::new(period),
            lowest: Extreme::new(period),
            period,
            seen: 0,
        })
    }
}

impl Indicator for WillR {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite_candle(&c, self.seen, false)?;
        self.seen += 1;
        let highest = self.highest.push(c.high);
        let lowest = self.lowest.push(c.low);
        if self.seen < self.period {
            return Ok(None);
        }
        let range = highest - lowest;
        Ok(Some(if negligible(range, highest.abs() + lowest.abs()) {
            0.0
        } else {
            (highest - c.close) / (range / -100.0)
        }))
    }
}

/// Rate of change in percent: (x / x[−period] − 1)·100, 0 when the old value is 0.
/// Lookback `period`.
pub fn roc(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let mut out = Vec::with_capacity(values.len());
    let head = period.min(values.len());
    for (i, &x) in values[..head].iter().enumerate() {
        finite(x, i, "value")?;
        out.push(None);
    }
    for i in head..values.len() {
        let x = finite(values[i], i, "value")?;
        out.push(Some(rate_of_change(x, values[i - period])));
    }
    Ok(out)
}

#[inline]
fn rate_of_change(x: f64, old: f64) -> f64 {
    if old != 0.0 {
        (x / old - 1.0) * 100.0
    } else {
        0.0
    }
}

/// Incremental [`roc`].
#[derive(Debug, Clone)]
pub struct Roc {
    window: Ring,
    seen: usize,
}

impl Roc {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            window: Ring::new(period + 1),
            seen: 0,
        })
    }
}

impl Indicator for Roc {
    type Input = f64;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, x: f64) -> Result<Option<f64>, IndicatorError> {
        finite(x, self.seen, "value")?;
        self.seen += 1;
        self.window.push(x);
        Ok(self
            .window
            .is_full()
            .then(|| rate_of_change(x, self.window.oldest())))
    }
}

/// Commodity Channel Index: (TP − SMA(TP)) / (0.015 · mean absolute deviation), with
/// TP = (high + low + close) / 3; 0 when either is zero. Lookback `period − 1`.
pub fn cci(candles: &[Candle], period: usize) -> Result<Series, IndicatorError> {
    run(Cci::new(period)?, candles)
}

/// Incremental [`cci`].
#[derive(Debug, Clone)]
pub struct Cci {
    window: Ring,
    seen: usize,
}

impl Cci {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            window: Ring::new(period),
            seen: 0,
        })
    }
}

impl Indicator for Cci {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite_candle(&c, self.seen, false)?;
        self.seen += 1;
        let typical = (c.high + c.low + c.close) / 3.0;
        self.window.push(typical);
        if !self.window.is_full() {
            return Ok(None);
        }
        // Summed in slot order rather than time order, as TA-Lib does, so the mean rounds
        // identically; the deviation from it can be a small difference of large numbers.
        let n = self.window.len() as f64;
        let slots = self.window.slots();
        let mean = slots.iter().fold(0.0, |sum, &v| sum + v) / n;
        let deviation = slots.iter().fold(0.0, |sum, &v| sum + (v - mean).abs());
        let deviation = deviation / n;
        let distance = typical - mean;
        // A window of equal prices leaves rounding residue in both; that is not a signal.
        Ok(Some(
            if negligible(distance, mean.abs()) || negligible(deviation, mean.abs()) {
                0.0
            } else {
                distance / (0.015 * deviation)
            },
        ))
    }
}

/// Money Flow Index: 100 · positive flow / total flow over `period` changes of the
/// typical price, flow = TP · volume; 0 when no money flowed. Lookback `period`.
pub fn mfi(candles: &[Candle], period: usize) -> Result<Series, IndicatorError> {
    run(Mfi::new(period)?, candles)
}

/// Incremental [`mfi`].
#[derive(Debug, Clone)]
pub struct Mfi {
    positive: Ring,
    negative: Ring,
    positive_sum: f64,
    negative_sum: f64,
    /// How many flows in the window are non-zero on each side. When one drops to zero
    /// the matching sum is reset, so rounding left over from subtractions cannot pose as
    /// money flow in a volumeless stretch.
    positive_count: usize,
    negative_count: usize,
    prev_typical: f64,
    seen: usize,
}

impl Mfi {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 1)?;
        Ok(Self {
            positive: Ring::new(period),
            negative: Ring::new(period),
            positive_sum: 0.0,
            negative_sum: 0.0,
            positive_count: 0,
            negative_count: 0,
            prev_typical: 0.0,
            seen: 0,
        })
    }
}

impl Indicator for Mfi {
    type Input = Candle;
    type Output = Option<f64>;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<Option<f64>, IndicatorError> {
        finite_candle(&c, self.seen, true)?;
        self.seen += 1;
        let typical = (c.high + c.low + c.close) / 3.0;
        let change = typical - self.prev_typical;
        self.prev_typical = typical;
        if self.seen == 1 {
            return Ok(None);
        }
        if self.positive.is_full() {
            let (old_pos, old_neg) = (self.positive.oldest(), self.negative.oldest());
            self.positive_sum -= old_pos;
            self.negative_sum -= old_neg;
            self.positive_count -= usize::from(old_pos != 0.0);
            self.negative_count -= usize::from(old_neg != 0.0);
        }
        let flow = typical * c.volume;
        let (pos, neg) = if change < 0.0 {
            (0.0, flow)
        } else if change > 0.0 {
            (flow, 0.0)
        } else {
            (0.0, 0.0)
        };
        self.positive.push(pos);
        self.negative.push(neg);
        self.positive_sum += pos;
        self.negative_sum += neg;
        self.positive_count += usize::from(pos != 0.0);
        self.negative_count += usize::from(neg != 0.0);
        if self.positive_count == 0 {
            self.positive_sum = 0.0;
        }
        if self.negative_count == 0 {
            self.negative_sum = 0.0;
        }
        if !self.positive.is_full() {
            return Ok(None);
        }
        let total = self.positive_sum + self.negative_sum;
        Ok(Some(if total != 0.0 {
            100.0 * (self.positive_sum / total)
        } else {
            0.0
        }))
    }
}
