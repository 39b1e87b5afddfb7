//! Trend strength: ADX with its directional indicators +DI and −DI.

use super::volatility::true_range;
use super::{
    CandleColumns, Columns, Indicator, IndicatorError, Series, Wilder, check_period, finite_candle,
    finite_or,
};
use crate::Candle;

/// ADX, +DI and −DI columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdxSeries {
    pub adx: Series,
    pub plus_di: Series,
    pub minus_di: Series,
}

/// One ADX row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AdxPoint {
    pub adx: Option<f64>,
    pub plus_di: Option<f64>,
    pub minus_di: Option<f64>,
}

/// Average Directional Index with +DI and −DI (TA-Lib ADX, PLUS_DI, MINUS_DI).
///
/// Directional movement and true range are Wilder-smoothed sums seeded with the plain
/// sum of the first `period − 1` values; DI = 100 · DM / TR (0 while TR is 0). DX =
/// 100 · |+DI − −DI| / (+DI + −DI); ADX is the mean of the first `period` DX, then
/// Wilder-smoothed, and holds its value while both DI are 0. +DI and −DI start at
/// `period`, ADX at `2·period − 1`.
pub fn adx(candles: &CandleColumns, period: usize) -> Result<AdxSeries, IndicatorError> {
    check_period("period", period, 2)?;
    let (high, low, close) = (candles.high(), candles.low(), candles.close());
    let n = close.len();
    let mut columns = Columns::<3>::new(n);
    let [adx, plus_di, minus_di] = columns.split();
    // The same steps as [`Adx::push`], with the candle before in `i − 1`.
    let mut ok = n == 0 || high[0].is_finite() & low[0].is_finite() & close[0].is_finite();
    let mut state = Smoothed::default();
    let wilder = Wilder::new(period);
    for i in 1..n {
        ok &= high[i].is_finite() & low[i].is_finite() & close[i].is_finite();
        let moves = Moves::between(high[i - 1], low[i - 1], close[i - 1], high[i], low[i]);
        if i < period {
            state.seed(moves);
            continue;
        }
        let (plus, minus, dx) = state.step(wilder, moves);
        (plus_di[i], minus_di[i]) = (plus, minus);
        if i < 2 * period - 1 {
            state.adx += dx.unwrap_or(0.0);
        } else {
            state.adx = if i == 2 * period - 1 {
                (state.adx + dx.unwrap_or(0.0)) / period as f64
            } else {
                dx.map_or(state.adx, |dx| wilder.mean(state.adx, dx))
            };
            adx[i] = state.adx;
        }
    }
    finite_or(ok, &[("high", high), ("low", low), ("close", close)])?;
    let [adx, plus_di, minus_di] = columns.finish();
    Ok(AdxSeries {
        adx,
        plus_di,
        minus_di,
    })
}

/// One candle's directional movement and true range.
#[derive(Debug, Clone, Copy)]
struct Moves {
    plus: f64,
    minus: f64,
    tr: f64,
}

impl Moves {
    #[inline]
    fn between(prev_high: f64, prev_low: f64, prev_close: f64, high: f64, low: f64) -> Self {
        let up = high - prev_high;
        let down = prev_low - low;
        // Only the larger move counts, and only if it is a move outward.
        let (plus, minus) = if down > 0.0 && up < down {
            (0.0, down)
        } else if up > 0.0 && up > down {
            (up, 0.0)
        } else {
            (0.0, 0.0)
        };
        Self {
            plus,
            minus,
            tr: true_range(high, low, prev_close),
        }
    }
}

/// The smoothed sums shared by the batch and incremental forms.
#[derive(Debug, Clone, Copy, Default)]
struct Smoothed {
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    /// The sum of DX while seeding, the ADX afterwards.
    adx: f64,
}

impl Smoothed {
    #[inline]
    fn seed(&mut self, m: Moves) {
        self.plus_dm += m.plus;
        self.minus_dm += m.minus;
        self.tr += m.tr;
    }

    /// Smooths in one candle's moves; returns +DI, −DI and DX (undefined with no range).
    #[inline]
    fn step(&mut self, wilder: Wilder, m: Moves) -> (f64, f64, Option<f64>) {
        self.plus_dm = wilder.sum(self.plus_dm, m.plus);
        self.minus_dm = wilder.sum(self.minus_dm, m.minus);
        self.tr = wilder.sum(self.tr, m.tr);
        let (plus_di, minus_di) = if self.tr != 0.0 {
            (
                100.0 * (self.plus_dm / self.tr),
                100.0 * (self.minus_dm / self.tr),
            )
        } else {
            (0.0, 0.0)
        };
        let di_sum = plus_di + minus_di;
        let dx = (self.tr != 0.0 && di_sum != 0.0)
            .then(|| 100.0 * ((minus_di - plus_di).abs() / di_sum));
        (plus_di, minus_di, dx)
    }
}

/// Incremental [`adx`].
#[derive(Debug, Clone)]
pub struct Adx {
    period: usize,
    wilder: Wilder,
    seen: usize,
    prev_high: f64,
    prev_low: f64,
    prev_close: f64,
    state: Smoothed,
}

impl Adx {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 2)?;
        Ok(Self {
            period,
            wilder: Wilder::new(period),
            seen: 0,
            prev_high: 0.0,
            prev_low: 0.0,
            prev_close: 0.0,
            state: Smoothed::default(),
        })
    }
}

impl Indicator for Adx {
    type Input = Candle;
    type Output = AdxPoint;

    #[inline]
    fn push(&mut self, c: Candle) -> Result<AdxPoint, IndicatorError> {
        finite_candle(&c, self.seen, false)?;
        self.seen += 1;
        let moves = Moves::between(
            self.prev_high,
            self.prev_low,
            self.prev_close,
            c.high,
            c.low,
        );
        self.prev_high = c.high;
        self.prev_low = c.low;
        self.prev_close = c.close;
        let p = self.period;
        if self.seen == 1 {
            return Ok(AdxPoint::default());
        }
        if self.seen < p + 1 {
            self.state.seed(moves);
            return Ok(AdxPoint::default());
        }
        let (plus_di, minus_di, dx) = self.state.step(self.wilder, moves);
        let s = &mut self.state;
        let adx = if self.seen < 2 * p {
            s.adx += dx.unwrap_or(0.0);
            None
        } else if self.seen == 2 * p {
            s.adx = (s.adx + dx.unwrap_or(0.0)) / p as f64;
            Some(s.adx)
        } else {
            if let Some(dx) = dx {
                s.adx = self.wilder.mean(s.adx, dx);
            }
            Some(s.adx)
        };
        Ok(AdxPoint {
            adx,
            plus_di: Some(plus_di),
            minus_di: Some(minus_di),
        })
    }
}
