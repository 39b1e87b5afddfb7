//! Evaluating the rules bar by bar: the indicators are fed one candle at a time, so each
//! reading depends on that candle and the earlier ones only.

use super::params::{Plan, Strategy};
use super::{Direction, SignalPoint, StrategyError};
use crate::Candle;
use crate::indicators::{IndicatorError, IndicatorSpec, IndicatorState, WarmUp};

/// Below this fraction of the prices compared, a difference is rounding, not a signal.
const TIE: f64 = 1e-12;

/// A strategy's verdict at one bar, without the named inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reading {
    pub direction: Direction,
    pub strength: f64,
    pub defined: bool,
}

const UNDEFINED: Reading = Reading {
    direction: Direction::Neutral,
    strength: 0.0,
    defined: false,
};

impl Strategy {
    /// Candles to load before the first bar a signal is wanted for: enough for every
    /// indicator to be defined there and, for the recursive ones, to agree with the value
    /// computed from the full history to within 1e-9 (see [`WarmUp`]).
    pub fn warm_up(&self) -> usize {
        let of = |spec: &IndicatorSpec| match spec.warm_up() {
            WarmUp::Candles(n) => n,
            // Strategies only use indicators whose warm-up is a count of candles; the
            // lookback is the best a count can say for the others.
            WarmUp::UtcDay | WarmUp::FullHistory => spec.lookback(),
        };
        match &self.plan {
            Plan::EmaCross { fast, slow } => of(fast).max(of(slow)),
            Plan::RsiReversion { rsi, .. } => of(rsi),
            Plan::MacdCross { macd } => of(macd),
            Plan::BbandsBreakout { bbands } => of(bbands),
            Plan::Consensus { members } => members.iter().map(Strategy::warm_up).max().unwrap_or(0),
        }
    }

    /// The rule in one line, with this strategy's parameters filled in.
    pub fn rule(&self) -> String {
        let p: Vec<f64> = self.params().into_iter().map(|(_, v)| v).collect();
        let at = |i: usize| p.get(i).copied().unwrap_or(f64::NAN);
        match &self.plan {
            Plan::EmaCross { .. } => format!(
                "bullish when EMA({0}) > EMA({1}); bearish when EMA({0}) < EMA({1}); \
                 neutral when equal",
                at(0),
                at(1)
            ),
            Plan::RsiReversion {
                oversold,
                overbought,
                ..
            } => format!(
                "bullish when RSI({0}) < {oversold}; bearish when RSI({0}) > {overbought}; \
                 neutral otherwise",
                at(0)
            ),
            Plan::MacdCross { .. } => format!(
                "bullish when the MACD({}, {}, {}) histogram > 0; bearish when < 0; neutral at 0",
                at(0),
                at(1),
                at(2)
            ),
            Plan::BbandsBreakout { .. } => format!(
                "bullish when close > upper Bollinger Band({0}, {1}); bearish when close < lower \
                 band; neutral inside",
                at(0),
                at(1)
            ),
            Plan::Consensus { members } => {
                let names: Vec<String> = members.iter().map(Strategy::label).collect();
                format!(
                    "majority vote of {}: bullish when more members are bullish than bearish; \
                     bearish when more are bearish; neutral on a tie",
                    names.join(", ")
                )
            }
        }
    }

    /// `ema_cross(12, 26)`.
    fn label(&self) -> String {
        let values: Vec<String> = self.params().iter().map(|(_, v)| v.to_string()).collect();
        format!("{}({})", self.kind().name(), values.join(", "))
    }

    /// One point per candle, in order, each computed from that candle and the ones
    /// before it only: appending candles never changes an earlier point.
    ///
    /// Every OHLCV field must be finite and open times strictly increasing.
    pub fn evaluate(&self, candles: &[Candle]) -> Result<Vec<SignalPoint>, StrategyError> {
        check_candles(candles)?;
        let names = self.input_names();
        let mut engine = Engine::new(&self.plan);
        let mut values = Vec::with_capacity(names.len());
        let mut since = Since::new(candles);
        candles
            .iter()
            .map(|&c| {
                values.clear();
                let r = engine.push(c, &mut values)?;
                Ok(SignalPoint {
                    open_time: c.open_time,
                    direction: r.direction,
                    strength: r.strength,
                    defined: r.defined,
                    inputs: names
                        .iter()
                        .zip(&values)
                        .filter(|(_, v)| !v.is_nan())
                        .map(|(n, &v)| (n.clone(), v))
                        .collect(),
                    since: since.update(c.open_time, r),
                })
            })
            .collect()
    }

