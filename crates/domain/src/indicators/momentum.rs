//! Oscillators and momentum: RSI, MACD, Stochastic, Stochastic RSI, Williams %R, ROC,
//! CCI and MFI.

use super::ma::{Ema, Sma};
use super::smoothing::{Smoothed, Smoothing};
use super::window::{Extreme, Ring, RunningExtreme};
use super::{
    CandleColumns, Columns, Indicator, IndicatorError, Series, Wilder, all_finite, check_period,
    column, finite, finite_candle, finite_or,
};
use crate::Candle;

/// Relative Strength Index with Wilder's smoothing: the first average gain and loss are
/// plain means of the first `period` changes, later ones `(prev·(period−1) + x) / period`.
/// 0 while nothing has moved at all. Lookback `period`.
pub fn rsi(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    finite_or(all_finite(values), &[("value", values)])?;
    let mut out = vec![f64::NAN; values.len()];
    rsi_into(values, period, |i, r| out[i] = r);
    Ok(Series::from_raw(out))
}

/// The defined part of [`rsi`], computed as [`Rsi::push`] does: hands `(i, rsi)` to
/// `emit` for every index `i` from `period` on, so callers write it where they need it
/// instead of into a column-sized temporary.
#[inline]
fn rsi_into(values: &[f64], period: usize, mut emit: impl FnMut(usize, f64)) {
    if values.len() <= period {
        return;
    }
    let (mut gain, mut loss) = (0.0, 0.0);
    for pair in values[..=period].windows(2) {
        let change = pair[1] - pair[0];
        if change < 0.0 {
            loss -= change;
        } else {
            gain += change;
        }
    }
    let n = period as f64;
    (gain, loss) = (gain / n, loss / n);
    let wilder = Wilder::new(period);
    emit(period, rsi_value(gain, loss));
    let mut prev = values[period];
    for (i, &x) in values.iter().enumerate().skip(period + 1) {
        let change = x - prev;
        prev = x;
        // Branch-free split: a zero or positive change is a gain, a negative one a loss;
        // the zero that goes to the other side adds nothing.
        let up = if change < 0.0 { 0.0 } else { change };
        let down = if change < 0.0 { -change } else { 0.0 };
        gain = wilder.mean(gain, up);
        loss = wilder.mean(loss, down);
        emit(i, rsi_value(gain, loss));
    }
}

#[inline]
fn rsi_value(gain: f64, loss: f64) -> f64 {
    let total = gain + loss;
    if total != 0.0 {
        100.0 * (gain / total)
    } else {
        0.0
    }
}

/// Incremental [`rsi`].
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    wilder: Wilder,
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
            wilder: Wilder::new(period),
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
        if self.seen <= self.period + 1 {
            // Seeding: plain sums of the first `period` changes, then their means.
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            if self.seen <= self.period {
                return Ok(None);
            }
            let n = self.period as f64;
            self.loss /= n;
            self.gain /= n;
        } else {
            let (up, down) = if change < 0.0 {
                (0.0, -change)
            } else {
                (change, 0.0)
            };
            self.gain = self.wilder.mean(self.gain, up);
            self.loss = self.wilder.mean(self.loss, down);
        }
        Ok(Some(rsi_value(self.gain, self.loss)))
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
    Macd::new(fast, slow, signal)?;
    finite_or(all_finite(values), &[("value", values)])?;
    let n = values.len();
    let lookback = slow + signal - 2;
    let mut columns = Columns::<3>::new(n);
    if n <= lookback {
        return Ok(MacdSeries::from(columns));
    }
    // Both EMAs seeded on candle `slow − 1`, then the signal EMA over the MACD line;
    // the three carried values are independent chains that overlap in one loop.
    let mean = |xs: &[f64]| xs.iter().fold(0.0, |s, &x| s + x) / xs.len() as f64;
    let mut slow_ema = Smoothing::start(mean(&values[..slow]));
    let mut fast_ema = Smoothing::start(mean(&values[slow - fast..slow]));
    let (fast_step, slow_step, signal_step) = (
        Smoothing::ema(fast),
        Smoothing::ema(slow),
        Smoothing::ema(signal),
    );
    let mut line = fast_ema.value - slow_ema.value;
    let mut seed = line;
    for &x in &values[slow..slow + signal - 1] {
        line = fast_step.step(&mut fast_ema, x) - slow_step.step(&mut slow_ema, x);
        seed += line;
    }
    let mut signal_ema = Smoothing::start(seed / signal as f64);
    let [macd, signal_out, hist] = columns.split();
    (macd[lookback], signal_out[lookback], hist[lookback]) =
        (line, signal_ema.value, line - signal_ema.value);
    let outputs = macd[lookback + 1..]
        .iter_mut()
        .zip(&mut signal_out[lookback + 1..])
        .zip(&mut hist[lookback + 1..]);
    // The first step before the loop (the averages may have just been seeded), so that
    // the loop has only the two-step form.
    let mut rows = outputs.zip(&values[lookback + 1..]);
    if let Some((((m, s), h), &x)) = rows.next() {
        let line = fast_step.step(&mut fast_ema, x) - slow_step.step(&mut slow_ema, x);
        let signal = signal_step.step(&mut signal_ema, line);
        (*m, *s, *h) = (line, signal, line - signal);
        for (((m, s), h), &x) in rows {
            slow_ema = slow_step.next(slow_ema, x);
            fast_ema = fast_step.next(fast_ema, x);
            let line = fast_ema.value - slow_ema.value;
            signal_ema = signal_step.next(signal_ema, line);
            (*m, *s, *h) = (line, signal_ema.value, line - signal_ema.value);
        }
    }
    Ok(MacdSeries::from(columns))
}

