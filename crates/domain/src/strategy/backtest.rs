//! The backtest: one long-only, all-in account trading a strategy's signals at the next
//! bar's open. The execution model and the metrics are described in the module above.

use super::rules::Reading;
use super::{Direction, Strategy, StrategyError};
use crate::Candle;

/// Most points [`BacktestResult::equity_curve`] holds; longer runs are down-sampled.
pub const MAX_CURVE_POINTS: usize = 500;

const MAX_BPS: f64 = 1000.0;

/// Costs, starting capital and the calendar used to annualise.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// Fee on each fill, in basis points of its notional (0 to 1000).
    pub fee_bps: f64,
    /// How much worse than the open each fill is, in basis points (0 to 1000).
    pub slippage_bps: f64,
    /// Cash at the start; finite and above 0.
    pub initial_cash: f64,
    /// Bars per year for annualising (e.g. 8760 for 1h, 365 for 1d); finite and above 0.
    pub periods_per_year: f64,
}

/// One round trip, or the position still open at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub entry_time: i64,
    /// The fill price, slippage included.
    pub entry_price: f64,
    /// None while the position is still open at the end.
    pub exit_time: Option<i64>,
    pub exit_price: Option<f64>,
    pub quantity: f64,
    /// Net of both fees: cash back (or, when open, the position at the last close) minus
    /// the cash spent on entry.
    pub pnl: f64,
    /// `pnl` as a percentage of the cash spent on entry (5.0 = +5%).
    pub return_pct: f64,
    /// Entry fee plus exit fee (entry fee only while open).
    pub fees: f64,
}

/// What the account did and how it fared. Fractions throughout (0.05 = 5%).
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    pub total_return: f64,
    pub cagr: f64,
    /// Largest fall from a running peak, as a positive fraction.
    pub max_drawdown: f64,
    pub sharpe: f64,
    pub sortino: f64,
    /// Every trade in `trades`, the open one included.
    pub trade_count: usize,
    /// Winning closed trades over closed trades; 0 when none closed.
    pub win_rate: f64,
    /// Fraction of bars that closed holding the asset.
    pub exposure: f64,
    pub fees_paid: f64,
    pub final_equity: f64,
    /// (open_time, equity at that bar's close), at most [`MAX_CURVE_POINTS`] points
    /// evenly down-sampled, always including the first and last bar.
    pub equity_curve: Vec<(i64, f64)>,
    pub trades: Vec<Trade>,
}

impl BacktestConfig {
    fn validate(&self) -> Result<(), StrategyError> {
        for (name, value) in [
            ("fee_bps", self.fee_bps),
            ("slippage_bps", self.slippage_bps),
        ] {
            if !(value.is_finite() && (0.0..=MAX_BPS).contains(&value)) {
                return Err(StrategyError::OutOfRange {
                    name,
                    min: 0.0,
                    max: MAX_BPS,
                });
            }
        }
        for (name, value) in [
            ("initial_cash", self.initial_cash),
            ("periods_per_year", self.periods_per_year),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(StrategyError::Rule(format!(
                    "{name} must be a finite number above 0"
                )));
            }
        }
        Ok(())
    }
}

/// Trades `strategy`'s signals over all of `candles` (oldest first).
pub fn backtest(
    strategy: &Strategy,
    candles: &[Candle],
    config: &BacktestConfig,
) -> Result<BacktestResult, StrategyError> {
    config.validate()?;
    let readings = strategy.readings(candles)?;
    if candles.is_empty() {
        return Err(StrategyError::Rule("no candles to backtest".to_owned()));
    }
    simulate(&readings, candles, config)
}

