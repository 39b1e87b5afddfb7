//! A uniform description of every indicator, for layers that list, parse and compute
//! them without knowing each one: names, parameters with defaults and ranges, output
//! columns, lookback, warm-up, and the `rsi:14,ema:50,macd:12:26:9` request grammar.
//!
//! Parameter defaults are TA-Lib's. Periods are capped at [`MAX_PERIOD`] (TA-Lib allows
//! 100 000) so the warm-up a request can demand stays bounded.

use std::fmt;
use std::str::FromStr;

use super::{
    CandleColumns, Indicator, IndicatorError, Series, ma, momentum, trend, volatility, volume,
};
use crate::Candle;

/// Most indicators one request may ask for.
pub const MAX_INDICATORS: usize = 10;
/// Longest period any parameter may take.
pub const MAX_PERIOD: usize = 1000;
/// Bound on the influence of the starting point that [`WarmUp::Candles`] guarantees,
/// with a tenfold margin under the promised 1e-9.
const CONVERGENCE: f64 = 1e-10;
const MAX_PARAMS: usize = 3;

/// Every indicator marketd computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    Sma,
    Ema,
    Wma,
    Dema,
    Tema,
    Rsi,
    Macd,
    Bbands,
    Stddev,
    Atr,
    Natr,
    Stoch,
    StochRsi,
    Adx,
    Cci,
    Mfi,
    Willr,
    Roc,
    Obv,
    Vwap,
}

/// What an indicator reads from each candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// The close only.
    Close,
    /// Several OHLCV fields (and `open_time` for VWAP).
    Candle,
}

/// One parameter: its place in the grammar is its place in [`KindInfo::params`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub default: f64,
    pub min: f64,
    pub max: f64,
    /// Whole numbers only (periods); otherwise any decimal in range.
    pub integer: bool,
}

/// Everything a client needs to know about one kind of indicator.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: IndicatorKind,
    /// The name used in requests and column names, e.g. `macd`.
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input: InputKind,
    pub params: &'static [ParamInfo],
    /// Output column names, in the order [`IndicatorSpec::compute`] returns them.
    pub outputs: &'static [&'static str],
}

const fn period(
    name: &'static str,
    description: &'static str,
    default: usize,
    min: usize,
) -> ParamInfo {
    ParamInfo {
        name,
        description,
        default: default as f64,
        min: min as f64,
        max: MAX_PERIOD as f64,
        integer: true,
    }
}

const K_BANDS: ParamInfo = ParamInfo {
    name: "k",
    description: "standard deviations between the middle and each band",
    default: 2.0,
    min: 0.0,
    max: 10.0,
    integer: false,
};

const K_STDDEV: ParamInfo = ParamInfo {
    name: "k",
    description: "multiplier applied to the standard deviation",
    default: 1.0,
    ..K_BANDS
};

const PERIOD_MA: [ParamInfo; 1] = [period("period", "values averaged", 30, 2)];

