//! The strategy catalogue: names, plain-language descriptions and typed parameters, and
//! the validation that turns a request's parameters into a [`Strategy`].

use super::StrategyError;
use crate::indicators::{IndicatorKind, IndicatorSpec, MAX_PERIOD};

/// Every strategy marketd evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    EmaCross,
    RsiReversion,
    MacdCross,
    BbandsBreakout,
    Consensus,
}

/// What a client (person or agent) needs to know to choose and call a strategy.
#[derive(Debug, Clone)]
pub struct StrategyInfo {
    pub name: &'static str,
    /// What it measures, when it is bullish or bearish, how its strength is computed and
    /// where it is typically used.
    pub description: &'static str,
    /// In declaration order, the order of [`Strategy::params`].
    pub params: Vec<StrategyParam>,
}

/// One parameter. Values must lie in `min..=max`, and be whole when `integer`.
#[derive(Debug, Clone)]
pub struct StrategyParam {
    pub name: &'static str,
    pub description: &'static str,
    pub integer: bool,
    pub default: f64,
    pub min: f64,
    pub max: f64,
}

const MAX: f64 = MAX_PERIOD as f64;

const fn period(
    name: &'static str,
    description: &'static str,
    default: f64,
    min: f64,
) -> StrategyParam {
    StrategyParam {
        name,
        description,
        integer: true,
        default,
        min,
        max: MAX,
    }
}

const fn level(name: &'static str, description: &'static str, default: f64) -> StrategyParam {
    // RSI levels of exactly 0 or 100 could never be crossed, so the range stops short.
    StrategyParam {
        name,
        description,
        integer: false,
        default,
        min: 1.0,
        max: 99.0,
    }
}

static EMA_CROSS: [StrategyParam; 2] = [
    period(
        "fast",
        "candles in the fast EMA; must be below slow",
        12.0,
        2.0,
    ),
    period("slow", "candles in the slow EMA", 26.0, 2.0),
];

static RSI_REVERSION: [StrategyParam; 3] = [
    period("period", "candles in Wilder's RSI", 14.0, 2.0),
    level(
        "oversold",
        "RSI below this is bullish; must be below overbought",
        30.0,
    ),
    level("overbought", "RSI above this is bearish", 70.0),
];

static MACD_CROSS: [StrategyParam; 3] = [
    period(
        "fast",
        "candles in the fast EMA; must be below slow",
        12.0,
        2.0,
    ),
    period("slow", "candles in the slow EMA", 26.0, 2.0),
    period(
        "signal",
        "candles in the signal line's EMA of the MACD line",
        9.0,
        1.0,
    ),
];

static BBANDS_BREAKOUT: [StrategyParam; 2] = [
    period(
        "period",
        "candles in the moving average and standard deviation",
        20.0,
        2.0,
    ),
    StrategyParam {
        name: "k",
        description: "population standard deviations between the middle and each band",
        integer: false,
        default: 2.0,
        min: 0.0,
        max: 10.0,
    },
];

impl StrategyKind {
    /// Every kind, in the order they are listed to clients.
    pub fn all() -> [StrategyKind; 5] {
        [
            StrategyKind::EmaCross,
            StrategyKind::RsiReversion,
            StrategyKind::MacdCross,
            StrategyKind::BbandsBreakout,
            StrategyKind::Consensus,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::EmaCross => "ema_cross",
            StrategyKind::RsiReversion => "rsi_reversion",
            StrategyKind::MacdCross => "macd_cross",
            StrategyKind::BbandsBreakout => "bbands_breakout",
            StrategyKind::Consensus => "consensus",
        }
    }