/// Like [`backtest`], but trades and measures only the candles whose open time is at or
/// after `from`; the earlier ones only warm the indicators up (load
/// [`Strategy::warm_up`] of them). The account starts flat at the first such candle's
/// close, as [`backtest`] does at the first candle.
pub fn backtest_from(
    strategy: &Strategy,
    candles: &[Candle],
    config: &BacktestConfig,
    from: i64,
) -> Result<BacktestResult, StrategyError> {
    config.validate()?;
    let readings = strategy.readings(candles)?;
    let start = candles.partition_point(|c| c.open_time < from);
    if start == candles.len() {
        return Err(StrategyError::Rule(format!(
            "no candles to backtest at or after {from}"
        )));
    }
    simulate(&readings[start..], &candles[start..], config)
}

struct Position {
    entry_time: i64,
    entry_price: f64,
    quantity: f64,
    /// All the cash the entry took, fee included.
    cost: f64,
    fee: f64,
}

impl Position {
    fn trade(&self, exit: Option<(i64, f64)>, value: f64, exit_fee: f64) -> Trade {
        let pnl = value - self.cost;
        Trade {
            entry_time: self.entry_time,
            entry_price: self.entry_price,
            exit_time: exit.map(|(t, _)| t),
            exit_price: exit.map(|(_, p)| p),
            quantity: self.quantity,
            pnl,
            return_pct: 100.0 * pnl / self.cost,
            fees: self.fee + exit_fee,
        }
    }
}

fn simulate(
    readings: &[Reading],
    candles: &[Candle],
    config: &BacktestConfig,
) -> Result<BacktestResult, StrategyError> {
    // Non-positive prices would make quantities and returns meaningless.
    for (i, c) in candles.iter().enumerate() {
        for (field, value) in [("open", c.open), ("close", c.close)] {
            if value <= 0.0 {
                return Err(StrategyError::Rule(format!(
                    "a backtest needs prices above 0; candle {i} has {field} {value}"
                )));
            }
        }
    }
    let fee_rate = config.fee_bps / 1e4;
    let slip = config.slippage_bps / 1e4;
    let mut cash = config.initial_cash;
    let mut position: Option<Position> = None;
    let mut trades = Vec::new();
    let mut fees_paid = 0.0;
    let mut held = 0usize;
    let mut equity = Vec::with_capacity(candles.len());

    for (i, c) in candles.iter().enumerate() {
        let signal = i
            .checked_sub(1)
            .and_then(|j| readings.get(j))
            .filter(|r| r.defined);
        match (signal.map(|r| r.direction), position.take()) {
            (Some(Direction::Bullish), None) => {
                let price = c.open * (1.0 + slip);
                // All in: the notional and its fee together spend exactly the cash.
                let notional = cash / (1.0 + fee_rate);
                let fee = cash - notional;
                fees_paid += fee;
                position = Some(Position {
                    entry_time: c.open_time,
                    entry_price: price,
                    quantity: notional / price,
                    cost: cash,
                    fee,
                });
                cash = 0.0;
            }
            (Some(Direction::Bearish), Some(open)) => {
                let price = c.open * (1.0 - slip);
                let proceeds = open.quantity * price;
                let fee = proceeds * fee_rate;
                fees_paid += fee;
                cash = proceeds - fee;
                trades.push(open.trade(Some((c.open_time, price)), cash, fee));
            }
            (_, held_on) => position = held_on,
        }
        let marked = position.as_ref().map_or(0.0, |p| p.quantity * c.close);
        if position.is_some() {
            held += 1;
        }
        equity.push(cash + marked);
    }

    let last_close = candles.last().map_or(0.0, |c| c.close);
    if let Some(open) = &position {
        trades.push(open.trade(None, open.quantity * last_close, 0.0));
    }
    let final_equity = equity.last().copied().unwrap_or(config.initial_cash);
    let metrics = Metrics::of(&equity, config);
    let closed: Vec<&Trade> = trades.iter().filter(|t| t.exit_time.is_some()).collect();
    let wins = closed.iter().filter(|t| t.pnl > 0.0).count();
    Ok(BacktestResult {
        total_return: final_equity / config.initial_cash - 1.0,
        cagr: metrics.cagr,
        max_drawdown: metrics.max_drawdown,
        sharpe: metrics.sharpe,
        sortino: metrics.sortino,
        trade_count: trades.len(),
        win_rate: if closed.is_empty() {
            0.0
        } else {
            wins as f64 / closed.len() as f64
        },
        exposure: held as f64 / candles.len() as f64,
        fees_paid,
        final_equity,
        equity_curve: downsample(candles, &equity),
        trades,
    })
}