    /// [`evaluate`](Self::evaluate) without the named inputs, for the backtest.
    pub(super) fn readings(&self, candles: &[Candle]) -> Result<Vec<Reading>, StrategyError> {
        check_candles(candles)?;
        let mut engine = Engine::new(&self.plan);
        let mut values = Vec::new();
        candles
            .iter()
            .map(|&c| {
                values.clear();
                Ok(engine.push(c, &mut values)?)
            })
            .collect()
    }

    /// Names of the values [`Engine::push`] writes, in the same order.
    fn input_names(&self) -> Vec<String> {
        let p: Vec<f64> = self.params().into_iter().map(|(_, v)| v).collect();
        let at = |i: usize| p.get(i).copied().unwrap_or(f64::NAN);
        match &self.plan {
            Plan::EmaCross { .. } => vec![format!("ema_{}", at(0)), format!("ema_{}", at(1))],
            Plan::RsiReversion { .. } => vec![format!("rsi_{}", at(0))],
            Plan::MacdCross { .. } => ["macd", "macd_signal", "macd_hist"]
                .map(str::to_owned)
                .to_vec(),
            Plan::BbandsBreakout { .. } => ["bb_upper", "bb_middle", "bb_lower", "close"]
                .map(str::to_owned)
                .to_vec(),
            Plan::Consensus { members } => {
                let mut names: Vec<String> =
                    members.iter().flat_map(Strategy::input_names).collect();
                for m in members {
                    names.push(format!("{}_vote", m.kind().name()));
                    names.push(format!("{}_strength", m.kind().name()));
                }
                names
            }
        }
    }
}

/// Refuses what would otherwise surface as a NaN far from its cause: a non-finite field
/// (named, with its index) or candles out of order.
fn check_candles(candles: &[Candle]) -> Result<(), StrategyError> {
    for (index, c) in candles.iter().enumerate() {
        for (field, value) in [
            ("open", c.open),
            ("high", c.high),
            ("low", c.low),
            ("close", c.close),
            ("volume", c.volume),
        ] {
            if !value.is_finite() {
                return Err(IndicatorError::NotFinite { index, field }.into());
            }
        }
    }
    if let Some(i) = candles
        .windows(2)
        .position(|w| w[1].open_time <= w[0].open_time)
    {
        return Err(StrategyError::Rule(format!(
            "candles must be in strictly increasing open_time order; candle {} ({}) does not \
             follow candle {} ({})",
            i + 1,
            candles[i + 1].open_time,
            i,
            candles[i].open_time
        )));
    }
    Ok(())
}

/// Tracks the bar where the direction last changed.
struct Since {
    last: Option<Direction>,
    since: i64,
}

impl Since {
    fn new(candles: &[Candle]) -> Self {
        Self {
            last: None,
            since: candles.first().map_or(0, |c| c.open_time),
        }
    }

    fn update(&mut self, open_time: i64, r: Reading) -> i64 {
        if r.defined && self.last != Some(r.direction) {
            self.last = Some(r.direction);
            self.since = open_time;
        }
        self.since
    }
}

/// The incremental state of one strategy.
#[derive(Debug, Clone)]
enum Engine {
    /// Boxed: two indicator states would make every engine twice the size of the rest.
    EmaCross {
        fast: Box<IndicatorState>,
        slow: Box<IndicatorState>,
    },
    RsiReversion {
        rsi: IndicatorState,
        oversold: f64,
        overbought: f64,
        first_close: Option<f64>,
        moved: bool,
    },
    MacdCross {
        macd: IndicatorState,
    },
    BbandsBreakout {
        bbands: IndicatorState,
    },
    Consensus {
        members: Vec<Engine>,
    },
}

impl Engine {
    fn new(plan: &Plan) -> Self {
        match plan {
            Plan::EmaCross { fast, slow } => Engine::EmaCross {
                fast: Box::new(fast.state()),
                slow: Box::new(slow.state()),
            },
            Plan::RsiReversion {
                rsi,
                oversold,
                overbought,
            } => Engine::RsiReversion {
                rsi: rsi.state(),
                oversold: *oversold,
                overbought: *overbought,
                first_close: None,
                moved: false,
            },
            Plan::MacdCross { macd } => Engine::MacdCross { macd: macd.state() },
            Plan::BbandsBreakout { bbands } => Engine::BbandsBreakout {
                bbands: bbands.state(),
            },
            Plan::Consensus { members } => Engine::Consensus {
                members: members.iter().map(|m| Engine::new(&m.plan)).collect(),
            },
        }
    }