    /// Looks a kind up by its name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all()
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }

    pub fn info(self) -> StrategyInfo {
        StrategyInfo {
            name: self.name(),
            description: self.description(),
            params: self.param_table().to_vec(),
        }
    }

    fn param_table(self) -> &'static [StrategyParam] {
        match self {
            StrategyKind::EmaCross => &EMA_CROSS,
            StrategyKind::RsiReversion => &RSI_REVERSION,
            StrategyKind::MacdCross => &MACD_CROSS,
            StrategyKind::BbandsBreakout => &BBANDS_BREAKOUT,
            StrategyKind::Consensus => &[],
        }
    }

    fn description(self) -> &'static str {
        match self {
            StrategyKind::EmaCross => {
                "Trend following. Compares a fast and a slow exponential moving average (EMA) \
                 of the close. Bullish while the fast EMA is above the slow one (recent prices \
                 run above the longer trend), bearish while it is below, neutral when they are \
                 equal. A change of direction is the classic golden cross (to bullish) or death \
                 cross (to bearish). Works in trending markets; flips back and forth in sideways \
                 ones. Strength = tanh(100 x (fast EMA - slow EMA) / slow EMA): a spread of 1% \
                 of the price gives 0.76."
            }
            StrategyKind::RsiReversion => {
                "Mean reversion. Wilder's relative strength index (RSI, 0 to 100) weighs recent \
                 gains against recent losses. Bullish when the RSI is below `oversold` (selling \
                 looks exhausted, a bounce is expected), bearish when it is above `overbought` \
                 (buying looks exhausted), neutral in between. Suits ranging markets; in a strong \
                 trend the RSI can stay extreme for a long time, so it fights the trend. Strength \
                 = how deep the RSI is into its zone: (oversold - RSI) / oversold when bullish, \
                 -(RSI - overbought) / (100 - overbought) when bearish. A series whose close has \
                 never moved reads neutral."
            }
            StrategyKind::MacdCross => {
                "Momentum. The MACD line is EMA(fast) - EMA(slow) of the close, the signal line \
                 its EMA(signal), the histogram their difference. Bullish while the histogram is \
                 positive (momentum is rising), bearish while it is negative. Turns earlier than \
                 ema_cross and so also gives more false turns. Strength = tanh(1000 x histogram / \
                 close): a histogram of 0.1% of the price gives 0.76."
            }
            StrategyKind::BbandsBreakout => {
                "Volatility breakout. Bollinger Bands are the moving average of the last `period` \
                 closes plus and minus k population standard deviations. Bullish when the close \
                 breaks above the upper band, bearish when it breaks below the lower band, \
                 neutral inside (most of the time). Marks unusually strong moves, which in trends \
                 tend to continue and in ranges tend to revert. Strength = tanh(distance beyond \
                 the band / (k x standard deviation))."
            }
            StrategyKind::Consensus => {
                "A vote of ema_cross, rsi_reversion, macd_cross and bbands_breakout, each at its \
                 default parameters. Bullish when more of them are bullish than bearish, bearish \
                 for the reverse, neutral on a tie; defined once all four are. Trend and \
                 reversion members often disagree, so a non-neutral vote means broad agreement. \
                 Strength = mean of the four strengths, but 0 when that mean leans against the \
                 vote. The inputs list each member's vote (+1, -1, 0) and strength."
            }
        }
    }
}

/// A strategy with every parameter resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    kind: StrategyKind,
    /// In the order of the kind's parameter table.
    values: Vec<f64>,
    pub(super) plan: Plan,
}

/// What a strategy computes, with the indicator specs built once at validation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Plan {
    EmaCross {
        fast: IndicatorSpec,
        slow: IndicatorSpec,
    },
    RsiReversion {
        rsi: IndicatorSpec,
        oversold: f64,
        overbought: f64,
    },
    MacdCross {
        macd: IndicatorSpec,
    },
    BbandsBreakout {
        bbands: IndicatorSpec,
    },
    Consensus {
        members: Vec<Strategy>,
    },
}

/// The members of `consensus`, in the order they vote.
pub(super) const CONSENSUS_MEMBERS: [StrategyKind; 4] = [
    StrategyKind::EmaCross,
    StrategyKind::RsiReversion,
    StrategyKind::MacdCross,
    StrategyKind::BbandsBreakout,
];

