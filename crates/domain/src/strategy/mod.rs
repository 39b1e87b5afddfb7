//! Trading strategies over candles: rules that read marketd's indicators and say, at
//! every bar, whether the market looks bullish, bearish or neutral, and a backtest that
//! trades on those signals.
//!
//! # Signals
//!
//! A [`Strategy`] is a [`StrategyKind`] with its parameters resolved and validated.
//! [`Strategy::evaluate`] gives one [`SignalPoint`] per candle, computed from that candle
//! and the ones before it only, so appending candles never changes an earlier point. The
//! indicators are fed one candle at a time ([`IndicatorSpec::state`]), which makes that
//! guarantee hold bit for bit rather than to rounding.
//!
//! Each strategy reports a `strength` in [-1, 1] whose sign is the direction's (0 when
//! neutral or undefined). The formulas are scale-free, so the same strength means the
//! same thing for an asset priced in dollars or in millionths of one:
//!
//! - `ema_cross`: `tanh(100 · (EMA_fast − EMA_slow) / |EMA_slow|)`: a spread of 1% of
//!   the price gives 0.76.
//! - `rsi_reversion`: how deep the RSI is into its zone, linearly: `(oversold − RSI) /
//!   oversold` when bullish, `−(RSI − overbought) / (100 − overbought)` when bearish.
//! - `macd_cross`: `tanh(1000 · histogram / |close|)`: a histogram of 0.1% of the price
//!   gives 0.76. The factor is ten times ema_cross's because the histogram, a difference
//!   of EMA spreads, is typically an order of magnitude smaller than the spread itself.
//! - `bbands_breakout`: `tanh(distance beyond the band / (k · standard deviation))`, the
//!   overshoot in units of the band's half-width.
//! - `consensus`: the mean of its four members' strengths, limited to 0 on the side
//!   opposite the vote (so a bullish vote never reports a negative strength).
//!
//! Prices that differ by less than 1e-12 of their size count as equal: EMAs of a flat
//! market differ by rounding only, and reading that as a cross would invent signals.
//!
//! # Warm-up
//!
//! [`Strategy::warm_up`] is how many candles to load before the first bar a caller wants
//! a signal for: the indicators' lookbacks plus, for the recursive ones (EMA, RSI,
//! MACD), enough history that the starting point's influence is below 1e-9 (see
//! [`WarmUp`]). `since` is the exception: it looks back to the last change of direction,
//! which may lie before any history loaded, so it only ever reports a bar it was given.
//!
//! # Backtest execution model
//!
//! [`backtest`] simulates one long-only account that is either all in cash or all in the
//! asset:
//!
//! - A signal computed at the close of bar t trades at the open of bar t + 1. Bullish
//!   while flat buys; bearish while long sells; anything else (neutral, undefined, or
//!   bullish while already long) holds. The signal of the last bar has no bar to trade
//!   in and is ignored.
//! - A buy fills at `open · (1 + slippage_bps / 10⁴)`, a sale at `open · (1 −
//!   slippage_bps / 10⁴)`. Each fill pays `fee_bps / 10⁴` of its notional in cash: a buy
//!   spends all the cash on notional plus fee, a sale returns the proceeds less the fee.
//! - Equity (cash plus the position at the close) is marked at every bar's close. A
//!   position still open after the last bar is marked to the last close, with no exit
//!   fee, and is reported as an open trade (`exit_time` None).
//! - Metrics come from the per-bar returns of that equity, `equity[t] / equity[t − 1] −
//!   1`, over the n − 1 bar-to-bar steps of n candles:
//!   - Sharpe = mean / standard deviation × √periods_per_year, with the *population*
//!     standard deviation and a risk-free rate of 0; 0 when the returns do not vary.
//!   - Sortino = mean / downside deviation × √periods_per_year, the downside deviation
//!     being √(mean of min(r, 0)²) over all returns; 0 when no bar lost money.
//!   - CAGR = (final / initial)^(1 / years) − 1 with years = (n − 1) / periods_per_year;
//!     0 for a single candle. It saturates at `f64::MAX` for absurdly explosive runs.
//!   - Max drawdown is the largest fall from a running peak of equity (the initial cash
//!     included), as a positive fraction.
//!   - Exposure is the fraction of bars that close holding the asset.
//!   - Win rate is winning closed trades (pnl > 0) over closed trades, 0 when none
//!     closed. `trade_count` counts every trade listed, the open one included.
//!   - Returns, drawdown, exposure and win rate are fractions (0.05 = 5%); only
//!     [`Trade::return_pct`] is in percent.
//!
//! [`backtest_from`] does the same over the candles from a given time on, using the
//! earlier ones only to warm the indicators up.
//!
//! [`IndicatorSpec::state`]: crate::indicators::IndicatorSpec::state
//! [`WarmUp`]: crate::indicators::WarmUp

mod backtest;
mod params;
mod rules;

pub use backtest::{
    BacktestConfig, BacktestResult, MAX_CURVE_POINTS, Trade, backtest, backtest_from,
};
pub use params::{Strategy, StrategyInfo, StrategyKind, StrategyParam};

use crate::Candle;
use crate::indicators::IndicatorError;

/// Changes whenever a change to the rules, formulas or backtest could change a result
/// for the same input, so a stored result can be told apart from a fresh one.
pub const ENGINE_VERSION: &str = "1";