    /// Feeds the next candle, appends the named inputs' values to `values` (NaN where
    /// undefined) and returns the reading at this candle.
    fn push(&mut self, c: Candle, values: &mut Vec<f64>) -> Result<Reading, IndicatorError> {
        Ok(match self {
            Engine::EmaCross { fast, slow } => {
                let f = first(fast.push(c)?.as_slice());
                let s = first(slow.push(c)?.as_slice());
                values.extend([nan(f), nan(s)]);
                match (f, s) {
                    (Some(f), Some(s)) => ema_cross(f, s),
                    _ => UNDEFINED,
                }
            }
            Engine::RsiReversion {
                rsi,
                oversold,
                overbought,
                first_close,
                moved,
            } => {
                let r = first(rsi.push(c)?.as_slice());
                let start = *first_close.get_or_insert(c.close);
                *moved |= c.close != start;
                values.push(nan(r));
                match r {
                    Some(r) => rsi_reversion(r, *oversold, *overbought, *moved),
                    None => UNDEFINED,
                }
            }
            Engine::MacdCross { macd } => {
                let row = macd.push(c)?;
                let [m, s, h] = three(row.as_slice());
                values.extend([nan(m), nan(s), nan(h)]);
                match h {
                    Some(h) => macd_cross(h, c.close),
                    None => UNDEFINED,
                }
            }
            Engine::BbandsBreakout { bbands } => {
                let row = bbands.push(c)?;
                let [upper, middle, lower] = three(row.as_slice());
                values.extend([nan(upper), nan(middle), nan(lower), c.close]);
                match (upper, middle, lower) {
                    (Some(u), Some(m), Some(l)) => bbands_breakout(c.close, u, m, l),
                    _ => UNDEFINED,
                }
            }
            Engine::Consensus { members } => {
                let mut readings = Vec::with_capacity(members.len());
                for m in members.iter_mut() {
                    readings.push(m.push(c, values)?);
                }
                for r in &readings {
                    if r.defined {
                        values.extend([r.direction.sign(), r.strength]);
                    } else {
                        values.extend([f64::NAN, f64::NAN]);
                    }
                }
                consensus(&readings)
            }
        })
    }
}

fn first(row: &[Option<f64>]) -> Option<f64> {
    row.first().copied().flatten()
}

fn three(row: &[Option<f64>]) -> [Option<f64>; 3] {
    let at = |i: usize| row.get(i).copied().flatten();
    [at(0), at(1), at(2)]
}

