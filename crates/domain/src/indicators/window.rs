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
/// It returns what [`Extreme::push`] returns, ties included.
#[derive(Debug, Clone)]
pub(crate) struct RunningExtreme<const MAX: bool> {
    window: usize,
    best_at: usize,
}

impl<const MAX: bool> RunningExtreme<MAX> {
    pub(crate) fn new(window: usize) -> Self {
        Self { window, best_at: 0 }
    }

    /// The extreme of the window ending at `i`; call it for every `i` from 0 up.
    #[inline]
    pub(crate) fn at(&mut self, values: &[f64], i: usize) -> f64 {
        let (value, best) = (values[i], values[self.best_at]);
        if i == 0 || Extreme::<MAX>::beats(value, best) {
            self.best_at = i;
            value
        } else if self.best_at + self.window <= i {
            self.rescan(values, i)
        } else {
            best
        }
    }

    /// The extreme fell out: search the window oldest first, so ties go to the newest and
    /// stay longest. Kept out of line so the common path above stays small.
    #[inline(never)]
    fn rescan(&mut self, values: &[f64], i: usize) -> f64 {
        let start = i + 1 - self.window;
        let window = &values[start..=i];
        let (mut at, mut best) = (0, window[0]);
        for (j, &v) in window.iter().enumerate().skip(1) {
            if Extreme::<MAX>::beats(v, best) {
                (at, best) = (j, v);
            }
        }
        self.best_at = start + at;
        best
    }
}
