//! Technical indicators, defined as TA-Lib defines them so that a client moving from
//! TA-Lib (or from a chart built on it) sees the same numbers.
//!
//! Every indicator comes in two forms that give the same numbers:
//!
//! - a batch function over columns (`sma(&closes, 20)`, `adx(&columns, 14)`, where
//!   `columns` is a [`CandleColumns`]) returning one [`Series`] per output column, as long
//!   as the input, undefined for the first [`IndicatorSpec::lookback`] entries. Each is a
//!   dedicated loop over plain `f64` slices, TA-Lib's own layout, so a million candles
//!   take a few milliseconds;
//! - an incremental state ([`Sma`], [`Adx`], …) implementing [`Indicator`]: `push` one value
//!   or candle, get the current output. It keeps O(period) memory, so the latest value
//!   can be maintained as candles land.
//!
//! Inputs must be finite: a NaN or an infinity is refused with
//! [`IndicatorError::NotFinite`] instead of quietly poisoning every later value.
//!
//! Matching TA-Lib means matching its lookbacks and seeds: EMAs start from the SMA of
//! their first `period` inputs, RSI/ATR/ADX use Wilder's smoothing seeded from plain sums,
//! Bollinger Bands use the population standard deviation, and MACD seeds its fast EMA on
//! the same candle as its slow one. The arithmetic follows TA-Lib's order of operations,
//! except that Wilder steps are written with one multiply-add on the value carried from
//! step to step (see [`Wilder`]) and EMA steps are taken two at a time (see
//! `smoothing.rs`), which is faster and agrees to a few ulps; the rolling variance
//! multiplies by `1 / period` as TA-Lib's VAR does.
//!
//! Zero tests are relative, never absolute: a high-low range or a CCI deviation counts as
//! zero only when it is below about 90 ulps of the prices involved (as in TA-Lib 0.8,
//! which the fixtures come from), and RSI, DI and MFI divide unless the denominator is
//! exactly zero. TA-Lib releases before 0.8 treated anything below 1e-8 as zero, which
//! flattens every indicator of an asset priced in millionths of a dollar. MFI also
//! resets its sums when the window holds no money flow, where TA-Lib returns a rounding
//! residue near 1e-14 instead of 0, and the rolling variance is computed about an
//! anchor near the mean rather than as E[x²] − E[x]², which loses digits at high prices.
//!
//! [`IndicatorSpec`] describes the indicators uniformly (names, parameters, outputs,
//! lookback, warm-up) and parses the `rsi:14,ema:50` request grammar.

mod ma;
mod momentum;
mod smoothing;
mod spec;
mod trend;
mod volatility;
mod volume;
mod window;

pub use ma::{Dema, Ema, Sma, Tema, Wma, dema, ema, sma, tema, wma};
pub use momentum::{
    Cci, Macd, MacdPoint, MacdSeries, Mfi, Roc, Rsi, Stoch, StochPoint, StochRsi, StochSeries,
    WillR, cci, macd, mfi, roc, rsi, stoch, stochrsi, willr,
};
pub use spec::{
    Column, IndicatorKind, IndicatorSpec, IndicatorState, InputKind, KindInfo, MAX_INDICATORS,
    MAX_PERIOD, ParamInfo, ParseError, Row, WarmUp, parse_indicators,
};
pub use trend::{Adx, AdxPoint, AdxSeries, adx};
pub use volatility::{
    Atr, Bbands, BbandsPoint, BbandsSeries, Natr, StdDev, atr, bbands, natr, stddev,
};
pub use volume::{Obv, Vwap, obv, vwap};

use std::sync::Arc;

use crate::Candle;

/// One output column, as long as the input, undefined where the indicator has no value.
///
/// Stored as plain `f64` with NaN for "undefined" (TA-Lib's and NumPy's convention)
/// rather than as `Option<f64>`: half the memory, which on a long series is most of the
/// cost, and the batch loops write it without a tag per value. Read it as `Option`s with
/// [`get`](Self::get) or [`iter`](Self::iter); it serialises as numbers and nulls. Inputs
/// are finite, so a NaN can only mean "undefined" (or an overflow, which has no value
/// either).
///
/// The columns of one multi-output call (MACD, Bollinger Bands, ADX, the stochastics)
/// are views into one shared allocation ([`Columns`]). A fresh column-sized allocation
/// costs more than the arithmetic that fills it: on a million candles each is 8 MB,
/// which the allocator hands back to the system when it is freed and which is faulted in
/// again, 4 KB at a time, on the next call. One block for all the columns is one such
/// cost instead of several, and a block that size is kept by the allocator for reuse.
/// Cloning shares the block.
#[derive(Clone, Default)]
pub struct Series {
    buffer: Arc<Vec<f64>>,
    /// Where this column sits in `buffer`.
    start: usize,
    len: usize,
}

