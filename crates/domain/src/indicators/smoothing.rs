//! The EMA step, `y ← keep·y + gain·x`, evaluated two steps at a time.
//!
//! In a loop that does little else (EMA, DEMA, TEMA, MACD), the step's multiply and add
//! on the carried value are the whole cost: each value waits for the one before it.
//! Unrolled once,
//!
//! ```text
//! y[t] = (gain·x[t] + (gain·keep)·x[t−1]) + keep²·y[t−2]
//! ```
//!
//! each value waits only for the one two steps back, so the loop carries two independent
//! chains of the same length and runs about twice as fast; the bracket depends on the
//! inputs alone. (It multiplies `x[t−1]` afresh rather than reusing `gain·x[t−1]` from
//! the step before: carried over, that product becomes a third chain when the compiler
//! packs the two multiplications into one vector instruction.) The result differs from the one-step form by rounding (a few ulps, and the
//! error does not grow, since `keep < 1`), far inside the fixtures' 1e-9. The batch and
//! incremental forms both go through [`Smoothing::step`], [`Smoothing::first`] and
//! [`Smoothing::next`], so they agree bit for bit.
//!
//! Wilder's smoothing (RSI, ATR, ADX) has the same shape but stays one step at a time
//! ([`super::Wilder`]): those loops are bound by their divisions and by memory rather
//! than by the chain, and the unrolled form measured no faster there (RSI slower: the
//! compiler packs the gain and loss chains into one vector register and the shuffles
//! lengthen both).

/// The coefficients of one smoothing: `gain` for the new input, `keep` for the old value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Smoothing {
    gain: f64,
    keep: f64,
    gain_keep: f64,
    keep_sq: f64,
}

/// What a [`Smoothing`] carries from step to step.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Smoothed {
    /// The latest value.
    pub(crate) value: f64,
    /// The value before it.
    before: f64,
    /// The latest input.
    input: f64,
    /// Only the seed is known: the next step is a one-step one.
    fresh: bool,
}

impl Smoothing {
    /// An EMA of `period` values: gain k = 2 / (period + 1), TA-Lib's factor, keep 1 − k.
    pub(crate) fn ema(period: usize) -> Self {
        let gain = 2.0 / (period as f64 + 1.0);
        let keep = 1.0 - gain;
        Self {
            gain,
            keep,
            gain_keep: gain * keep,
            keep_sq: keep * keep,
        }
    }

    /// A state holding only the seed (the mean or sum of the first inputs).
    pub(crate) fn start(seed: f64) -> Smoothed {
        Smoothed {
            value: seed,
            before: 0.0,
            input: 0.0,
            fresh: true,
        }
    }

    /// Takes in `x` and returns the new value, whichever step is due.
    #[inline]
    pub(crate) fn step(self, state: &mut Smoothed, x: f64) -> f64 {
        *state = if state.fresh {
            self.first(state.value, x)
        } else {
            self.next(*state, x)
        };
        state.value
    }

    /// The first step after the seed, which has no value two steps back.
    #[inline]
    pub(crate) fn first(self, seed: f64, x: f64) -> Smoothed {
        Smoothed {
            value: x * self.gain + seed * self.keep,
            before: seed,
            input: x,
            fresh: false,
        }
    }

    /// Every later step: from the value two steps back and the previous input.
    #[inline]
    pub(crate) fn next(self, state: Smoothed, x: f64) -> Smoothed {
        let inputs = x * self.gain + state.input * self.gain_keep;
        Smoothed {
            value: inputs + state.before * self.keep_sq,
            before: state.value,
            input: x,
            fresh: false,
        }
    }
}
