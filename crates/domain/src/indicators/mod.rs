//! Technical indicators, defined as TA-Lib defines them so that a client moving from
//! TA-Lib (or from a chart built on it) sees the same numbers.
//!
//! Every indicator comes in two forms that give the same numbers:
//!
//! - a batch function over a slice (`sma(&closes, 20)`, `adx(&candles, 14)`) returning one
//!   [`Series`] per output column, as long as the input, `None` where the value is not
//!   defined yet (the first [`IndicatorSpec::lookback`] entries);
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
//! so results agree to the last bit or nearly so.
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
    ParamInfo, ParseError, Row, WarmUp, parse_indicators,
};
pub use trend::{Adx, AdxPoint, AdxSeries, adx};
pub use volatility::{
    Atr, Bbands, BbandsPoint, BbandsSeries, Natr, StdDev, atr, bbands, natr, stddev,
};
pub use volume::{Obv, Vwap, obv, vwap};

use crate::Candle;

/// One output column: as long as the input, `None` where the indicator is undefined.
pub type Series = Vec<Option<f64>>;

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

/// Runs a single-output incremental state over a slice: the batch form of most indicators.
fn run<I, T>(mut state: I, inputs: &[T]) -> Result<Series, IndicatorError>
where
    I: Indicator<Input = T, Output = Option<f64>>,
    T: Copy,
{
    let mut out = Vec::with_capacity(inputs.len());
    for &input in inputs {
        out.push(state.push(input)?);
    }
    Ok(out)
}