impl Strategy {
    /// Builds a strategy from the parameters given by name; the others take their
    /// defaults. Unknown or repeated names, non-integers where integers are required,
    /// out-of-range values and broken cross-parameter rules (fast < slow, oversold <
    /// overbought) are errors naming the parameter and what is allowed.
    pub fn new(kind: StrategyKind, params: &[(String, f64)]) -> Result<Self, StrategyError> {
        let table = kind.param_table();
        let mut values: Vec<f64> = table.iter().map(|p| p.default).collect();
        let mut given = vec![false; table.len()];
        for (name, value) in params {
            let Some(i) = table.iter().position(|p| p.name == name) else {
                return Err(StrategyError::UnknownParam {
                    name: name.clone(),
                    allowed: allowed(table),
                });
            };
            if given[i] {
                return Err(StrategyError::Rule(format!(
                    "parameter `{name}` is given more than once"
                )));
            }
            given[i] = true;
            let info = &table[i];
            if !(value.is_finite() && *value >= info.min && *value <= info.max) {
                return Err(StrategyError::OutOfRange {
                    name: info.name,
                    min: info.min,
                    max: info.max,
                });
            }
            if info.integer && value.fract() != 0.0 {
                return Err(StrategyError::NotInteger { name: info.name });
            }
            values[i] = *value;
        }
        let plan = plan(kind, &values)?;
        Ok(Self { kind, values, plan })
    }

    pub fn kind(&self) -> StrategyKind {
        self.kind
    }

    /// Every parameter with its resolved value, in declaration order.
    pub fn params(&self) -> Vec<(&'static str, f64)> {
        self.kind
            .param_table()
            .iter()
            .zip(&self.values)
            .map(|(p, &v)| (p.name, v))
            .collect()
    }
}

fn allowed(table: &[StrategyParam]) -> String {
    if table.is_empty() {
        "none".to_owned()
    } else {
        table.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    }
}

fn ordered(low: (&str, f64), high: (&str, f64)) -> Result<(), StrategyError> {
    if low.1 < high.1 {
        Ok(())
    } else {
        Err(StrategyError::Rule(format!(
            "parameter `{}` ({}) must be less than `{}` ({})",
            low.0, low.1, high.0, high.1
        )))
    }
}

fn spec(kind: IndicatorKind, params: &[f64]) -> Result<IndicatorSpec, StrategyError> {
    // The strategy's own ranges are within the indicators', so this only fails if the
    // two tables drift apart; the message then still says what went wrong.
    IndicatorSpec::new(kind, params).map_err(|e| StrategyError::Rule(e.to_string()))
}

