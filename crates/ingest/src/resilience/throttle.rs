//! Outbound pacing for one source: a GCRA budget sized to the upstream's published limit,
//! pauses ordered by the upstream (Retry-After), and an early stop when a weight header
//! says the shared budget is nearly spent.

use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// A steady budget of `cells` per `per`, of which up to `burst` may be spent at once. A
/// request costs one cell unless the source says otherwise (Binance's weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub cells: u32,
    pub per: Duration,
    pub burst: u32,
}

/// An upstream that reports how much of a fixed-window budget this client has used, in a
/// response header (Binance's `X-MBX-USED-WEIGHT-1m`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightLimit {
    pub header: &'static str,
    /// At or above this used weight, no request goes out until the window rolls over.
    pub soft_limit: u32,
    /// The upstream's window, aligned to the Unix epoch (Binance counts per clock minute).
    pub window: Duration,
}

#[derive(Debug)]
pub(crate) struct Throttle {
    limiter: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
    weight: Option<WeightLimit>,
    paused_until: Mutex<Option<Instant>>,
    max_wait: Duration,
}

impl Throttle {
    /// `max_wait` is the longest pause a caller waits out; past it the caller is told to
    /// come back later instead of holding a task for minutes.
    pub(crate) fn new(
        rate: Option<RateLimit>,
        weight: Option<WeightLimit>,
        max_wait: Duration,
    ) -> Result<Self, String> {
        let limiter = match rate {
            None => None,
            Some(rate) => {
                let cells = NonZeroU32::new(rate.cells).ok_or("a rate limit of zero cells")?;
                let burst = NonZeroU32::new(rate.burst).ok_or("a burst of zero cells")?;
                let quota = Quota::with_period(rate.per / cells.get())
                    .ok_or("a rate limit period too short to measure")?
                    .allow_burst(burst);
                Some((RateLimiter::direct(quota), burst))
            }
        };
        Ok(Self {
            limiter,
            weight,
            paused_until: Mutex::new(None),
            max_wait,
        })
    }

    /// Waits until a request of `cost` cells may go out. Fails with the remaining pause
    /// when the source is paused for longer than `max_wait`.
    pub(crate) async fn acquire(&self, cost: u32) -> Result<(), Duration> {
        // A loop, because another response may extend the pause while this one sleeps.
        while let Some(remaining) = self.remaining_pause() {
            if remaining > self.max_wait {
                return Err(remaining);
            }
            tokio::time::sleep(remaining).await;
        }
        if let Some((limiter, burst)) = &self.limiter {
            // A cost above the burst could never be granted; spending the whole burst is
            // the closest honest pacing.
            let cells = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN).min(*burst);
            if limiter.until_n_ready(cells).await.is_err() {
                return Err(Duration::ZERO);
            }
        }
        Ok(())
    }

    /// Stops this source's requests for `duration` (extending, never shortening, a pause
    /// already in force).
    pub(crate) fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    pub(crate) fn remaining_pause(&self) -> Option<Duration> {
        let paused = *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Reads the weight header of a response; when the budget is nearly spent, pauses
    /// until the upstream's window rolls over and returns that pause.
    pub(crate) fn observe(&self, headers: &HeaderMap) -> Option<Duration> {
        let weight = self.weight.as_ref()?;
        let used: u32 = headers
            .get(weight.header)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if used < weight.soft_limit {
            return None;
        }
        let pause = until_next_window(weight.window, SystemTime::now());
        self.pause(pause);
        Some(pause)
    }
}

/// Time from `now` to the next epoch-aligned window boundary, plus a margin of 1/60 of the
/// window (a second per minute) for the upstream's clock being a little behind ours.
fn until_next_window(window: Duration, now: SystemTime) -> Duration {
    let window_ns = window.as_nanos().max(1);
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let left = window_ns - since_epoch % window_ns;
    let margin = window_ns / 60;
    Duration::from_nanos(u64::try_from(left + margin).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_roll_over_on_epoch_boundaries() {
        let minute = Duration::from_secs(60);
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(
            until_next_window(minute, at(1_700_000_040)),
            Duration::from_secs(61)
        );
        assert_eq!(
            until_next_window(minute, at(1_700_000_099)),
            Duration::from_secs(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_extend_but_never_shorten() {
        let t = Throttle::new(None, None, Duration::from_secs(5)).unwrap();
        t.pause(Duration::from_secs(3));
        t.pause(Duration::from_secs(1));
        assert_eq!(t.remaining_pause(), Some(Duration::from_secs(3)));
        let start = Instant::now();
        t.acquire(1).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        t.pause(Duration::from_secs(60));
        assert_eq!(t.acquire(1).await, Err(Duration::from_secs(60)));
    }

    #[test]
    fn the_weight_header_pauses_only_near_the_limit() {
        let t = Throttle::new(
            None,
            Some(WeightLimit {
                header: "x-used",
                soft_limit: 5400,
                window: Duration::from_secs(60),
            }),
            Duration::from_secs(90),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-used", "120".parse().unwrap());
        assert_eq!(t.observe(&headers), None);
        headers.insert("x-used", "5400".parse().unwrap());
        let pause = t.observe(&headers).unwrap();
        assert!(pause > Duration::ZERO && pause <= Duration::from_secs(61));
    }

    #[test]
    fn nonsense_limits_are_refused() {
        let rate = |cells, burst| {
            Some(RateLimit {
                cells,
                per: Duration::from_secs(1),
                burst,
            })
        };
        assert!(Throttle::new(rate(0, 1), None, Duration::ZERO).is_err());
        assert!(Throttle::new(rate(1, 0), None, Duration::ZERO).is_err());
        assert!(Throttle::new(rate(10, 10), None, Duration::ZERO).is_ok());
    }
}