struct Metrics {
    cagr: f64,
    max_drawdown: f64,
    sharpe: f64,
    sortino: f64,
}

impl Metrics {
    /// From the equity at each bar's close, the first being the initial cash.
    fn of(equity: &[f64], config: &BacktestConfig) -> Self {
        let returns: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let n = returns.len() as f64;
        let annual = config.periods_per_year.sqrt();
        let (mut sharpe, mut sortino) = (0.0, 0.0);
        if !returns.is_empty() {
            let mean = returns.iter().sum::<f64>() / n;
            let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
            let downside = returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n;
            if var > 0.0 {
                sharpe = mean / var.sqrt() * annual;
            }
            if downside > 0.0 {
                sortino = mean / downside.sqrt() * annual;
            }
        }
        let mut peak = config.initial_cash;
        let mut max_drawdown: f64 = 0.0;
        for &e in equity {
            peak = peak.max(e);
            max_drawdown = max_drawdown.max((peak - e) / peak);
        }
        let years = n / config.periods_per_year;
        let growth = equity.last().map_or(1.0, |e| e / config.initial_cash);
        let cagr = if years > 0.0 {
            (growth.powf(1.0 / years) - 1.0).min(f64::MAX)
        } else {
            0.0
        };
        Self {
            cagr,
            max_drawdown,
            sharpe,
            sortino,
        }
    }
}

