//! A period that ends at shutdown: the loop of every background poller.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Ticks every `period`, the first at once. A tick missed because the work took longer
/// than the period is not made up for with a burst: the next one comes a period later.
#[derive(Debug)]
pub struct Ticks {
    interval: Interval,
    shutdown: CancellationToken,
}

impl Ticks {
    pub fn new(period: Duration, shutdown: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval, shutdown }
    }

    /// Waits for the next tick; false once shutdown has come.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_until_shutdown() {
        let shutdown = CancellationToken::new();
        let mut ticks = Ticks::new(Duration::from_secs(1), shutdown.clone());
        let began = tokio::time::Instant::now();
        assert!(ticks.next().await, "the first tick comes at once");
        assert!(ticks.next().await);
        assert_eq!(began.elapsed(), Duration::from_secs(1));
        shutdown.cancel();
        assert!(!ticks.next().await);
    }
}