fn plan(kind: StrategyKind, v: &[f64]) -> Result<Plan, StrategyError> {
    let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    Ok(match kind {
        StrategyKind::EmaCross => {
            ordered(("fast", at(0)), ("slow", at(1)))?;
            Plan::EmaCross {
                fast: spec(IndicatorKind::Ema, &[at(0)])?,
                slow: spec(IndicatorKind::Ema, &[at(1)])?,
            }
        }
        StrategyKind::RsiReversion => {
            ordered(("oversold", at(1)), ("overbought", at(2)))?;
            Plan::RsiReversion {
                rsi: spec(IndicatorKind::Rsi, &[at(0)])?,
                oversold: at(1),
                overbought: at(2),
            }
        }
        StrategyKind::MacdCross => {
            ordered(("fast", at(0)), ("slow", at(1)))?;
            Plan::MacdCross {
                macd: spec(IndicatorKind::Macd, &[at(0), at(1), at(2)])?,
            }
        }
        StrategyKind::BbandsBreakout => Plan::BbandsBreakout {
            bbands: spec(IndicatorKind::Bbands, &[at(0), at(1)])?,
        },
        StrategyKind::Consensus => Plan::Consensus {
            members: CONSENSUS_MEMBERS
                .iter()
                .map(|&member| Strategy::new(member, &[]))
                .collect::<Result<_, _>>()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(kind: StrategyKind, params: &[(&str, f64)]) -> Result<Strategy, StrategyError> {
        let params: Vec<(String, f64)> = params.iter().map(|&(n, v)| (n.to_owned(), v)).collect();
        Strategy::new(kind, &params)
    }

    fn message(kind: StrategyKind, params: &[(&str, f64)]) -> String {
        build(kind, params).unwrap_err().to_string()
    }

    #[test]
    fn every_kind_round_trips_its_name_and_defaults() {
        for kind in StrategyKind::all() {
            assert_eq!(StrategyKind::from_name(kind.name()), Some(kind));
            assert_eq!(
                StrategyKind::from_name(&kind.name().to_uppercase()),
                Some(kind)
            );
            let info = kind.info();
            assert_eq!(info.name, kind.name());
            assert!(info.description.len() > 100, "{}", info.name);
            let strategy = build(kind, &[]).unwrap();
            let defaults: Vec<(&str, f64)> =
                info.params.iter().map(|p| (p.name, p.default)).collect();
            assert_eq!(strategy.params(), defaults);
            for p in &info.params {
                assert!(p.min <= p.default && p.default <= p.max, "{}", p.name);
            }
        }
        assert_eq!(StrategyKind::from_name("golden_cross"), None);
    }

    #[test]
    fn given_params_override_defaults_in_declaration_order() {
        let s = build(StrategyKind::MacdCross, &[("signal", 5.0), ("fast", 8.0)]).unwrap();
        assert_eq!(s.params(), [("fast", 8.0), ("slow", 26.0), ("signal", 5.0)]);
        let s = build(StrategyKind::RsiReversion, &[("oversold", 25.5)]).unwrap();
        assert_eq!(
            s.params(),
            [("period", 14.0), ("oversold", 25.5), ("overbought", 70.0)]
        );
        assert!(
            build(StrategyKind::Consensus, &[])
                .unwrap()
                .params()
                .is_empty()
        );
    }

    #[test]
    fn errors_name_the_parameter_and_what_is_allowed() {
        use StrategyKind as K;
        assert_eq!(
            message(K::EmaCross, &[("fats", 5.0)]),
            "unknown parameter `fats`; allowed: fast, slow"
        );
        assert_eq!(
            build(K::EmaCross, &[("fats", 5.0)]).unwrap_err(),
            StrategyError::UnknownParam {
                name: "fats".to_owned(),
                allowed: "fast, slow".to_owned()
            }
        );
        assert_eq!(
            message(K::Consensus, &[("fast", 5.0)]),
            "unknown parameter `fast`; allowed: none"
        );
        assert_eq!(
            build(K::EmaCross, &[("fast", 5.5)]).unwrap_err(),
            StrategyError::NotInteger { name: "fast" }
        );
        assert_eq!(
            message(K::RsiReversion, &[("period", 1.0)]),
            "parameter `period` must be a number from 2 to 1000"
        );
        assert_eq!(
            build(K::MacdCross, &[("signal", 0.0)]).unwrap_err(),
            StrategyError::OutOfRange {
                name: "signal",
                min: 1.0,
                max: 1000.0
            }
        );
        assert_eq!(
            message(K::BbandsBreakout, &[("k", f64::NAN)]),
            "parameter `k` must be a number from 0 to 10"
        );
        assert_eq!(
            message(K::BbandsBreakout, &[("k", f64::INFINITY)]),
            "parameter `k` must be a number from 0 to 10"
        );
        assert_eq!(
            message(K::RsiReversion, &[("overbought", 100.0)]),
            "parameter `overbought` must be a number from 1 to 99"
        );
        assert_eq!(
            message(K::EmaCross, &[("fast", 30.0)]),
            "parameter `fast` (30) must be less than `slow` (26)"
        );
        assert_eq!(
            message(K::MacdCross, &[("fast", 26.0), ("slow", 26.0)]),
            "parameter `fast` (26) must be less than `slow` (26)"
        );
        assert_eq!(
            message(K::RsiReversion, &[("oversold", 60.0), ("overbought", 40.0)]),
            "parameter `oversold` (60) must be less than `overbought` (40)"
        );
        assert_eq!(
            message(K::EmaCross, &[("fast", 5.0), ("fast", 6.0)]),
            "parameter `fast` is given more than once"
        );
    }
}
