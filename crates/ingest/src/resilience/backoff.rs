//! How long to wait before retrying a failed request.

use std::time::Duration;

use rand::Rng;

/// Bounded retries with exponential backoff and full jitter.
///
/// Full jitter (a uniform delay between zero and the exponential ceiling) rather than the
/// ceiling itself: when an upstream hiccups, every task that was talking to it fails at
/// once, and identical delays would bring them back at once too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// Ceiling of the first retry's delay; each later retry doubles it.
    pub base_delay: Duration,
    /// No delay is longer than this, however many retries came before.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The longest delay before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A random delay in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=6).map(|r| p.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_spread_out() {
        let p = policy();
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= p.ceiling(3)));
        let low = delays.iter().filter(|d| d.as_millis() < 200).count();
        // Half of a uniform draw over [0, 400 ms] should fall below 200 ms; 200 draws all
        // on one side would mean no jitter at all.
        assert!((20..180).contains(&low), "{low} of 200 below the midpoint");
    }
}