static KINDS: [KindInfo; 20] = [
    KindInfo {
        kind: IndicatorKind::Sma,
        name: "sma",
        title: "Simple moving average",
        description: "Mean of the last `period` closes.",
        input: InputKind::Close,
        params: &PERIOD_MA,
        outputs: &["sma"],
    },
    KindInfo {
        kind: IndicatorKind::Ema,
        name: "ema",
        title: "Exponential moving average",
        description: "EMA with k = 2/(period+1), seeded with the SMA of the first `period` closes.",
        input: InputKind::Close,
        params: &PERIOD_MA,
        outputs: &["ema"],
    },
    KindInfo {
        kind: IndicatorKind::Wma,
        name: "wma",
        title: "Weighted moving average",
        description: "Linearly weighted mean of the last `period` closes, newest heaviest.",
        input: InputKind::Close,
        params: &PERIOD_MA,
        outputs: &["wma"],
    },
    KindInfo {
        kind: IndicatorKind::Dema,
        name: "dema",
        title: "Double exponential moving average",
        description: "2·EMA − EMA(EMA).",
        input: InputKind::Close,
        params: &PERIOD_MA,
        outputs: &["dema"],
    },
    KindInfo {
        kind: IndicatorKind::Tema,
        name: "tema",
        title: "Triple exponential moving average",
        description: "3·EMA − 3·EMA(EMA) + EMA(EMA(EMA)).",
        input: InputKind::Close,
        params: &PERIOD_MA,
        outputs: &["tema"],
    },
    KindInfo {
        kind: IndicatorKind::Rsi,
        name: "rsi",
        title: "Relative strength index",
        description: "Wilder's RSI of the closes, 0 to 100.",
        input: InputKind::Close,
        params: &[period("period", "changes averaged", 14, 2)],
        outputs: &["rsi"],
    },
    KindInfo {
        kind: IndicatorKind::Macd,
        name: "macd",
        title: "Moving average convergence/divergence",
        description: "EMA(fast) − EMA(slow) of the closes, its EMA(signal), and the difference (histogram).",
        input: InputKind::Close,
        params: &[
            period("fast", "fast EMA period, below slow", 12, 2),
            period("slow", "slow EMA period", 26, 2),
            period("signal", "EMA period of the signal line", 9, 1),
        ],
        outputs: &["macd", "macd_signal", "macd_hist"],
    },
    KindInfo {
        kind: IndicatorKind::Bbands,
        name: "bbands",
        title: "Bollinger Bands",
        description: "SMA of the closes ± k population standard deviations.",
        input: InputKind::Close,
        params: &[period("period", "closes in the window", 20, 2), K_BANDS],
        outputs: &["bbands_upper", "bbands_middle", "bbands_lower"],
    },
    KindInfo {
        kind: IndicatorKind::Stddev,
        name: "stddev",
        title: "Rolling standard deviation",
        description: "Population standard deviation of the last `period` closes, times k.",
        input: InputKind::Close,
        params: &[period("period", "closes in the window", 5, 2), K_STDDEV],
        outputs: &["stddev"],
    },
    KindInfo {
        kind: IndicatorKind::Atr,
        name: "atr",
        title: "Average true range",
        description: "Wilder-smoothed true range.",
        input: InputKind::Candle,
        params: &[period("period", "true ranges averaged", 14, 1)],
        outputs: &["atr"],
    },
    KindInfo {
        kind: IndicatorKind::Natr,
        name: "natr",
        title: "Normalised average true range",
        description: "ATR as a percentage of the close.",
        input: InputKind::Candle,
        params: &[period("period", "true ranges averaged", 14, 1)],
        outputs: &["natr"],
    },
    KindInfo {
        kind: IndicatorKind::Stoch,
        name: "stoch",
        title: "Stochastic oscillator (slow)",
        description: "Slow %K (SMA of fast %K) and %D (SMA of slow %K), 0 to 100.",
        input: InputKind::Candle,
        params: &[
            period("fastk", "candles in the high-low window", 5, 1),
            period("slowk", "SMA period smoothing fast %K into slow %K", 3, 1),
            period("slowd", "SMA period of %D", 3, 1),
        ],
        outputs: &["stoch_k", "stoch_d"],
    },
    KindInfo {
        kind: IndicatorKind::StochRsi,
        name: "stochrsi",
        title: "Stochastic RSI",
        description: "Fast stochastic of the RSI: %K and its SMA %D, 0 to 100.",
        input: InputKind::Close,
        params: &[
            period("period", "RSI period", 14, 2),
            period("fastk", "RSI values in the high-low window", 5, 1),
            period("fastd", "SMA period of %D", 3, 1),
        ],
        outputs: &["stochrsi_k", "stochrsi_d"],
    },
    KindInfo {
        kind: IndicatorKind::Adx,
        name: "adx",
        title: "Average directional index",
        description: "Wilder's ADX with the directional indicators +DI and −DI, 0 to 100.",
        input: InputKind::Candle,
        params: &[period("period", "smoothing period", 14, 2)],
        outputs: &["adx", "adx_plus_di", "adx_minus_di"],
    },
    KindInfo {
        kind: IndicatorKind::Cci,
        name: "cci",
        title: "Commodity channel index",
        description: "Distance of the typical price from its SMA in units of 0.015 mean deviations.",
        input: InputKind::Candle,
        params: &[period("period", "candles in the window", 14, 2)],
        outputs: &["cci"],
    },
    KindInfo {
        kind: IndicatorKind::Mfi,
        name: "mfi",
        title: "Money flow index",
        description: "Volume-weighted RSI of the typical price, 0 to 100.",
        input: InputKind::Candle,
        params: &[period("period", "money flows summed", 14, 2)],
        outputs: &["mfi"],
    },
    KindInfo {
        kind: IndicatorKind::Willr,
        name: "willr",
        title: "Williams %R",
        description: "Where the close sits below the window's high, −100 to 0.",
        input: InputKind::Candle,
        params: &[period("period", "candles in the high-low window", 14, 2)],
        outputs: &["willr"],
    },
    KindInfo {
        kind: IndicatorKind::Roc,
        name: "roc",
        title: "Rate of change",
        description: "Percentage change of the close over `period` candles.",
        input: InputKind::Close,
        params: &[period("period", "candles looked back", 10, 1)],
        outputs: &["roc"],
    },
    KindInfo {
        kind: IndicatorKind::Obv,
        name: "obv",
        title: "On-balance volume",
        description: "Running total of volume, added on up closes and subtracted on down closes, from the first candle computed.",
        input: InputKind::Candle,
        params: &[],
        outputs: &["obv"],
    },
    KindInfo {
        kind: IndicatorKind::Vwap,
        name: "vwap",
        title: "Volume-weighted average price",
        description: "Typical price weighted by volume since 00:00 UTC of the candle's day.",
        input: InputKind::Candle,
        params: &[],
        outputs: &["vwap"],
    },
];