/// Which way a strategy leans at one bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Bullish,
    Bearish,
    Neutral,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Bullish => "bullish",
            Direction::Bearish => "bearish",
            Direction::Neutral => "neutral",
        }
    }

    /// +1 bullish, −1 bearish, 0 neutral.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Bullish => 1.0,
            Direction::Bearish => -1.0,
            Direction::Neutral => 0.0,
        }
    }
}

/// A strategy's reading at one candle.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalPoint {
    /// The candle's open time, Unix milliseconds.
    pub open_time: i64,
    pub direction: Direction,
    /// In [-1, 1], with the sign of `direction`; 0 when neutral or undefined.
    pub strength: f64,
    /// False while the indicators are still undefined (direction Neutral then).
    pub defined: bool,
    /// The indicator values used at this bar, named like "ema_12", "ema_26", "rsi_14",
    /// "macd_hist", "bb_upper", "close". Values not yet defined are left out.
    pub inputs: Vec<(String, f64)>,
    /// Open time of the bar where `direction` last changed: the first defined bar if it
    /// never has, the first candle while nothing is defined yet.
    pub since: i64,
}

/// Why a strategy could not be built, evaluated or backtested. Each message names the
/// parameter or input at fault and what would have been accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown parameter `{name}`; allowed: {allowed}")]
    UnknownParam { name: String, allowed: String },
    #[error("parameter `{name}` must be a whole number")]
    NotInteger { name: &'static str },
    #[error("parameter `{name}` must be a number from {min} to {max}")]
    OutOfRange {
        name: &'static str,
        min: f64,
        max: f64,
    },
    /// A rule across parameters, a duplicated parameter, a backtest setting or the
    /// candles' order or count; the message says which.
    #[error("{0}")]
    Rule(String),
    /// A NaN or infinite candle field.
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a, fed piece by piece.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Length first, so that ("ab", "c") and ("a", "bc") hash differently.
    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }

    fn number(&mut self, value: f64) {
        self.bytes(&value.to_bits().to_le_bytes());
    }
}

/// A stable 64-bit FNV-1a hash, as 16 lowercase hex digits, of everything a result
/// depends on: [`ENGINE_VERSION`], the strategy's name and resolved parameters, the
/// interval name, and every candle's open time and OHLCV bits. The same request over
/// the same data gives the same hash on any machine and release of the same engine
/// version; a revised candle gives a different one.
pub fn input_hash(strategy: &Strategy, interval: &str, candles: &[Candle]) -> String {
    let mut h = Fnv(FNV_OFFSET);
    h.text(ENGINE_VERSION);
    h.text(strategy.kind().name());
    let params = strategy.params();
    h.bytes(&(params.len() as u64).to_le_bytes());
    for (name, value) in params {
        h.text(name);
        h.number(value);
    }
    h.text(interval);
    h.bytes(&(candles.len() as u64).to_le_bytes());
    for c in candles {
        h.bytes(&c.open_time.to_le_bytes());
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            h.number(v);
        }
    }
    format!("{:016x}", h.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candles(n: usize) -> Vec<Candle> {
        (0..n)
            .map(|i| {
                let p = 100.0 + i as f64;
                Candle {
                    open_time: i as i64 * 60_000,
                    open: p,
                    high: p + 1.0,
                    low: p - 1.0,
                    close: p + 0.5,
                    volume: 10.0,
                }
            })
            .collect()
    }

    fn ema(fast: f64, slow: f64) -> Strategy {
        Strategy::new(
            StrategyKind::EmaCross,
            &[("fast".to_owned(), fast), ("slow".to_owned(), slow)],
        )
        .unwrap()
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // From the FNV reference: FNV-1a 64 of "" and of "a".
        let mut h = Fnv(FNV_OFFSET);
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn input_hash_is_stable_and_sensitive() {
        let base = candles(50);
        let hash = input_hash(&ema(12.0, 26.0), "1h", &base);
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(hash, input_hash(&ema(12.0, 26.0), "1h", &candles(50)));

        let mut revised = base.clone();
        revised[17].close += 0.01;
        assert_ne!(hash, input_hash(&ema(12.0, 26.0), "1h", &revised));
        assert_ne!(hash, input_hash(&ema(12.0, 27.0), "1h", &base));
        assert_ne!(hash, input_hash(&ema(12.0, 26.0), "4h", &base));
        assert_ne!(hash, input_hash(&ema(12.0, 26.0), "1h", &base[..49]));
        let macd = Strategy::new(StrategyKind::MacdCross, &[]).unwrap();
        assert_ne!(hash, input_hash(&macd, "1h", &base));
        // Defaults given explicitly are the same request.
        let defaults = Strategy::new(StrategyKind::EmaCross, &[]).unwrap();
        assert_eq!(hash, input_hash(&defaults, "1h", &base));
    }

    #[test]
    fn directions_read_as_words_and_signs() {
        assert_eq!(Direction::Bullish.as_str(), "bullish");
        assert_eq!(Direction::Bearish.as_str(), "bearish");
        assert_eq!(Direction::Neutral.as_str(), "neutral");
        assert_eq!(Direction::Bullish.sign(), 1.0);
        assert_eq!(Direction::Bearish.sign(), -1.0);
        assert_eq!(Direction::Neutral.sign(), 0.0);
    }
}