impl Series {
    /// Wraps raw values, NaN where undefined.
    pub fn from_raw(values: Vec<f64>) -> Self {
        Self {
            start: 0,
            len: values.len(),
            buffer: Arc::new(values),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `index`; `None` where undefined or past the end.
    pub fn get(&self, index: usize) -> Option<f64> {
        self.as_raw().get(index).copied().and_then(defined)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<f64>> + '_ {
        self.as_raw().iter().map(|&v| defined(v))
    }

    /// The raw values, NaN where undefined.
    pub fn as_raw(&self) -> &[f64] {
        &self.buffer[self.start..self.start + self.len]
    }

    /// The raw values, NaN where undefined; a copy unless this column owns its buffer.
    pub fn into_raw(self) -> Vec<f64> {
        if self.start == 0 && self.len == self.buffer.len() {
            Arc::unwrap_or_clone(self.buffer)
        } else {
            self.as_raw().to_vec()
        }
    }
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Series").field(&self.as_raw()).finish()
    }
}

/// `N` output columns of `len` values in one allocation (see [`Series`]), all NaN until
/// a batch function fills them through [`split`](Self::split).
pub(crate) struct Columns<const N: usize> {
    buffer: Vec<f64>,
    len: usize,
}

impl<const N: usize> Columns<N> {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            buffer: vec![f64::NAN; N * len],
            len,
        }
    }

    /// The columns as separate slices, to be written side by side.
    pub(crate) fn split(&mut self) -> [&mut [f64]; N] {
        let len = self.len;
        let mut rest = self.buffer.as_mut_slice();
        std::array::from_fn(|_| {
            let (column, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            column
        })
    }

    pub(crate) fn finish(self) -> [Series; N] {
        let buffer = Arc::new(self.buffer);
        std::array::from_fn(|i| Series {
            buffer: Arc::clone(&buffer),
            start: i * self.len,
            len: self.len,
        })
    }
}

