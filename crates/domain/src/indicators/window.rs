//! Fixed-size windows over the most recent inputs, shared by the incremental states.

use std::collections::VecDeque;

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
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
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

/// The highest (`MAX = true`) or lowest value of the last `window` inputs, in amortised
/// constant time: a value that can never again be the extreme is dropped at once.
#[derive(Debug, Clone)]
pub(crate) struct Extreme<const MAX: bool> {
    window: usize,
    seen: usize,
    candidates: VecDeque<(usize, f64)>,
}

impl<const MAX: bool> Extreme<MAX> {
    pub(crate) fn new(window: usize) -> Self {
        Self {
            window,
            seen: 0,
            candidates: VecDeque::with_capacity(window + 1),
        }
    }

    /// Adds a value and returns the extreme of the window ending with it.
    #[inline]
    pub(crate) fn push(&mut self, value: f64) -> f64 {
        while let Some(&(_, last)) = self.candidates.back() {
            let dominated = if MAX { last <= value } else { last >= value };
            if !dominated {
                break;
            }
            self.candidates.pop_back();
        }
        self.candidates.push_back((self.seen, value));
        while let Some(&(index, _)) = self.candidates.front() {
            if index + self.window > self.seen {
                break;
            }
            self.candidates.pop_front();
        }
        self.seen += 1;
        self.candidates.front().map_or(value, |&(_, v)| v)
    }
}