fn nan(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

fn reading(direction: Direction, strength: f64) -> Reading {
    Reading {
        direction,
        strength: if direction == Direction::Neutral {
            0.0
        } else {
            strength.clamp(-1.0, 1.0)
        },
        defined: true,
    }
}

/// `a` and `b` differ by more than rounding.
fn apart(a: f64, b: f64) -> bool {
    (a - b).abs() > TIE * a.abs().max(b.abs())
}

fn ema_cross(fast: f64, slow: f64) -> Reading {
    let direction = if !apart(fast, slow) {
        Direction::Neutral
    } else if fast > slow {
        Direction::Bullish
    } else {
        Direction::Bearish
    };
    // A zero slow EMA makes the spread infinite, which tanh turns into full strength.
    reading(direction, (100.0 * (fast - slow) / slow.abs()).tanh())
}

fn rsi_reversion(rsi: f64, oversold: f64, overbought: f64, moved: bool) -> Reading {
    // TA-Lib's RSI is 0 while the close has never moved; that is no sign of selling.
    if !moved {
        return reading(Direction::Neutral, 0.0);
    }
    if rsi < oversold {
        reading(Direction::Bullish, (oversold - rsi) / oversold)
    } else if rsi > overbought {
        reading(
            Direction::Bearish,
            -(rsi - overbought) / (100.0 - overbought),
        )
    } else {
        reading(Direction::Neutral, 0.0)
    }
}

fn macd_cross(hist: f64, close: f64) -> Reading {
    let direction = if hist.abs() <= TIE * close.abs() {
        Direction::Neutral
    } else if hist > 0.0 {
        Direction::Bullish
    } else {
        Direction::Bearish
    };
    reading(direction, (1000.0 * hist / close.abs()).tanh())
}

fn bbands_breakout(close: f64, upper: f64, middle: f64, lower: f64) -> Reading {
    // A zero band width (flat window or k = 0) makes any real breakout full strength.
    if close > upper && apart(close, upper) {
        reading(
            Direction::Bullish,
            ((close - upper) / (upper - middle)).tanh(),
        )
    } else if close < lower && apart(close, lower) {
        reading(
            Direction::Bearish,
            -((lower - close) / (middle - lower)).tanh(),
        )
    } else {
        reading(Direction::Neutral, 0.0)
    }
}

fn consensus(members: &[Reading]) -> Reading {
    if members.is_empty() || members.iter().any(|r| !r.defined) {
        return UNDEFINED;
    }
    let count = |d: Direction| members.iter().filter(|r| r.direction == d).count();
    let (bulls, bears) = (count(Direction::Bullish), count(Direction::Bearish));
    let mean = members.iter().map(|r| r.strength).sum::<f64>() / members.len() as f64;
    if bulls > bears {
        reading(Direction::Bullish, mean.max(0.0))
    } else if bears > bulls {
        reading(Direction::Bearish, mean.min(0.0))
    } else {
        reading(Direction::Neutral, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StrategyKind;
    use super::*;
    use proptest::prelude::{ProptestConfig, prop, prop_assert, prop_assert_eq, proptest};

    const HOUR: i64 = 3_600_000;

    fn strategy(kind: StrategyKind, params: &[(&str, f64)]) -> Strategy {
        let params: Vec<(String, f64)> = params.iter().map(|&(n, v)| (n.to_owned(), v)).collect();
        Strategy::new(kind, &params).unwrap()
    }

    /// Candles with these closes, each opening at the previous close.
    fn series(closes: &[f64]) -> Vec<Candle> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &close)| {
                let open = if i == 0 { close } else { closes[i - 1] };
                Candle {
                    open_time: i as i64 * HOUR,
                    open,
                    high: open.max(close),
                    low: open.min(close),
                    close,
                    volume: 1.0,
                }
            })
            .collect()
    }

    fn directions(points: &[SignalPoint]) -> Vec<&'static str> {
        points
            .iter()
            .map(|p| if p.defined { p.direction.as_str() } else { "-" })
            .collect()
    }

    fn input(point: &SignalPoint, name: &str) -> f64 {
        point
            .inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("no input {name} in {:?}", point.inputs))
    }

    fn close_to(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// TA-Lib's EMA written out plainly: SMA seed, then prev + k·(x − prev).
    fn plain_ema(xs: &[f64], period: usize) -> Vec<Option<f64>> {
        let k = 2.0 / (period as f64 + 1.0);
        let mut out = vec![None; xs.len()];
        if xs.len() < period {
            return out;
        }
        let mut prev = xs[..period].iter().sum::<f64>() / period as f64;
        out[period - 1] = Some(prev);
        for i in period..xs.len() {
            prev += k * (xs[i] - prev);
            out[i] = Some(prev);
        }
        out
    }

    #[test]
    fn ema_cross_follows_the_spread() {
        let closes = [10.0, 11.0, 12.0, 13.0, 14.0, 11.0, 8.0, 7.0, 9.0, 13.0];
        let points = strategy(StrategyKind::EmaCross, &[("fast", 2.0), ("slow", 3.0)])
            .evaluate(&series(&closes))
            .unwrap();
        // EMA(2), k = 2/3, from bar 1: 10.5, 11.5, 12.5, 13.5, 11.833, 9.278, 7.759, 8.586,
        // 11.529. EMA(3), k = 1/2, from bar 2: 11, 12, 13, 12, 10, 8.5, 8.75, 10.875.
        let (f, s) = (plain_ema(&closes, 2), plain_ema(&closes, 3));
        assert_eq!(f[2], Some(11.5));
        assert_eq!(s[5], Some(12.0));
        assert_eq!(
            directions(&points),
            [
                "-", "-", "bullish", "bullish", "bullish", "bearish", "bearish", "bearish",
                "bearish", "bullish"
            ]
        );
        for (i, p) in points.iter().enumerate().skip(2) {
            let (f, s) = (f[i].unwrap(), s[i].unwrap());
            assert!(close_to(input(p, "ema_2"), f));
            assert!(close_to(input(p, "ema_3"), s));
            assert!(
                close_to(p.strength, (100.0 * (f - s) / s).tanh()),
                "bar {i}"
            );
        }
        // Bar 8: 8.586 under 8.75, a 1.9% spread; bar 9: 11.529 over 10.875, 6%.
        assert!(close_to(
            points[8].strength,
            (-100.0_f64 * 0.16358024691358 / 8.75).tanh()
        ));
        assert!(points[9].strength > 0.99);
        assert!(points[0].inputs.is_empty());
    }

    #[test]
    fn rsi_reversion_reads_the_zones() {
        // Wilder's RSI(2) by hand. Changes: +1 +1 | -1 -1 -1 +3 +1 -3.
        // Seed at bar 2: gain 1, loss 0 -> 100.
        // Bar 3 (-1): gain 0.5, loss 0.5 -> 50.      Bar 4 (-1): 0.25, 0.75 -> 25.
        // Bar 5 (-1): 0.125, 0.875 -> 12.5.          Bar 6 (+3): 1.5625, 0.4375 -> 78.125.
        // Bar 7 (+1): 1.28125, 0.21875 -> 85.4167.   Bar 8 (-3): 0.640625, 1.609375 -> 28.472.
        let closes = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 12.0, 13.0, 10.0];
        let points = strategy(StrategyKind::RsiReversion, &[("period", 2.0)])
            .evaluate(&series(&closes))
            .unwrap();
        assert_eq!(
            directions(&points),
            [
                "-", "-", "bearish", "neutral", "bullish", "bullish", "bearish", "bearish",
                "bullish"
            ]
        );
        let rsi = [
            100.0,
            50.0,
            25.0,
            12.5,
            78.125,
            100.0 * 1.28125 / 1.5,
            100.0 * 0.640625 / 2.25,
        ];
        for (p, r) in points[2..].iter().zip(rsi) {
            assert!(close_to(input(p, "rsi_2"), r));
        }
        assert!(close_to(points[2].strength, -1.0));
        assert_eq!(points[3].strength, 0.0);
        assert!(close_to(points[4].strength, 5.0 / 30.0));
        assert!(close_to(points[6].strength, -8.125 / 30.0));
    }

    #[test]
    fn a_flat_series_is_neutral_everywhere() {
        let closes = [0.1; 60];
        for kind in StrategyKind::all() {
            let points = strategy(kind, &[]).evaluate(&series(&closes)).unwrap();
            let last = points.last().unwrap();
            assert!(last.defined, "{}", kind.name());
            assert!(
                points
                    .iter()
                    .all(|p| p.direction == Direction::Neutral && p.strength == 0.0),
                "{}",
                kind.name()
            );
        }
    }

    #[test]
    fn macd_cross_follows_the_histogram() {
        // MACD(2, 3, 2): both EMAs seeded at bar 2 (the fast one with the mean of bars 1
        // and 2), the signal seeded at bar 3 with the mean of the first two MACD values.
        let closes = [10.0, 12.0, 14.0, 16.0, 15.0, 12.0, 9.0, 10.0, 14.0];
        let points = strategy(
            StrategyKind::MacdCross,
            &[("fast", 2.0), ("slow", 3.0), ("signal", 2.0)],
        )
        .evaluate(&series(&closes))
        .unwrap();
        let (mut fast, mut slow) = (13.0, 12.0);
        let mut lines = vec![fast - slow];
        for &x in &closes[3..] {
            fast += 2.0 / 3.0 * (x - fast);
            slow += 0.5 * (x - slow);
            lines.push(fast - slow);
        }
        // Lines from bar 2: 1, 1, 0.5, -0.25, -0.792, -0.451, 0.422.
        // Histogram from bar 3: 0, -0.167, -0.306, -0.282, 0.019, 0.298.
        let mut signal = (lines[0] + lines[1]) / 2.0;
        let mut expected = vec!["-", "-", "-"];
        let mut hists = vec![lines[1] - signal];
        for &line in &lines[2..] {
            signal += 2.0 / 3.0 * (line - signal);
            hists.push(line - signal);
        }
        for &h in &hists {
            expected.push(if h.abs() < 1e-9 {
                "neutral"
            } else if h > 0.0 {
                "bullish"
            } else {
                "bearish"
            });
        }
        assert_eq!(
            expected,
            [
                "-", "-", "-", "neutral", "bearish", "bearish", "bearish", "bullish", "bullish"
            ]
        );
        assert_eq!(directions(&points), expected);
        for (i, h) in hists.iter().enumerate().map(|(j, h)| (j + 3, h)) {
            assert!(close_to(input(&points[i], "macd_hist"), *h));
            assert!(close_to(
                points[i].strength,
                (1000.0 * h / closes[i]).tanh()
            ));
        }
    }

    #[test]
    fn bbands_breakout_fires_outside_the_bands() {
        // Bollinger(3, 1), population deviation:
        // bar 2: 10 10 10 -> a flat window, bands at 10, the close on them: neutral;
        // bar 3: 10 10 13 -> mean 11, sd √2, upper 12.414 < 13: bullish;
        // bar 4: 10 13 10 -> mean 11, sd √2, 10 inside: neutral;
        // bar 5: 13 10 7 -> mean 10, sd √6, lower 7.551 > 7: bearish;
        // bar 6: 10 7 7.5 -> mean 8.167, sd 1.312, lower 6.854 < 7.5: neutral.
        let closes = [10.0, 10.0, 10.0, 13.0, 10.0, 7.0, 7.5];
        let points = strategy(StrategyKind::BbandsBreakout, &[("period", 3.0), ("k", 1.0)])
            .evaluate(&series(&closes))
            .unwrap();
        assert_eq!(
            directions(&points),
            [
                "-", "-", "neutral", "bullish", "neutral", "bearish", "neutral"
            ]
        );
        let sqrt2 = 2.0_f64.sqrt();
        let sqrt6 = 6.0_f64.sqrt();
        assert!(close_to(input(&points[3], "bb_upper"), 11.0 + sqrt2));
        assert!(close_to(input(&points[3], "bb_middle"), 11.0));
        assert!(close_to(input(&points[3], "close"), 13.0));
        assert!(close_to(points[3].strength, ((2.0 - sqrt2) / sqrt2).tanh()));
        assert!(close_to(input(&points[5], "bb_lower"), 10.0 - sqrt6));
        assert!(close_to(
            points[5].strength,
            -((3.0 - sqrt6) / sqrt6).tanh()
        ));
    }

    #[test]
    fn consensus_votes_and_keeps_strength_on_its_side() {
        let r = |direction: Direction, strength: f64| Reading {
            direction,
            strength,
            defined: true,
        };
        use Direction::{Bearish as Down, Bullish as Up, Neutral as Flat};
        // Two bulls, one bear: bullish, mean (0.8 + 0.4 + 0 - 0.2) / 4 = 0.25.
        let v = consensus(&[r(Up, 0.8), r(Up, 0.4), r(Flat, 0.0), r(Down, -0.2)]);
        assert_eq!((v.direction, v.defined), (Up, true));
        assert!(close_to(v.strength, 0.25));
        // A bullish vote whose mean leans bearish reports 0, not a contradiction.
        let v = consensus(&[r(Up, 0.1), r(Up, 0.1), r(Down, -0.9), r(Flat, 0.0)]);
        assert_eq!((v.direction, v.strength), (Up, 0.0));
        // One each way is a tie.
        let v = consensus(&[r(Up, 0.5), r(Down, -0.9), r(Flat, 0.0), r(Flat, 0.0)]);
        assert_eq!((v.direction, v.strength, v.defined), (Flat, 0.0, true));
        let v = consensus(&[r(Down, -0.6), r(Down, -0.2), r(Down, -0.2), r(Up, 1.0)]);
        assert_eq!(v.direction, Down);
        assert!(close_to(v.strength, -0.0));
        let v = consensus(&[r(Down, -0.6), r(Down, -0.2), r(Down, -0.2), r(Up, 0.2)]);
        assert!(close_to(v.strength, -0.2));
        assert_eq!(
            consensus(&[r(Up, 1.0), r(Up, 1.0), r(Up, 1.0), UNDEFINED]),
            UNDEFINED
        );
    }

    /// A deterministic, wandering price path.
    fn wander(n: usize) -> Vec<f64> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut price = 100.0;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let trend = 0.01 * (i as f64 / 40.0).sin();
                price *= 1.0 + trend + 0.03 * noise;
                price
            })
            .collect()
    }

    #[test]
    fn consensus_matches_its_members_evaluated_alone() {
        let candles = series(&wander(400));
        let points = strategy(StrategyKind::Consensus, &[])
            .evaluate(&candles)
            .unwrap();
        let members: Vec<Vec<SignalPoint>> = super::super::params::CONSENSUS_MEMBERS
            .iter()
            .map(|&kind| strategy(kind, &[]).evaluate(&candles).unwrap())
            .collect();
        let mut seen = [0usize; 3];
        for (i, p) in points.iter().enumerate() {
            let at: Vec<&SignalPoint> = members.iter().map(|m| &m[i]).collect();
            assert_eq!(p.defined, at.iter().all(|m| m.defined), "bar {i}");
            if !p.defined {
                assert_eq!(p.direction, Direction::Neutral);
                continue;
            }
            let votes: f64 = at.iter().map(|m| m.direction.sign()).sum();
            let mean = at.iter().map(|m| m.strength).sum::<f64>() / 4.0;
            let expected = if votes > 0.0 {
                Direction::Bullish
            } else if votes < 0.0 {
                Direction::Bearish
            } else {
                Direction::Neutral
            };
            assert_eq!(p.direction, expected, "bar {i}");
            assert!(close_to(p.strength, mean * p.direction.sign().abs()) || p.strength == 0.0);
            assert!(p.strength * p.direction.sign() >= 0.0);
            seen[(expected.sign() + 1.0) as usize] += 1;
            for m in &at {
                for (name, value) in &m.inputs {
                    assert_eq!(input(p, name), *value);
                }
            }
            assert_eq!(input(p, "macd_cross_vote"), at[2].direction.sign());
            assert_eq!(input(p, "rsi_reversion_strength"), at[1].strength);
        }
        // The path is long and varied enough to exercise every outcome.
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        assert!(
            points[32]
                .inputs
                .iter()
                .all(|(n, _)| n != "macd_cross_vote")
        );
        assert!(!points[32].defined && points[33].defined);
    }

    #[test]
    fn since_marks_the_last_change_of_direction() {
        // The RSI(2) series above: undefined, undefined, bearish, neutral, bullish,
        // bullish, bearish, bearish, bullish.
        let closes = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 12.0, 13.0, 10.0];
        let points = strategy(StrategyKind::RsiReversion, &[("period", 2.0)])
            .evaluate(&series(&closes))
            .unwrap();
        let since: Vec<i64> = points.iter().map(|p| p.since / HOUR).collect();
        assert_eq!(since, [0, 0, 2, 3, 4, 4, 6, 6, 8]);
        // A direction that never changes dates from the first defined bar.
        let rising: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i)).collect();
        let points = strategy(StrategyKind::EmaCross, &[("fast", 3.0), ("slow", 5.0)])
            .evaluate(&series(&rising))
            .unwrap();
        assert!(
            points[4..]
                .iter()
                .all(|p| p.direction == Direction::Bullish)
        );
        assert!(points.iter().all(|p| p.since == 4 * HOUR || !p.defined));
    }

    #[test]
    fn non_finite_candles_are_refused_with_their_place() {
        let s = strategy(StrategyKind::EmaCross, &[]);
        for (field, index) in [
            ("open", 0),
            ("high", 4),
            ("low", 7),
            ("close", 3),
            ("volume", 9),
        ] {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut candles = series(&wander(10));
                let c = &mut candles[index];
                *match field {
                    "open" => &mut c.open,
                    "high" => &mut c.high,
                    "low" => &mut c.low,
                    "close" => &mut c.close,
                    _ => &mut c.volume,
                } = bad;
                let expected = StrategyError::Indicator(IndicatorError::NotFinite { index, field });
                assert_eq!(s.evaluate(&candles), Err(expected.clone()));
                assert_eq!(s.readings(&candles), Err(expected));
            }
        }
        let err = s.evaluate(&series(&[f64::NAN])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input open at index 0 is not a finite number"
        );
    }

    #[test]
    fn candles_out_of_order_are_refused() {
        let mut candles = series(&wander(5));
        candles[3].open_time = candles[2].open_time;
        let err = strategy(StrategyKind::MacdCross, &[])
            .evaluate(&candles)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "candles must be in strictly increasing open_time order; candle 3 ({t}) does not \
                 follow candle 2 ({t})",
                t = 2 * HOUR
            )
        );
        assert_eq!(
            strategy(StrategyKind::Consensus, &[]).evaluate(&[]),
            Ok(vec![])
        );
    }

    #[test]
    fn rules_read_with_their_parameters() {
        let rule = |kind, params: &[(&str, f64)]| strategy(kind, params).rule();
        assert_eq!(
            rule(StrategyKind::EmaCross, &[]),
            "bullish when EMA(12) > EMA(26); bearish when EMA(12) < EMA(26); neutral when equal"
        );
        assert_eq!(
            rule(StrategyKind::RsiReversion, &[("oversold", 25.5)]),
            "bullish when RSI(14) < 25.5; bearish when RSI(14) > 70; neutral otherwise"
        );
        assert_eq!(
            rule(StrategyKind::MacdCross, &[]),
            "bullish when the MACD(12, 26, 9) histogram > 0; bearish when < 0; neutral at 0"
        );
        assert_eq!(
            rule(StrategyKind::BbandsBreakout, &[("k", 2.5)]),
            "bullish when close > upper Bollinger Band(20, 2.5); bearish when close < lower band; \
             neutral inside"
        );
        assert_eq!(
            rule(StrategyKind::Consensus, &[]),
            "majority vote of ema_cross(12, 26), rsi_reversion(14, 30, 70), macd_cross(12, 26, 9), \
             bbands_breakout(20, 2): bullish when more members are bullish than bearish; bearish \
             when more are bearish; neutral on a tie"
        );
    }

    #[test]
    fn warm_up_is_the_slowest_indicators() {
        let warm = |token: &str| match token.parse::<IndicatorSpec>().unwrap().warm_up() {
            WarmUp::Candles(n) => n,
            other => panic!("{other:?}"),
        };
        let of = |kind| strategy(kind, &[]).warm_up();
        assert_eq!(of(StrategyKind::EmaCross), warm("ema:26"));
        assert_eq!(of(StrategyKind::RsiReversion), warm("rsi:14"));
        assert_eq!(of(StrategyKind::MacdCross), warm("macd:12:26:9"));
        assert_eq!(of(StrategyKind::BbandsBreakout), 19);
        let members = [
            StrategyKind::EmaCross,
            StrategyKind::RsiReversion,
            StrategyKind::MacdCross,
            StrategyKind::BbandsBreakout,
        ];
        assert_eq!(
            of(StrategyKind::Consensus),
            members.into_iter().map(of).max().unwrap()
        );
        // Raising the slow period of ema_cross lengthens it.
        let long = strategy(StrategyKind::EmaCross, &[("slow", 200.0)]).warm_up();
        assert_eq!(long, warm("ema:200"));
        assert!(long > of(StrategyKind::EmaCross));
    }

    #[test]
    fn warm_up_history_reproduces_the_full_history() {
        let candles = series(&wander(3000));
        let target = 2500;
        for kind in StrategyKind::all() {
            let s = strategy(kind, &[]);
            let full = s.evaluate(&candles).unwrap();
            let late = s.evaluate(&candles[target - s.warm_up()..]).unwrap();
            let (a, b) = (&full[target], &late[s.warm_up()]);
            assert!(b.defined, "{}", kind.name());
            assert_eq!(a.direction, b.direction, "{}", kind.name());
            assert!((a.strength - b.strength).abs() < 1e-9, "{}", kind.name());
            assert_eq!(a.inputs.len(), b.inputs.len());
            for ((name, x), (_, y)) in a.inputs.iter().zip(&b.inputs) {
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{name}: {x} vs {y}"
                );
            }
        }
    }

    fn prefix_strategies() -> Vec<Strategy> {
        let mut all: Vec<Strategy> = StrategyKind::all()
            .into_iter()
            .map(|kind| strategy(kind, &[]))
            .collect();
        all.extend([
            strategy(StrategyKind::EmaCross, &[("fast", 2.0), ("slow", 5.0)]),
            strategy(
                StrategyKind::RsiReversion,
                &[("period", 3.0), ("oversold", 40.0), ("overbought", 60.0)],
            ),
            strategy(
                StrategyKind::MacdCross,
                &[("fast", 2.0), ("slow", 4.0), ("signal", 2.0)],
            ),
            strategy(StrategyKind::BbandsBreakout, &[("period", 4.0), ("k", 1.0)]),
        ]);
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_prefix_sees_exactly_what_the_whole_saw(
            moves in prop::collection::vec((-0.04..0.04f64, prop::bool::weighted(0.1)), 0..120),
            cut in 0.0..=1.0f64,
        ) {
            let mut price = 50.0;
            let closes: Vec<f64> = moves
                .iter()
                .map(|&(m, flat)| {
                    if !flat {
                        price *= 1.0 + m;
                    }
                    price
                })
                .collect();
            let candles = series(&closes);
            let k = (cut * candles.len() as f64) as usize;
            for s in prefix_strategies() {
                let whole = s.evaluate(&candles).unwrap();
                let prefix = s.evaluate(&candles[..k]).unwrap();
                prop_assert_eq!(&prefix[..], &whole[..k]);
                for p in &whole {
                    prop_assert!(p.direction != Direction::Neutral || p.strength == 0.0);
                    prop_assert!(p.strength * p.direction.sign() >= 0.0);
                    prop_assert!(p.strength.abs() <= 1.0);
                }
            }
        }
    }
}
