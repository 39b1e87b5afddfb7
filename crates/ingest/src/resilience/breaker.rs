//! A circuit breaker per source: after a run of failures, stop calling the upstream for a
//! while, then let one probe through to see whether it has recovered.
//!
//! Failing fast matters here because ingest falls back to the next source: waiting out
//! timeouts and retries against an upstream that is plainly down only delays the fallback
//! and adds load to a service that is already struggling.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What the breaker currently lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerState {
    /// Requests flow.
    #[default]
    Closed,
    /// Requests fail at once until the cool-down has passed.
    Open,
    /// The cool-down has passed: the next request is a probe, and its outcome closes or
    /// reopens the circuit.
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed requests that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe is allowed.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    consecutive_failures: u32,
    /// Set while the circuit is open or half-open.
    opened_at: Option<Instant>,
    /// A half-open probe is in flight; others are refused until it settles.
    probing: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state_of(&self.lock(), Instant::now())
    }

    /// Lets a request through, or says how long until a probe will be allowed.
    pub fn admit(&self) -> Result<Permit<'_>, Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        match self.state_of(&inner, now) {
            BreakerState::Closed => Ok(Permit::new(self, false)),
            BreakerState::Open => {
                let reopens = inner.opened_at.map_or(now, |t| t + self.config.cool_down);
                Err(reopens.saturating_duration_since(now))
            }
            BreakerState::HalfOpen if inner.probing => Err(Duration::ZERO),
            BreakerState::HalfOpen => {
                inner.probing = true;
                Ok(Permit::new(self, true))
            }
        }
    }

    fn state_of(&self, inner: &Inner, now: Instant) -> BreakerState {
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(t) if now < t + self.config.cool_down => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The guarded data is a few counters that are valid after any panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Leave to send one request. Settle it with [`Permit::success`] or [`Permit::failure`];
/// dropping it unsettled (a rate-limited answer, a cancelled call) counts as neither.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, probe: bool) -> Self {
        Self { breaker, probe }
    }

    /// The upstream answered. Returns true when this closed an open circuit.
    pub fn success(self) -> bool {
        let mut inner = self.breaker.lock();
        let was_open = inner.opened_at.is_some();
        *inner = Inner::default();
        was_open
    }

    /// The upstream failed. Returns true when this opened the circuit.
    pub fn failure(self) -> bool {
        let mut inner = self.breaker.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if self.probe {
            // A failed probe restarts the cool-down.
            inner.opened_at = Some(Instant::now());
            return true;
        }
        if inner.opened_at.is_none()
            && inner.consecutive_failures >= self.breaker.config.failure_threshold
        {
            inner.opened_at = Some(Instant::now());
            return true;
        }
        false
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            // Whatever happened, this probe is over; without this a cancelled probe would
            // leave the circuit refusing everything forever.
            self.breaker.lock().probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let b = breaker();
        for _ in 0..2 {
            assert!(!b.admit().unwrap().failure());
        }
        b.admit().unwrap().success();
        for _ in 0..2 {
            assert!(!b.admit().unwrap().failure());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().unwrap().failure());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_cool_down_then_closes() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(6));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.admit().unwrap();
        assert!(
            b.admit().is_err(),
            "a second probe while the first is in flight"
        );
        assert!(probe.success());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_cool_down() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.admit().unwrap().failure());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_the_slot() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.admit().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit().is_ok());
    }
}