impl From<Columns<3>> for MacdSeries {
    fn from(columns: Columns<3>) -> Self {
        let [macd, signal, hist] = columns.finish();
        Self { macd, signal, hist }
    }
}

/// Incremental [`macd`].
#[derive(Debug, Clone)]
pub struct Macd {
    fast: usize,
    slow: usize,
    fast_step: Smoothing,
    slow_step: Smoothing,
    seen: usize,
    /// Seed sums while warming up, then the EMAs themselves.
    fast_ema: Smoothed,
    slow_ema: Smoothed,
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
            fast_step: Smoothing::ema(fast),
            slow_step: Smoothing::ema(slow),
            seen: 0,
            fast_ema: Smoothed::default(),
            slow_ema: Smoothed::default(),
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
            self.slow_ema.value += x;
            if self.seen > self.slow - self.fast {
                self.fast_ema.value += x;
            }
            return Ok(MacdPoint::default());
        }
        let line = if self.seen == self.slow {
            self.slow_ema = Smoothing::start((self.slow_ema.value + x) / self.slow as f64);
            self.fast_ema = Smoothing::start((self.fast_ema.value + x) / self.fast as f64);
            self.fast_ema.value - self.slow_ema.value
        } else {
            self.fast_step.step(&mut self.fast_ema, x) - self.slow_step.step(&mut self.slow_ema, x)
        };
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
        // One division rather than two (`range / 100` first): division is the slowest
        // step of the loop; the two forms differ by an ulp or so.
        100.0 * (close - lowest) / range
    }
}

/// A simple moving average fed one value at a time, summing and subtracting in the
/// order of [`Sma::push`] so both give the same bits; its window is a ring of `period`
/// slots, so a batch loop needs no column-sized temporary.
struct StreamingMean {
    window: Vec<f64>,
    /// Slot of the next value; once the window is full, the oldest value's slot after it.
    next: usize,
    seen: usize,
    total: f64,
    divisor: f64,
}

impl StreamingMean {
    fn new(period: usize) -> Self {
        Self {
            window: vec![0.0; period],
            next: 0,
            seen: 0,
            total: 0.0,
            divisor: period as f64,
        }
    }

    /// The mean of the last `period` values, once there are that many.
    #[inline]
    fn push(&mut self, x: f64) -> Option<f64> {
        self.total += x;
        self.window[self.next] = x;
        self.next += 1;
        if self.next == self.window.len() {
            self.next = 0;
        }
        self.seen += 1;
        if self.seen < self.window.len() {
            return None;
        }
        let mean = self.total / self.divisor;
        self.total -= self.window[self.next];
        Some(mean)
    }
}

impl From<Columns<2>> for StochSeries {
    fn from(columns: Columns<2>) -> Self {
        let [k, d] = columns.finish();
        Self { k, d }
    }
}