#[inline]
fn defined(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

/// Equal when both have the same values defined at the same places (NaN never equals
/// itself, so the derived comparison would call every series unequal to itself).
impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<Option<f64>> for Series {
    fn from_iter<T: IntoIterator<Item = Option<f64>>>(iter: T) -> Self {
        Self::from_raw(iter.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

impl serde::Serialize for Series {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Candle fields as separate columns, the layout the multi-input batch functions read.
///
/// A loop over a slice of [`Candle`]s streams all 48 bytes of each candle through the
/// cache to use 16 or 24 of them; separate columns (TA-Lib's layout) stream only the
/// fields used, which on a million candles is most of the difference in speed. Build it
/// once and compute any number of indicators over it. `open` is left out: no indicator
/// reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandleColumns {
    open_time: Vec<i64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
}

impl CandleColumns {
    pub fn from_candles(candles: &[Candle]) -> Self {
        Self {
            open_time: candles.iter().map(|c| c.open_time).collect(),
            high: candles.iter().map(|c| c.high).collect(),
            low: candles.iter().map(|c| c.low).collect(),
            close: candles.iter().map(|c| c.close).collect(),
            volume: candles.iter().map(|c| c.volume).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    pub fn open_time(&self) -> &[i64] {
        &self.open_time
    }

    pub fn high(&self) -> &[f64] {
        &self.high
    }

    pub fn low(&self) -> &[f64] {
        &self.low
    }

    pub fn close(&self) -> &[f64] {
        &self.close
    }

    pub fn volume(&self) -> &[f64] {
        &self.volume
    }
}

impl From<&[Candle]> for CandleColumns {
    fn from(candles: &[Candle]) -> Self {
        Self::from_candles(candles)
    }
}

/// Why an indicator could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    /// An input was NaN or infinite. `index` counts from the first value given.
    #[error("input {field} at index {index} is not a finite number")]
    NotFinite { index: usize, field: &'static str },
    /// A parameter outside what the algorithm can work with.
    #[error("parameter {name} is {value}, expected {expected}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// An indicator computed one input at a time.
///
/// `push` either accepts the input and returns the output at that position, or refuses
/// it and leaves the state as it was, so a caller may skip a bad value and carry on.
pub trait Indicator {
    /// `f64` for single-series indicators, [`Candle`] for those reading OHLCV.
    type Input;
    /// `Option<f64>` or a struct of them, one per output column.
    type Output;

    fn push(&mut self, input: Self::Input) -> Result<Self::Output, IndicatorError>;
}

#[inline]
fn finite(value: f64, index: usize, field: &'static str) -> Result<f64, IndicatorError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(IndicatorError::NotFinite { index, field })
    }
}

/// Checks the candle fields an indicator reads, naming the first bad one.
#[inline]
fn finite_candle(c: &Candle, index: usize, volume: bool) -> Result<(), IndicatorError> {
    finite(c.high, index, "high")?;
    finite(c.low, index, "low")?;
    finite(c.close, index, "close")?;
    if volume {
        finite(c.volume, index, "volume")?;
    }
    Ok(())
}

fn check_period(name: &'static str, value: usize, min: usize) -> Result<(), IndicatorError> {
    if value >= min {
        Ok(())
    } else {
        Err(IndicatorError::InvalidParameter {
            name,
            value: value as f64,
            expected: if min <= 1 { "at least 1" } else { "at least 2" },
        })
    }
}

/// Whether every value is finite. Checks a block at a time with no early exit inside a
/// block, which the compiler turns into a few vector instructions per block.
#[inline]
fn all_finite(values: &[f64]) -> bool {
    values
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
}

/// The first non-finite input among `fields`: lowest index first, then in the order
/// given (the order [`finite_candle`] checks). Batch loops only note *that* an input was
/// bad, with no early exit to slow them down, and call this to name it.
#[cold]
fn first_not_finite(fields: &[(&'static str, &[f64])]) -> IndicatorError {
    let mut first = (usize::MAX, "value");
    for &(field, values) in fields {
        if let Some(index) = values.iter().position(|v| !v.is_finite())
            && index < first.0
        {
            first = (index, field);
        }
    }
    IndicatorError::NotFinite {
        index: first.0,
        field: first.1,
    }
}

/// Fails with [`first_not_finite`] unless `ok`.
#[inline]
fn finite_or(ok: bool, fields: &[(&'static str, &[f64])]) -> Result<(), IndicatorError> {
    if ok {
        Ok(())
    } else {
        Err(first_not_finite(fields))
    }
}

/// A column of `len` values: `undefined` NaNs, then what `defined` yields. `extend` from
/// an iterator of known length writes straight into the buffer, with no capacity check
/// per value.
#[inline]
fn column(len: usize, undefined: usize, defined: impl Iterator<Item = f64>) -> Series {
    let mut out = Vec::with_capacity(len);
    out.resize(undefined.min(len), f64::NAN);
    out.extend(defined);
    debug_assert_eq!(out.len(), len);
    Series::from_raw(out)
}

/// Wilder's smoothing, `(prev · (n − 1) + x) / n`, written as `prev · (1 − 1/n) + x / n`:
/// the same value to a few ulps, but the loop-carried dependency is one multiply and one
/// add instead of a multiply, an add and a division, which is what bounds the speed of
/// every Wilder-smoothed indicator. Batch and incremental forms both use it.
#[derive(Debug, Clone, Copy)]
struct Wilder {
    keep: f64,
    inv: f64,
}

impl Wilder {
    fn new(period: usize) -> Self {
        let n = period as f64;
        Self {
            keep: (n - 1.0) / n,
            inv: 1.0 / n,
        }
    }

    /// The smoothed average after `x`.
    #[inline]
    fn mean(self, prev: f64, x: f64) -> f64 {
        prev * self.keep + x * self.inv
    }

    /// The smoothed *sum* after `x` (`prev − prev / n + x`), as ADX keeps its DM and TR.
    #[inline]
    fn sum(self, prev: f64, x: f64) -> f64 {
        prev * self.keep + x
    }
}