impl IndicatorKind {
    /// Every kind, in the order they are listed to clients.
    pub fn all() -> impl Iterator<Item = IndicatorKind> {
        KINDS.iter().map(|info| info.kind)
    }

    pub fn info(self) -> &'static KindInfo {
        // KINDS lists the variants in declaration order.
        &KINDS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Looks a kind up by its request name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        KINDS
            .iter()
            .find(|info| info.name.eq_ignore_ascii_case(name))
            .map(|info| info.kind)
    }
}

/// How many candles before the first wanted one must be computed for that first value to
/// be exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmUp {
    /// Start this many candles earlier (or at the first stored candle, which is exact by
    /// definition). For windowed indicators this is the lookback; for recursive ones (the
    /// EMA, RSI and ADX families) it also covers the candles after which the starting
    /// point's influence is below 1e-9 of the input's scale.
    Candles(usize),
    /// Start at 00:00 UTC of the first wanted candle's day (VWAP).
    UtcDay,
    /// A running total over everything computed (OBV): exact only from the first stored
    /// candle; any later start shifts every value by a constant.
    FullHistory,
}

/// One kind of indicator with all its parameters set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndicatorSpec {
    kind: IndicatorKind,
    params: [f64; MAX_PARAMS],
}

/// A computed output column: its name (see [`KindInfo::outputs`]) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub values: Series,
}

impl IndicatorSpec {
    /// The kind with TA-Lib's default parameters.
    pub fn with_defaults(kind: IndicatorKind) -> Self {
        let mut params = [0.0; MAX_PARAMS];
        for (slot, info) in params.iter_mut().zip(kind.info().params) {
            *slot = info.default;
        }
        Self { kind, params }
    }

    /// Builds a spec from explicit parameters; missing trailing ones take their defaults.
    pub fn new(kind: IndicatorKind, params: &[f64]) -> Result<Self, ParseError> {
        let mut spec = Self::with_defaults(kind);
        let token = || {
            let mut s = kind.name().to_owned();
            for p in params {
                s.push(':');
                s.push_str(&p.to_string());
            }
            s
        };
        let infos = kind.info().params;
        if params.len() > infos.len() {
            return Err(too_many_params(token(), kind));
        }
        for (i, (&value, info)) in params.iter().zip(infos).enumerate() {
            check_param(info, value).map_err(|expected| ParseError::BadParam {
                token: token(),
                param: info.name,
                value: value.to_string(),
                expected,
            })?;
            spec.params[i] = value;
        }
        spec.check_consistent()
            .map_err(|message| ParseError::Inconsistent {
                token: token(),
                message,
            })?;
        Ok(spec)
    }

    pub fn kind(&self) -> IndicatorKind {
        self.kind
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Parameter values, in the order of [`KindInfo::params`].
    pub fn params(&self) -> &[f64] {
        &self.params[..self.kind.info().params.len()]
    }

    /// Output column names, in the order [`compute`](Self::compute) returns them.
    pub fn outputs(&self) -> &'static [&'static str] {
        self.kind.info().outputs
    }

