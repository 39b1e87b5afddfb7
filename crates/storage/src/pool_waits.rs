//! How long database work waits for a pooled connection: the pool's size and idle count
//! say whether it is full, only this says whether requests queue behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds, in seconds, of the wait histogram's buckets (Prometheus `le`).
pub const POOL_WAIT_BUCKETS: [f64; 6] = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0];

/// Counts of waits for a connection, shared by clones of a store.
#[derive(Debug, Default, Clone)]
pub(crate) struct PoolWaits(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    /// Waits at or under each bound (not cumulative; summed when read).
    buckets: [AtomicU64; POOL_WAIT_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A snapshot of the waits, ready to be written as a Prometheus histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolWaitStats {
    /// Waits at or under each of [`POOL_WAIT_BUCKETS`], cumulative.
    pub at_most: [u64; POOL_WAIT_BUCKETS.len()],
    /// Every wait, including those over the largest bound and those that timed out.
    pub count: u64,
    pub sum_micros: u64,
}

impl PoolWaits {
    /// Runs `acquire` (taking a connection, or beginning a transaction) and records how
    /// long it took, whether it succeeded or timed out.
    pub(crate) async fn time<T>(&self, acquire: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = acquire.await;
        self.record(started.elapsed());
        result
    }

    fn record(&self, waited: Duration) {
        let seconds = waited.as_secs_f64();
        let counters = &self.0;
        if let Some(bucket) = POOL_WAIT_BUCKETS.iter().position(|&le| seconds <= le) {
            counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        counters.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        counters.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> PoolWaitStats {
        let mut at_most = [0; POOL_WAIT_BUCKETS.len()];
        let mut running = 0;
        for (slot, bucket) in at_most.iter_mut().zip(&self.0.buckets) {
            running += bucket.load(Ordering::Relaxed);
            *slot = running;
        }
        PoolWaitStats {
            at_most,
            count: self.0.count.load(Ordering::Relaxed),
            sum_micros: self.0.sum_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_into_cumulative_buckets() {
        let waits = PoolWaits::default();
        for micros in [50, 500, 500, 20_000, 30_000_000] {
            waits.record(Duration::from_micros(micros));
        }
        let stats = waits.stats();
        assert_eq!(stats.at_most, [1, 3, 3, 4, 4, 4]);
        assert_eq!(stats.count, 5);
        assert_eq!(stats.sum_micros, 30_021_050);
    }
}