/// Slow stochastic (TA-Lib STOCH with SMA smoothing): fast %K over `fastk` candles,
/// slow %K = SMA(`slowk`) of it, %D = SMA(`slowd`) of slow %K. Both columns start at
/// `fastk + slowk + slowd − 3`.
pub fn stoch(
    candles: &CandleColumns,
    fastk: usize,
    slowk: usize,
    slowd: usize,
) -> Result<StochSeries, IndicatorError> {
    Stoch::new(fastk, slowk, slowd)?;
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let ok = high
        .iter()
        .zip(low)
        .zip(close)
        .fold(true, |ok, ((h, l), c)| {
            ok & h.is_finite() & l.is_finite() & c.is_finite()
        });
    finite_or(ok, &[("high", high), ("low", low), ("close", close)])?;
    let n = close.len();
    let mut columns = Columns::<2>::new(n);
    let [k, d] = columns.split();
    let mut highest = RunningExtreme::<true>::new(fastk);
    let mut lowest = RunningExtreme::<false>::new(fastk);
    let (mut slow, mut signal) = (StreamingMean::new(slowk), StreamingMean::new(slowd));
    for i in 0..n {
        let (hi, lo) = (highest.at(high, i), lowest.at(low, i));
        if i + 1 < fastk {
            continue;
        }
        let Some(slow_k) = slow.push(percent_k(close[i], lo, hi)) else {
            continue;
        };
        if let Some(slow_d) = signal.push(slow_k) {
            (k[i], d[i]) = (slow_k, slow_d);
        }
    }
    Ok(StochSeries::from(columns))
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
    StochRsi::new(period, fastk, fastd)?;
    finite_or(all_finite(values), &[("value", values)])?;
    let mut columns = Columns::<2>::new(values.len());
    let [k, d] = columns.split();
    let mut highest = RunningExtreme::<true>::new(fastk);
    let mut lowest = RunningExtreme::<false>::new(fastk);
    // The current block of RSI values, which the extremes read back.
    let mut block = vec![0.0; fastk];
    let mut signal = StreamingMean::new(fastd);
    let mut seen = 0;
    rsi_into(values, period, |i, r| {
        let (hi, lo) = (highest.push(&mut block, r), lowest.push(&mut block, r));
        seen += 1;
        if seen < fastk {
            return;
        }
        let fast_k = percent_k(r, lo, hi);
        if let Some(fast_d) = signal.push(fast_k) {
            (k[i], d[i]) = (fast_k, fast_d);
        }
    });
    Ok(StochSeries::from(columns))
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
pub fn willr(candles: &CandleColumns, period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let n = close.len();
    type Highest = RunningExtreme<true>;
    type Lowest = RunningExtreme<false>;
    let mut out = vec![f64::NAN; n];
    let mut ok = true;
    // [`RunningExtreme`]'s block method written out over the slices, so the loop over a
    // block has no block-boundary test and no bounds checks: a window ending at offset
    // `r` of a block is the block's running extreme up to `r` plus the previous block's
    // extreme from `r + 1` on (the identity before the first block is complete).
    let mut high_suffix = vec![Highest::IDENTITY; period + 1];
    let mut low_suffix = vec![Lowest::IDENTITY; period + 1];
    let blocks = out
        .chunks_mut(period)
        .zip(high.chunks(period))
        .zip(low.chunks(period))
        .zip(close.chunks(period));
    for (((out, high), low), close) in blocks {
        let (mut high_prefix, mut low_prefix) = (Highest::IDENTITY, Lowest::IDENTITY);
        let rows = high.iter().zip(low).zip(close);
        let suffixes = high_suffix[1..].iter().zip(&low_suffix[1..]);
        for ((slot, ((&h, &l), &c)), (&high_after, &low_after)) in
            out.iter_mut().zip(rows).zip(suffixes)
        {
            ok &= h.is_finite() & l.is_finite() & c.is_finite();
            high_prefix = Highest::pick(high_prefix, h);
            low_prefix = Lowest::pick(low_prefix, l);
            let highest = Highest::pick(high_prefix, high_after);
            let lowest = Lowest::pick(low_prefix, low_after);
            *slot = willr_value(c, lowest, highest);
        }
        Highest::suffixes(&mut high_suffix[..high.len()], high);
        Lowest::suffixes(&mut low_suffix[..low.len()], low);
    }
    // The first full window ends at `period − 1`; the values before it are undefined.
    out[..(period - 1).min(n)].fill(f64::NAN);
    finite_or(ok, &[("high", high), ("low", low), ("close", close)])?;
    Ok(Series::from_raw(out))
}

#[inline]
fn willr_value(close: f64, lowest: f64, highest: f64) -> f64 {
    let range = highest - lowest;
    if negligible(range, highest.abs() + lowest.abs()) {
        0.0
    } else {
        -100.0 * (highest - close) / range
    }
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
        Ok(Some(willr_value(c.close, lowest, highest)))
    }
}

