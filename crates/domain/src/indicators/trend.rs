//! Trend strength: ADX with its directional indicators +DI and −DI.

use super::volatility::true_range;
use super::{Indicator, IndicatorError, Series, check_period, finite_candle};
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
pub fn adx(candles: &[Candle], period: usize) -> Result<AdxSeries, IndicatorError> {
    let mut state = Adx::new(period)?;
    let mut out = AdxSeries {
        adx: Vec::with_capacity(candles.len()),
        plus_di: Vec::with_capacity(candles.len()),
        minus_di: Vec::with_capacity(candles.len()),
    };
    for &c in candles {
        let p = state.push(c)?;
        out.adx.push(p.adx);
        out.plus_di.push(p.plus_di);
        out.minus_di.push(p.minus_di);
    }
    Ok(out)
}

/// Incremental [`adx`].
#[derive(Debug, Clone)]
pub struct Adx {
    period: usize,
    seen: usize,
    prev_high: f64,
    prev_low: f64,
    prev_close: f64,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    /// The sum of DX while seeding, the ADX afterwards.
    adx: f64,
}

impl Adx {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period("period", period, 2)?;
        Ok(Self {
            period,
            seen: 0,
            prev_high: 0.0,
            prev_low: 0.0,
            prev_close: 0.0,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            adx: 0.0,
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
        let up = c.high - self.prev_high;
        let down = self.prev_low - c.low;
        let tr = true_range(c.high, c.low, self.prev_close);
        self.prev_high = c.high;
        self.prev_low = c.low;
        self.prev_close = c.close;
        // Only the larger move counts, and only if it is a move outward.
        let (plus, minus) = if down > 0.0 && up < down {
            (0.0, down)
        } else if up > 0.0 && up > down {
            (up, 0.0)
        } else {
            (0.0, 0.0)
        };
        let p = self.period;
        if self.seen == 1 {
            return Ok(AdxPoint::default());
        }
        if self.seen < p + 1 {
            self.plus_dm += plus;
            self.minus_dm += minus;
            self.tr += tr;
            return Ok(AdxPoint::default());
        }
        let n = p as f64;
        self.plus_dm = self.plus_dm - self.plus_dm / n + plus;
        self.minus_dm = self.minus_dm - self.minus_dm / n + minus;
        self.tr = self.tr - self.tr / n + tr;
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
        let adx = if self.seen < 2 * p {
            self.adx += dx.unwrap_or(0.0);
            None
        } else if self.seen == 2 * p {
            self.adx = (self.adx + dx.unwrap_or(0.0)) / n;
            Some(self.adx)
        } else {
            if let Some(dx) = dx {
                self.adx = (self.adx * (n - 1.0) + dx) / n;
            }
            Some(self.adx)
        };
        Ok(AdxPoint {
            adx,
            plus_di: Some(plus_di),
            minus_di: Some(minus_di),
        })
    }
}