    fn period(&self, i: usize) -> usize {
        // Validated as a whole number from 1 to MAX_PERIOD.
        self.params[i] as usize
    }

    fn check_consistent(&self) -> Result<(), &'static str> {
        if self.kind == IndicatorKind::Macd && self.period(0) >= self.period(1) {
            return Err("the fast period must be shorter than the slow period");
        }
        Ok(())
    }

    /// Leading undefined values of each output column, in [`outputs`](Self::outputs) order.
    pub fn output_lookbacks(&self) -> Vec<usize> {
        use IndicatorKind as K;
        let p = self.period(0);
        let one = match self.kind {
            K::Sma | K::Ema | K::Wma | K::Bbands | K::Stddev | K::Cci | K::Willr => p - 1,
            K::Dema => 2 * (p - 1),
            K::Tema => 3 * (p - 1),
            K::Rsi | K::Atr | K::Natr | K::Mfi | K::Roc => p,
            K::Macd => self.period(1) + self.period(2) - 2,
            K::Stoch => p + self.period(1) + self.period(2) - 3,
            K::StochRsi => p + self.period(1) + self.period(2) - 2,
            K::Adx => return vec![2 * p - 1, p, p],
            K::Obv | K::Vwap => 0,
        };
        vec![one; self.outputs().len()]
    }

    /// Leading undefined values: after this many candles every column has a value.
    pub fn lookback(&self) -> usize {
        self.output_lookbacks().into_iter().max().unwrap_or(0)
    }

    /// How much earlier than the first wanted candle computing must start.
    pub fn warm_up(&self) -> WarmUp {
        use IndicatorKind as K;
        let p = self.period(0) as f64;
        let ema = |period: f64| 1.0 - 2.0 / (period + 1.0);
        let wilder = 1.0 - 1.0 / p;
        let settle = match self.kind {
            K::Ema => settling(ema(p), 1, CONVERGENCE),
            K::Dema => settling(ema(p), 2, CONVERGENCE),
            K::Tema => settling(ema(p), 3, CONVERGENCE),
            K::Macd => {
                let slowest = ema(self.period(1) as f64).max(ema(self.period(2) as f64));
                settling(slowest, 2, CONVERGENCE)
            }
            K::Rsi | K::Atr | K::Natr => settling(wilder, 1, CONVERGENCE),
            K::Adx => settling(wilder, 2, CONVERGENCE),
            // The stochastic stretches the RSI's residual error by 100 / (its high-low
            // range), which can be a few hundredths in quiet markets.
            K::StochRsi => settling(wilder, 1, CONVERGENCE * 1e-4),
            K::Obv => return WarmUp::FullHistory,
            K::Vwap => return WarmUp::UtcDay,
            _ => 0,
        };
        WarmUp::Candles(self.lookback() + settle)
    }

    /// Computes every output column over `candles` (oldest first), each as long as the
    /// input. To compute several indicators over the same candles, build
    /// [`CandleColumns`] once and use [`compute_columns`](Self::compute_columns).
    pub fn compute(&self, candles: &[Candle]) -> Result<Vec<Column>, IndicatorError> {
        self.compute_columns(&CandleColumns::from_candles(candles))
    }

    /// [`compute`](Self::compute) over candles already split into columns.
    pub fn compute_columns(&self, candles: &CandleColumns) -> Result<Vec<Column>, IndicatorError> {
        use IndicatorKind as K;
        let names = self.outputs();
        let p = self.period(0);
        let closes = candles.close();
        let close_field = |e: IndicatorError| match e {
            IndicatorError::NotFinite { index, .. } => IndicatorError::NotFinite {
                index,
                field: "close",
            },
            other => other,
        };
        let columns: Vec<Series> = match self.kind {
            K::Sma => vec![ma::sma(closes, p).map_err(close_field)?],
            K::Ema => vec![ma::ema(closes, p).map_err(close_field)?],
            K::Wma => vec![ma::wma(closes, p).map_err(close_field)?],
            K::Dema => vec![ma::dema(closes, p).map_err(close_field)?],
            K::Tema => vec![ma::tema(closes, p).map_err(close_field)?],
            K::Rsi => vec![momentum::rsi(closes, p).map_err(close_field)?],
            K::Roc => vec![momentum::roc(closes, p).map_err(close_field)?],
            K::Stddev => {
                vec![volatility::stddev(closes, p, self.params[1]).map_err(close_field)?]
            }
            K::Macd => {
                let s = momentum::macd(closes, p, self.period(1), self.period(2))
                    .map_err(close_field)?;
                vec![s.macd, s.signal, s.hist]
            }
            K::Bbands => {
                let s = volatility::bbands(closes, p, self.params[1]).map_err(close_field)?;
                vec![s.upper, s.middle, s.lower]
            }
            K::StochRsi => {
                let s = momentum::stochrsi(closes, p, self.period(1), self.period(2))
                    .map_err(close_field)?;
                vec![s.k, s.d]
            }
            K::Stoch => {
                let s = momentum::stoch(candles, p, self.period(1), self.period(2))?;
                vec![s.k, s.d]
            }
            K::Adx => {
                let s = trend::adx(candles, p)?;
                vec![s.adx, s.plus_di, s.minus_di]
            }
            K::Atr => vec![volatility::atr(candles, p)?],
            K::Natr => vec![volatility::natr(candles, p)?],
            K::Cci => vec![momentum::cci(candles, p)?],
            K::Mfi => vec![momentum::mfi(candles, p)?],
            K::Willr => vec![momentum::willr(candles, p)?],
            K::Obv => vec![volume::obv(candles)?],
            K::Vwap => vec![volume::vwap(candles)?],
        };
        Ok(names
            .iter()
            .zip(columns)
            .map(|(&name, values)| Column { name, values })
            .collect())
    }

    /// A fresh incremental state for this indicator.
    pub fn state(&self) -> IndicatorState {
        use IndicatorKind as K;
        let p = self.period(0);
        let (p1, p2) = (self.period(1), self.period(2));
        // Parameters were validated when the spec was built, so construction succeeds;
        // the fallbacks only keep this function total.
        let inner = match self.kind {
            K::Sma => ma::Sma::new(p).map(State::Sma),
            K::Ema => ma::Ema::new(p).map(State::Ema),
            K::Wma => ma::Wma::new(p).map(State::Wma),
            K::Dema => ma::Dema::new(p).map(State::Dema),
            K::Tema => ma::Tema::new(p).map(State::Tema),
            K::Rsi => momentum::Rsi::new(p).map(State::Rsi),
            K::Roc => momentum::Roc::new(p).map(State::Roc),
            K::Macd => momentum::Macd::new(p, p1, p2).map(State::Macd),
            K::Bbands => volatility::Bbands::new(p, self.params[1]).map(State::Bbands),
            K::Stddev => volatility::StdDev::new(p, self.params[1]).map(State::Stddev),
            K::StochRsi => momentum::StochRsi::new(p, p1, p2).map(State::StochRsi),
            K::Stoch => momentum::Stoch::new(p, p1, p2).map(State::Stoch),
            K::Adx => trend::Adx::new(p).map(State::Adx),
            K::Atr => volatility::Atr::new(p).map(State::Atr),
            K::Natr => volatility::Natr::new(p).map(State::Natr),
            K::Cci => momentum::Cci::new(p).map(State::Cci),
            K::Mfi => momentum::Mfi::new(p).map(State::Mfi),
            K::Willr => momentum::WillR::new(p).map(State::Willr),
            K::Obv => Ok(State::Obv(volume::Obv::new())),
            K::Vwap => Ok(State::Vwap(volume::Vwap::new())),
        };
        IndicatorState {
            inner: inner.unwrap_or(State::Obv(volume::Obv::new())),
        }
    }
}