/// Rate of change in percent: (x / x[−period] − 1)·100, 0 when the old value is 0.
/// Lookback `period`.
pub fn roc(values: &[f64], period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    finite_or(all_finite(values), &[("value", values)])?;
    // No value depends on another, so this loop vectorises.
    let defined = values.iter().skip(period).zip(values);
    Ok(column(
        values.len(),
        period,
        defined.map(|(&x, &old)| rate_of_change(x, old)),
    ))
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
pub fn cci(candles: &CandleColumns, period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let ok = high
        .iter()
        .zip(low)
        .zip(close)
        .fold(true, |ok, ((h, l), c)| {
            ok & h.is_finite() & l.is_finite() & c.is_finite()
        });
    finite_or(ok, &[("high", high), ("low", low), ("close", close)])?;
    let n = close.len();
    let count = period as f64;
    let mut out = vec![f64::NAN; n];
    // The typical prices of the window in [`Ring`] slot order (index `i` in slot
    // `i % period`), summed in that order as [`Cci::push`] and TA-Lib do.
    let mut window = vec![0.0; period];
    let mut slot = 0;
    for (i, ((&h, &l), &c)) in high.iter().zip(low).zip(close).enumerate() {
        let typical = (h + l + c) / 3.0;
        window[slot] = typical;
        slot += 1;
        if slot == period {
            slot = 0;
        }
        if i + 1 >= period {
            let mean = window.iter().fold(0.0, |s, &v| s + v) / count;
            let deviation = window.iter().fold(0.0, |s, &v| s + (v - mean).abs()) / count;
            out[i] = cci_value(typical, mean, deviation);
        }
    }
    Ok(Series::from_raw(out))
}

#[inline]
fn cci_value(typical: f64, mean: f64, deviation: f64) -> f64 {
    let distance = typical - mean;
    // A window of equal prices leaves rounding residue in both; that is not a signal.
    if negligible(distance, mean.abs()) || negligible(deviation, mean.abs()) {
        0.0
    } else {
        distance / (0.015 * deviation)
    }
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
        Ok(Some(cci_value(typical, mean, deviation)))
    }
}

/// Money Flow Index: 100 · positive flow / total flow over `period` changes of the
/// typical price, flow = TP · volume; 0 when no money flowed. Lookback `period`.
pub fn mfi(candles: &CandleColumns, period: usize) -> Result<Series, IndicatorError> {
    check_period("period", period, 1)?;
    let volume = candles.volume();
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let ok = high
        .iter()
        .zip(low)
        .zip(close)
        .zip(volume)
        .fold(true, |ok, (((h, l), c), v)| {
            ok & h.is_finite() & l.is_finite() & c.is_finite() & v.is_finite()
        });
    let fields = [
        ("high", high),
        ("low", low),
        ("close", close),
        ("volume", volume),
    ];
    finite_or(ok, &fields)?;
    let n = close.len();
    let typical = |j: usize| (high[j] + low[j] + close[j]) / 3.0;
    // The flows of the window, `(positive, negative)`, in a ring of `period` slots.
    let mut flows = vec![(0.0, 0.0); period];
    let mut slot = 0;
    // The sums and counts of [`Mfi::push`], in the same order.
    let mut out = vec![f64::NAN; n];
    let (mut positive, mut negative) = (0.0, 0.0);
    let (mut positive_count, mut negative_count) = (0_usize, 0_usize);
    let mut prev = if n > 0 { typical(0) } else { 0.0 };
    for (j, slot_out) in out.iter_mut().enumerate().skip(1) {
        let tp = typical(j);
        let change = tp - prev;
        prev = tp;
        if j > period {
            let (old_pos, old_neg) = flows[slot];
            positive -= old_pos;
            negative -= old_neg;
            positive_count -= usize::from(old_pos != 0.0);
            negative_count -= usize::from(old_neg != 0.0);
        }
        // The money flow into candle `j`, split by the direction of the typical price.
        let flow = tp * volume[j];
        let pos = if change > 0.0 { flow } else { 0.0 };
        let neg = if change < 0.0 { flow } else { 0.0 };
        flows[slot] = (pos, neg);
        slot += 1;
        if slot == period {
            slot = 0;
        }
        positive += pos;
        negative += neg;
        positive_count += usize::from(pos != 0.0);
        negative_count += usize::from(neg != 0.0);
        if positive_count == 0 {
            positive = 0.0;
        }
        if negative_count == 0 {
            negative = 0.0;
        }
        if j >= period {
            *slot_out = mfi_value(positive, negative);
        }
    }
    Ok(Series::from_raw(out))
}

#[inline]
fn mfi_value(positive: f64, negative: f64) -> f64 {
    let total = positive + negative;
    if total != 0.0 {
        100.0 * (positive / total)
    } else {
        0.0
    }
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
        Ok(Some(mfi_value(self.positive_sum, self.negative_sum)))
    }
}
