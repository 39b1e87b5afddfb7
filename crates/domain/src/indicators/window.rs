//! Fixed-size windows over the most recent inputs, shared by the incremental states.

/// The last `capacity` values, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    capacity: usize,
    /// Slot the next value goes into; once full, also the oldest value's slot.
    next: usize,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            capacity,
            next: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.capacity
    }

    #[inline]
    pub(crate) fn push(&mut self, value: f64) {
        if self.buf.len() < self.capacity {
            self.buf.push(value);
        } else {
            self.buf[self.next] = value;
        }
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
        }
    }

    /// The oldest value held; only meaningful once something was pushed.
    #[inline]
    pub(crate) fn oldest(&self) -> f64 {
        if self.is_full() {
            self.buf[self.next]
        } else {
            self.buf[0]
        }
    }

    /// Values oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        let (newer, older) = if self.is_full() {
            self.buf.split_at(self.next)
        } else {
            self.buf.split_at(self.buf.len())
        };
        older.iter().chain(newer).copied()
    }

    /// Values in slot order, which is the order TA-Lib's circular buffers sum in.
    pub(crate) fn slots(&self) -> &[f64] {
        &self.buf
    }
}

/// The highest (`MAX = true`) or lowest value of the last `window` inputs.
///
/// Keeps the current extreme and where it was seen; only when it leaves the window is the
/// window searched again. On market data that is rare, so a step usually costs one
/// comparison (a deque of candidates has the better worst case but is slower in practice).
#[derive(Debug, Clone)]
pub(crate) struct Extreme<const MAX: bool> {
    values: Vec<f64>,
    window: usize,
    /// Slot of the next value: `seen % window`, kept without dividing.
    next: usize,
    seen: usize,
    best: f64,
    best_at: usize,
}

impl<const MAX: bool> Extreme<MAX> {
    pub(crate) fn new(window: usize) -> Self {
        Self {
            values: Vec::with_capacity(window),
            window,
            next: 0,
            seen: 0,
            best: 0.0,
            best_at: 0,
        }
    }

    #[inline]
    pub(crate) fn beats(a: f64, b: f64) -> bool {
        if MAX { a >= b } else { a <= b }
    }

    /// Adds a value and returns the extreme of the window ending with it.
    #[inline]
    pub(crate) fn push(&mut self, value: f64) -> f64 {
        if self.values.len() < self.window {
            self.values.push(value);
        } else {
            self.values[self.next] = value;
        }
        self.next += 1;
        if self.next == self.window {
            self.next = 0;
        }
        if self.seen == 0 || Self::beats(value, self.best) {
            self.best = value;
            self.best_at = self.seen;
        } else if self.best_at + self.window <= self.seen {
            // The extreme fell out: search the window, oldest first, so ties go to the
            // newest and stay longest.
            // After the write above, `next` is the oldest slot.
            let (newer, older) = self.values.split_at(self.next);
            let mut at = self.seen + 1 - self.window;
            self.best = older[0];
            self.best_at = at;
            for &v in older[1..].iter().chain(newer) {
                at += 1;
                if Self::beats(v, self.best) {
                    self.best = v;
                    self.best_at = at;
                }
            }
        }
        self.seen += 1;
        self.best
    }
}

/// The batch counterpart of [`Extreme`], reading a slice instead of keeping a copy of the
/// window: the extreme of `values[i + 1 − window ..= i]`, for `i = 0, 1, 2, …` in turn.
/// It returns the value [`Extreme::push`] returns (equal values may differ only in the
/// sign of a zero).
///
/// Branch-light and O(1) per value whatever the data: the input is cut into blocks of
/// `window` values; a window ending at offset `r` of a block is the block's prefix up to
/// `r` plus the previous block's suffix from `r + 1`. The prefix is a running extreme,
/// the suffixes are computed once per block (one comparison per value, amortised), so
/// each step costs three comparisons that compile to `max`/`min` instructions instead of
/// a rescan whose branches mispredict.
#[derive(Debug, Clone)]
pub(crate) struct RunningExtreme<const MAX: bool> {
    window: usize,
    /// Extremes of the previous block from each offset to its end; slot `window` (and
    /// every slot before the first block is complete) holds the identity.
    suffix: Vec<f64>,
    prefix: f64,
    /// Offset of the next value in its block.
    offset: usize,
}

impl<const MAX: bool> RunningExtreme<MAX> {
    pub(crate) const IDENTITY: f64 = if MAX {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };

    pub(crate) fn new(window: usize) -> Self {
        Self {
            window,
            suffix: vec![Self::IDENTITY; window + 1],
            prefix: Self::IDENTITY,
            offset: 0,
        }
    }

    /// The more extreme of two values, as one `max`/`min` instruction.
    #[inline(always)]
    pub(crate) fn pick(a: f64, b: f64) -> f64 {
        if MAX {
            if b > a { b } else { a }
        } else if b < a {
            b
        } else {
            a
        }
    }

    /// The extreme of the window ending at `i`; call it for every `i` from 0 up.
    #[inline]
    pub(crate) fn at(&mut self, values: &[f64], i: usize) -> f64 {
        if self.offset == self.window {
            Self::suffixes(&mut self.suffix[..self.window], &values[i - self.window..i]);
            (self.prefix, self.offset) = (Self::IDENTITY, 0);
        }
        self.step(values[i])
    }

    /// [`at`](Self::at) for values that are not kept in a slice: the current block is
    /// copied into `block` (a buffer of `window` slots, the caller's, so this state stays
    /// as small as the slice form).
    #[inline]
    pub(crate) fn push(&mut self, block: &mut [f64], value: f64) -> f64 {
        if self.offset == self.window {
            Self::suffixes(&mut self.suffix[..self.window], &block[..self.window]);
            (self.prefix, self.offset) = (Self::IDENTITY, 0);
        }
        block[self.offset] = value;
        self.step(value)
    }

    #[inline(always)]
    fn step(&mut self, value: f64) -> f64 {
        self.prefix = Self::pick(self.prefix, value);
        let r = self.offset;
        self.offset += 1;
        Self::pick(self.prefix, self.suffix[r + 1])
    }

    /// A block ended: the extremes of `block` from each offset to its end.
    #[inline(never)]
    pub(crate) fn suffixes(suffix: &mut [f64], block: &[f64]) {
        let mut best = Self::IDENTITY;
        for (slot, &v) in suffix.iter_mut().zip(block).rev() {
            best = Self::pick(best, v);
            *slot = best;
        }
    }
}