/// The smallest m with C(m + stages − 1, stages − 1) · decay^m ≤ tolerance: how long until
/// a seeding error has faded through `stages` chained exponential smoothers.
fn settling(decay: f64, stages: u32, tolerance: f64) -> usize {
    let ln_decay = decay.ln();
    // Start from the single-stage answer, which is a lower bound, and walk up.
    let mut m = (tolerance.ln() / ln_decay).ceil().max(0.0) as usize;
    loop {
        let mut paths = 1.0;
        for j in 1..stages {
            paths *= (m as f64 + f64::from(j)) / f64::from(j);
        }
        if paths.ln() + m as f64 * ln_decay <= tolerance.ln() {
            return m;
        }
        m += 1;
    }
}

fn check_param(info: &ParamInfo, value: f64) -> Result<(), String> {
    let in_range = value.is_finite() && value >= info.min && value <= info.max;
    if in_range && (!info.integer || value.fract() == 0.0) {
        Ok(())
    } else {
        Err(expected(info))
    }
}

fn expected(info: &ParamInfo) -> String {
    if info.integer {
        format!("a whole number from {} to {}", info.min, info.max)
    } else {
        format!("a number from {} to {}", info.min, info.max)
    }
}

fn too_many_params(token: String, kind: IndicatorKind) -> ParseError {
    let params = kind.info().params;
    ParseError::TooManyParams {
        token,
        name: kind.name(),
        max: params.len(),
        params: if params.is_empty() {
            "none".to_owned()
        } else {
            params.iter().map(|p| p.name).collect::<Vec<_>>().join(":")
        },
    }
}