/// At most [`MAX_CURVE_POINTS`] evenly spaced bars, the first and last always among them.
fn downsample(candles: &[Candle], equity: &[f64]) -> Vec<(i64, f64)> {
    let n = equity.len().min(candles.len());
    let point = |i: usize| (candles[i].open_time, equity[i]);
    if n <= MAX_CURVE_POINTS {
        return (0..n).map(point).collect();
    }
    // The step (n − 1) / (MAX − 1) exceeds 1, so the indices are distinct, and the last
    // one is exactly n − 1.
    let last = MAX_CURVE_POINTS - 1;
    (0..MAX_CURVE_POINTS)
        .map(|k| point(k * (n - 1) / last))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::StrategyKind;
    use super::*;

    const DAY: i64 = 86_400_000;

    fn candle(i: usize, open: f64, close: f64) -> Candle {
        Candle {
            open_time: i as i64 * DAY,
            open,
            high: open.max(close),
            low: open.min(close),
            close,
            volume: 1.0,
        }
    }

    fn rsi2() -> Strategy {
        Strategy::new(StrategyKind::RsiReversion, &[("period".to_owned(), 2.0)]).unwrap()
    }

    fn config(fee_bps: f64, slippage_bps: f64) -> BacktestConfig {
        BacktestConfig {
            fee_bps,
            slippage_bps,
            initial_cash: 1000.0,
            periods_per_year: 365.0,
        }
    }

    fn near(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    /// RSI(2) of the closes, worked out in the rules' tests: bearish at bar 2, neutral
    /// at 3, bullish at 4 and 5, bearish at 6 and 7, bullish at 8 (28.5), neutral at 9
    /// (50.5).
    fn hand_series() -> Vec<Candle> {
        let closes = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 12.0, 13.0, 10.0, 11.0];
        let opens = [10.0, 10.0, 11.0, 12.0, 11.0, 9.5, 9.0, 12.5, 13.0, 10.5];
        (0..10).map(|i| candle(i, opens[i], closes[i])).collect()
    }

    #[test]
    fn a_backtest_worked_by_hand() {
        // 10 bps fees, 50 bps slippage, 1000 cash.
        let r = backtest(&rsi2(), &hand_series(), &config(10.0, 50.0)).unwrap();

        // Bar 2's bearish signal finds the account flat: nothing happens at bar 3.
        // Bar 4 is bullish, so bar 5 buys at its open: 9.5 × 1.005 = 9.5475. All in: the
        // notional is 1000 / 1.001 = 999.000999, the fee 0.999001, the quantity
        // 999.000999 / 9.5475 = 104.634826.
        let first = &r.trades[0];
        assert_eq!(first.entry_time, 5 * DAY);
        near(first.entry_price, 9.5475);
        near(first.quantity, 104.634_825_766_011_96);
        // Bar 5 is bullish again while long: hold. Bar 6 is bearish, so bar 7 sells at
        // 12.5 × 0.995 = 12.4375: proceeds 104.634826 × 12.4375 = 1301.395645, fee
        // 1.301396, cash 1300.094250. P&L 300.094250 on the 1000 spent: 30.009425%.
        assert_eq!(first.exit_time, Some(7 * DAY));
        near(first.exit_price.unwrap(), 12.4375);
        near(first.pnl, 300.094_249_819_308_97);
        near(first.return_pct, 30.009_424_981_930_9);
        near(
            first.fees,
            0.999_000_999_000_941_2 + 1.301_395_645_464_773_7,
        );
        // Bar 7's bearish signal finds the account flat. Bar 8 is bullish, so bar 9 buys
        // at 10.5 × 1.005 = 10.5525: fee 1300.094250 − 1300.094250 / 1.001 = 1.298795,
        // quantity 123.079408, marked at bar 9's close of 11: 1353.873490. Still open:
        // P&L 53.779240, 4.136565% of the 1300.094250 spent.
        let second = &r.trades[1];
        assert_eq!(second.entry_time, 9 * DAY);
        near(second.entry_price, 10.5525);
        assert_eq!((second.exit_time, second.exit_price), (None, None));
        near(second.quantity, 123.079_408_136_929_1);
        near(second.pnl, 53.779_239_686_911_07);
        near(second.return_pct, 4.136_564_690_935_713);
        near(second.fees, 1.298_795_454_364_835_7);

        near(r.final_equity, 1_353.873_489_506_22);
        near(r.total_return, 0.353_873_489_506_220_1);
        near(r.fees_paid, 3.599_192_098_830_550_4);
        assert_eq!(r.trade_count, 2);
        // One closed trade, a winner; the open one does not count.
        assert_eq!(r.win_rate, 1.0);
        // Holding at the close of bars 5, 6 and 9.
        assert_eq!(r.exposure, 0.3);

        // Equity at each close: flat 1000 until the buy, then 104.634826 × 9 = 941.713432,
        // × 12 = 1255.617909, cash 1300.094250 twice, 1353.873490.
        let curve: Vec<f64> = r.equity_curve.iter().map(|&(_, e)| e).collect();
        let expected = [
            1000.0,
            1000.0,
            1000.0,
            1000.0,
            1000.0,
            941.713_431_894_107_7,
            1_255.617_909_192_143_5,
            1_300.094_249_819_309,
            1_300.094_249_819_309,
            1_353.873_489_506_22,
        ];
        assert_eq!(curve.len(), expected.len());
        for (a, e) in curve.iter().zip(expected) {
            near(*a, e);
        }
        assert_eq!(r.equity_curve[9].0, 9 * DAY);
        // The only fall from a peak: 1000 to 941.713432, 5.8287%.
        near(r.max_drawdown, 0.058_286_568_105_892_34);
        // Nine daily returns; population standard deviation; √365 to annualise.
        near(r.sharpe, 6.957_157_812_155_753);
        near(r.sortino, 38.441_015_577_957_74);
        // 35.39% in 9 days compounds to 1.353873^(365 / 9) − 1 a year.
        near(r.cagr, 216_880.400_007_438_58);
    }

    #[test]
    fn sharpe_and_sortino_follow_their_definitions() {
        let r = backtest(&rsi2(), &hand_series(), &config(10.0, 50.0)).unwrap();
        let equity: Vec<f64> = r.equity_curve.iter().map(|&(_, e)| e).collect();
        let returns: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let sd = (returns.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        let down = (returns.iter().map(|x| x.min(0.0) * x.min(0.0)).sum::<f64>() / n).sqrt();
        near(r.sharpe, mean / sd * 365f64.sqrt());
        near(r.sortino, mean / down * 365f64.sqrt());
    }

    #[test]
    fn without_costs_a_held_position_tracks_the_price() {
        // A steady rise: EMA(2) > EMA(3) from bar 2 on, so bar 3 buys at its open and
        // holds to the end, where equity is 1000 × last close / entry open.
        let candles: Vec<Candle> = (0..20)
            .map(|i| candle(i, 100.0 + i as f64, 100.5 + i as f64))
            .collect();
        let s = Strategy::new(
            StrategyKind::EmaCross,
            &[("fast".to_owned(), 2.0), ("slow".to_owned(), 3.0)],
        )
        .unwrap();
        let r = backtest(&s, &candles, &config(0.0, 0.0)).unwrap();
        assert_eq!(r.trades.len(), 1);
        assert_eq!(r.trades[0].entry_time, 3 * DAY);
        near(r.final_equity, 1000.0 * 119.5 / 103.0);
        assert_eq!(r.fees_paid, 0.0);
        assert_eq!(r.max_drawdown, 0.0);
        assert_eq!(r.sortino, 0.0);
        assert_eq!(r.win_rate, 0.0);
        near(r.exposure, 17.0 / 20.0);
    }

    #[test]
    fn a_strategy_that_never_buys_keeps_the_cash() {
        // Falling closes keep EMA(2) under EMA(3): bearish throughout, never long.
        let candles: Vec<Candle> = (0..30)
            .map(|i| candle(i, 100.0 - i as f64, 99.5 - i as f64))
            .collect();
        let s = Strategy::new(
            StrategyKind::EmaCross,
            &[("fast".to_owned(), 2.0), ("slow".to_owned(), 3.0)],
        )
        .unwrap();
        let r = backtest(&s, &candles, &config(10.0, 10.0)).unwrap();
        assert!(r.trades.is_empty());
        assert_eq!(r.final_equity, 1000.0);
        assert_eq!(
            (r.total_return, r.cagr, r.sharpe, r.sortino, r.max_drawdown),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((r.exposure, r.win_rate, r.fees_paid), (0.0, 0.0, 0.0));
        let one = backtest(&s, &candles[..1], &config(10.0, 10.0)).unwrap();
        assert_eq!(one.equity_curve, [(0, 1000.0)]);
        assert_eq!(one.cagr, 0.0);
    }

    #[test]
    fn the_equity_curve_is_down_sampled_evenly() {
        let candles: Vec<Candle> = (0..10_000)
            .map(|i| {
                let p = 100.0 + 10.0 * (i as f64 / 50.0).sin();
                candle(i, p, p + 0.3 * (i as f64 / 7.0).cos())
            })
            .collect();
        let s = Strategy::new(StrategyKind::MacdCross, &[]).unwrap();
        let r = backtest(&s, &candles, &config(5.0, 5.0)).unwrap();
        assert_eq!(r.equity_curve.len(), MAX_CURVE_POINTS);
        assert_eq!(r.equity_curve[0], (0, 1000.0));
        assert_eq!(r.equity_curve[499], (9_999 * DAY, r.final_equity));
        assert!(r.equity_curve.windows(2).all(|w| {
            let gap = (w[1].0 - w[0].0) / DAY;
            gap == 20 || gap == 21
        }));
        assert!(r.trade_count > 10);
        let short = backtest(&s, &candles[..MAX_CURVE_POINTS], &config(5.0, 5.0)).unwrap();
        assert_eq!(short.equity_curve.len(), MAX_CURVE_POINTS);
        let over = backtest(&s, &candles[..=MAX_CURVE_POINTS], &config(5.0, 5.0)).unwrap();
        assert_eq!(over.equity_curve.len(), MAX_CURVE_POINTS);
        assert_eq!(over.equity_curve[499].0, 500 * DAY);
    }

    #[test]
    fn backtest_from_uses_earlier_candles_only_to_warm_up() {
        let candles = hand_series();
        let from = backtest_from(&rsi2(), &candles, &config(10.0, 50.0), 4 * DAY).unwrap();
        // Flat at bar 4's close, then the same trades as the full run.
        assert_eq!(from.equity_curve[0], (4 * DAY, 1000.0));
        assert_eq!(from.equity_curve.len(), 6);
        let full = backtest(&rsi2(), &candles, &config(10.0, 50.0)).unwrap();
        assert_eq!(from.trades, full.trades);
        near(from.final_equity, full.final_equity);
        near(from.exposure, 3.0 / 6.0);
        // Starting at bar 6, bar 8's signal is the first to act on.
        let late = backtest_from(&rsi2(), &candles, &config(10.0, 50.0), 6 * DAY).unwrap();
        assert_eq!(late.trades.len(), 1);
        assert_eq!(late.trades[0].entry_time, 9 * DAY);
        near(late.trades[0].quantity, 1000.0 / 1.001 / 10.5525);
        assert_eq!(
            backtest_from(&rsi2(), &candles, &config(10.0, 50.0), 0).unwrap(),
            full
        );
        assert_eq!(
            backtest_from(&rsi2(), &candles, &config(10.0, 50.0), 10 * DAY)
                .unwrap_err()
                .to_string(),
            format!("no candles to backtest at or after {}", 10 * DAY)
        );
    }

    #[test]
    fn bad_settings_and_data_are_refused() {
        let candles = hand_series();
        let run = |c: BacktestConfig| backtest(&rsi2(), &candles, &c).unwrap_err();
        assert_eq!(
            run(config(1000.5, 0.0)),
            StrategyError::OutOfRange {
                name: "fee_bps",
                min: 0.0,
                max: 1000.0
            }
        );
        assert_eq!(
            run(config(0.0, -1.0)).to_string(),
            "parameter `slippage_bps` must be a number from 0 to 1000"
        );
        assert_eq!(
            run(config(f64::NAN, 0.0)).to_string(),
            "parameter `fee_bps` must be a number from 0 to 1000"
        );
        assert_eq!(
            run(BacktestConfig {
                initial_cash: 0.0,
                ..config(0.0, 0.0)
            })
            .to_string(),
            "initial_cash must be a finite number above 0"
        );
        assert_eq!(
            run(BacktestConfig {
                initial_cash: f64::INFINITY,
                ..config(0.0, 0.0)
            })
            .to_string(),
            "initial_cash must be a finite number above 0"
        );
        assert_eq!(
            run(BacktestConfig {
                periods_per_year: 0.0,
                ..config(0.0, 0.0)
            })
            .to_string(),
            "periods_per_year must be a finite number above 0"
        );
        assert!(backtest(&rsi2(), &candles, &config(1000.0, 1000.0)).is_ok());
        assert_eq!(
            backtest(&rsi2(), &[], &config(0.0, 0.0))
                .unwrap_err()
                .to_string(),
            "no candles to backtest"
        );
        let mut broken = candles.clone();
        broken[3].close = f64::NAN;
        assert_eq!(
            backtest(&rsi2(), &broken, &config(0.0, 0.0))
                .unwrap_err()
                .to_string(),
            "input close at index 3 is not a finite number"
        );
        let mut zero = candles;
        zero[5].open = 0.0;
        assert_eq!(
            backtest(&rsi2(), &zero, &config(0.0, 0.0))
                .unwrap_err()
                .to_string(),
            "a backtest needs prices above 0; candle 5 has open 0"
        );
    }
}