/// `macd:12:26:9`: the name, then every parameter. Parsing it gives back the same spec.
impl fmt::Display for IndicatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        for p in self.params() {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Parses one token of the grammar: `name[:param]*`. Parameters are positional; an
/// omitted or empty one takes its default (`macd::30` keeps fast at 12).
impl FromStr for IndicatorSpec {
    type Err = ParseError;

    fn from_str(token: &str) -> Result<Self, ParseError> {
        let mut parts = token.split(':');
        let name = parts.next().unwrap_or_default().trim();
        let kind = IndicatorKind::from_name(name).ok_or_else(|| ParseError::UnknownName {
            token: token.to_owned(),
            name: name.to_owned(),
            allowed: KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        })?;
        let infos = kind.info().params;
        let mut spec = Self::with_defaults(kind);
        for (i, raw) in parts.enumerate() {
            let Some(info) = infos.get(i) else {
                return Err(too_many_params(token.to_owned(), kind));
            };
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let bad = || ParseError::BadParam {
                token: token.to_owned(),
                param: info.name,
                value: raw.to_owned(),
                expected: expected(info),
            };
            // Only plain decimals: Rust's float syntax would also take `inf` and `1e3`.
            let plain = raw
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || (b == b'-' && !info.integer));
            let value: f64 = if plain {
                raw.parse().map_err(|_| bad())?
            } else {
                return Err(bad());
            };
            check_param(info, value).map_err(|_| bad())?;
            spec.params[i] = value;
        }
        spec.check_consistent()
            .map_err(|message| ParseError::Inconsistent {
                token: token.to_owned(),
                message,
            })?;
        Ok(spec)
    }
}

/// Parses a comma-separated list such as `rsi:14,ema:50,macd:12:26:9,bbands:20:2`.
pub fn parse_indicators(list: &str) -> Result<Vec<IndicatorSpec>, ParseError> {
    if list.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let tokens: Vec<&str> = list.split(',').collect();
    if tokens.len() > MAX_INDICATORS {
        return Err(ParseError::TooMany {
            count: tokens.len(),
            max: MAX_INDICATORS,
        });
    }
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let token = token.trim();
            if token.is_empty() {
                Err(ParseError::EmptyToken { position: i + 1 })
            } else {
                token.parse()
            }
        })
        .collect()
}

/// Why an indicator list or token was refused. Each message names the offending token
/// and says what would have been accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("no indicators given; list them like `rsi:14,ema:50,macd:12:26:9`")]
    Empty,
    #[error("{count} indicators requested; at most {max} are allowed per request")]
    TooMany { count: usize, max: usize },
    #[error("indicator {position} of the list is empty; separate indicators with single commas")]
    EmptyToken { position: usize },
    #[error("unknown indicator `{name}` in `{token}`; allowed: {allowed}")]
    UnknownName {
        token: String,
        name: String,
        allowed: String,
    },
    #[error("`{token}`: {name} takes at most {max} parameter(s): {params}")]
    TooManyParams {
        token: String,
        name: &'static str,
        max: usize,
        params: String,
    },
    #[error("`{token}`: {param} is `{value}`, expected {expected}")]
    BadParam {
        token: String,
        param: &'static str,
        value: String,
        expected: String,
    },
    #[error("`{token}`: {message}")]
    Inconsistent {
        token: String,
        message: &'static str,
    },
}

/// Up to three output values for one candle, in [`IndicatorSpec::outputs`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    values: [Option<f64>; MAX_PARAMS],
    len: usize,
}

impl Row {
    fn one(v: Option<f64>) -> Self {
        Self {
            values: [v, None, None],
            len: 1,
        }
    }

    fn two(a: Option<f64>, b: Option<f64>) -> Self {
        Self {
            values: [a, b, None],
            len: 2,
        }
    }

    fn three(a: Option<f64>, b: Option<f64>, c: Option<f64>) -> Self {
        Self {
            values: [a, b, c],
            len: 3,
        }
    }

    pub fn as_slice(&self) -> &[Option<f64>] {
        &self.values[..self.len]
    }
}

/// The incremental state of any indicator, fed whole candles.
#[derive(Debug, Clone)]
pub struct IndicatorState {
    inner: State,
}

#[derive(Debug, Clone)]
enum State {
    Sma(ma::Sma),
    Ema(ma::Ema),
    Wma(ma::Wma),
    Dema(ma::Dema),
    Tema(ma::Tema),
    Rsi(momentum::Rsi),
    Roc(momentum::Roc),
    Macd(momentum::Macd),
    Bbands(volatility::Bbands),
    Stddev(volatility::StdDev),
    StochRsi(momentum::StochRsi),
    Stoch(momentum::Stoch),
    Adx(trend::Adx),
    Atr(volatility::Atr),
    Natr(volatility::Natr),
    Cci(momentum::Cci),
    Mfi(momentum::Mfi),
    Willr(momentum::WillR),
    Obv(volume::Obv),
    Vwap(volume::Vwap),
}

impl IndicatorState {
    /// Feeds the next candle and returns the outputs at it.
    pub fn push(&mut self, c: Candle) -> Result<Row, IndicatorError> {
        let close = |e: IndicatorError| match e {
            IndicatorError::NotFinite { index, .. } => IndicatorError::NotFinite {
                index,
                field: "close",
            },
            other => other,
        };
        Ok(match &mut self.inner {
            State::Sma(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Ema(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Wma(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Dema(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Tema(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Rsi(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Roc(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Stddev(s) => Row::one(s.push(c.close).map_err(close)?),
            State::Macd(s) => {
                let p = s.push(c.close).map_err(close)?;
                Row::three(p.macd, p.signal, p.hist)
            }
            State::Bbands(s) => {
                let p = s.push(c.close).map_err(close)?;
                Row::three(p.upper, p.middle, p.lower)
            }
            State::StochRsi(s) => {
                let p = s.push(c.close).map_err(close)?;
                Row::two(p.k, p.d)
            }
            State::Stoch(s) => {
                let p = s.push(c)?;
                Row::two(p.k, p.d)
            }
            State::Adx(s) => {
                let p = s.push(c)?;
                Row::three(p.adx, p.plus_di, p.minus_di)
            }
            State::Atr(s) => Row::one(s.push(c)?),
            State::Natr(s) => Row::one(s.push(c)?),
            State::Cci(s) => Row::one(s.push(c)?),
            State::Mfi(s) => Row::one(s.push(c)?),
            State::Willr(s) => Row::one(s.push(c)?),
            State::Obv(s) => Row::one(s.push(c)?),
            State::Vwap(s) => Row::one(s.push(c)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(list: &str) -> String {
        parse_indicators(list).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_documented_example() {
        let specs = parse_indicators("rsi:14,ema:50,macd:12:26:9,bbands:20:2").unwrap();
        let printed: Vec<String> = specs.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["rsi:14", "ema:50", "macd:12:26:9", "bbands:20:2"]);
        assert_eq!(specs[2].outputs(), ["macd", "macd_signal", "macd_hist"]);
        assert_eq!(specs[3].params(), [20.0, 2.0]);
    }

    #[test]
    fn omitted_parameters_take_talib_defaults() {
        let specs = parse_indicators("rsi, macd::30 ,bbands:10,stoch,sma,obv").unwrap();
        let printed: Vec<String> = specs.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "rsi:14",
                "macd:12:30:9",
                "bbands:10:2",
                "stoch:5:3:3",
                "sma:30",
                "obv"
            ]
        );
        assert_eq!(
            "BBANDS:20:1.5"
                .parse::<IndicatorSpec>()
                .unwrap()
                .to_string(),
            "bbands:20:1.5"
        );
    }

    #[test]
    fn errors_name_the_token_and_what_is_allowed() {
        assert_eq!(
            parse_err("rsi:14,foo:3"),
            format!(
                "unknown indicator `foo` in `foo:3`; allowed: {}",
                IndicatorKind::all()
                    .map(IndicatorKind::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        assert_eq!(
            parse_err("rsi:1"),
            "`rsi:1`: period is `1`, expected a whole number from 2 to 1000"
        );
        assert_eq!(
            parse_err("ema:14.5"),
            "`ema:14.5`: period is `14.5`, expected a whole number from 2 to 1000"
        );
        assert_eq!(
            parse_err("bbands:20:inf"),
            "`bbands:20:inf`: k is `inf`, expected a number from 0 to 10"
        );
        assert_eq!(
            parse_err("sma:1e3"),
            "`sma:1e3`: period is `1e3`, expected a whole number from 2 to 1000"
        );
        assert_eq!(
            parse_err("rsi:14:3"),
            "`rsi:14:3`: rsi takes at most 1 parameter(s): period"
        );
        assert_eq!(
            parse_err("vwap:1"),
            "`vwap:1`: vwap takes at most 0 parameter(s): none"
        );
        assert_eq!(
            parse_err("macd:26:12"),
            "`macd:26:12`: the fast period must be shorter than the slow period"
        );
        assert_eq!(
            parse_err("rsi,,ema"),
            "indicator 2 of the list is empty; separate indicators with single commas"
        );
        assert_eq!(
            parse_err(" "),
            "no indicators given; list them like `rsi:14,ema:50,macd:12:26:9`"
        );
        assert_eq!(
            parse_err(&["rsi"; 11].join(",")),
            "11 indicators requested; at most 10 are allowed per request"
        );
        assert!(parse_indicators(&["rsi"; 10].join(",")).is_ok());
    }

    #[test]
    fn every_kind_is_listed_once_in_declaration_order() {
        for (i, kind) in IndicatorKind::all().enumerate() {
            assert_eq!(kind as usize, i);
            assert_eq!(IndicatorKind::from_name(kind.name()), Some(kind));
            let spec = IndicatorSpec::with_defaults(kind);
            assert_eq!(spec.output_lookbacks().len(), kind.info().outputs.len());
            assert_eq!(spec.to_string().parse::<IndicatorSpec>().unwrap(), spec);
        }
        assert_eq!(IndicatorKind::all().count(), KINDS.len());
    }

    #[test]
    fn lookbacks_are_talibs() {
        let lookback = |t: &str| t.parse::<IndicatorSpec>().unwrap().output_lookbacks();
        assert_eq!(lookback("sma:30"), [29]);
        assert_eq!(lookback("tema:30"), [87]);
        assert_eq!(lookback("macd:12:26:9"), [33, 33, 33]);
        assert_eq!(lookback("stoch:5:3:3"), [8, 8]);
        assert_eq!(lookback("stochrsi:14:5:3"), [20, 20]);
        assert_eq!(lookback("adx:14"), [27, 14, 14]);
        assert_eq!(lookback("rsi:14"), [14]);
    }

    #[test]
    fn warm_up_grows_with_recursion() {
        let warm = |t: &str| match t.parse::<IndicatorSpec>().unwrap().warm_up() {
            WarmUp::Candles(n) => n,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(warm("sma:20"), 19);
        assert_eq!(warm("bbands:20:2"), 19);
        // (49/51)^m <= 1e-10 from m = 576 on.
        assert_eq!(warm("ema:50"), 49 + 576);
        assert!(warm("dema:50") > warm("ema:50") + 49);
        assert!(warm("adx:14") > warm("atr:14"));
    }

    #[test]
    fn settling_bounds_the_cascade() {
        for stages in 1..=3 {
            let m = settling(0.9, stages, 1e-10);
            let paths = |m: usize| {
                (1..stages).fold(1.0, |p, j| p * (m as f64 + f64::from(j)) / f64::from(j))
            };
            assert!(paths(m) * 0.9_f64.powi(m as i32) <= 1e-10);
            assert!(paths(m - 1) * 0.9_f64.powi(m as i32 - 1) > 1e-10);
        }
    }
}
