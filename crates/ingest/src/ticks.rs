//! A period that ends at shutdown: the loop of every background poller.

use std::time::Duration;

use marketd_storage::{Change, Changes};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Ticks every `period`, the first at once. A tick missed because the work took longer
/// than the period is not made up for with a burst: the next one comes a period later.
/// With [`Ticks::woken_by`], an announced write ticks at once as well.
#[derive(Debug)]
pub struct Ticks {
    interval: Interval,
    shutdown: CancellationToken,
    wakeups: Option<Wakeups>,
}

/// Announced changes, and which of them are worth a tick.
#[derive(Debug)]
struct Wakeups {
    changes: Changes,
    wanted: fn(Change) -> bool,
}

impl Ticks {
    pub fn new(period: Duration, shutdown: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            interval,
            shutdown,
            wakeups: None,
        }
    }

    /// Also ticks on each announced change that `wanted` accepts, so a write is acted on
    /// without waiting out the period; the period remains for writes nobody announces.
    pub fn woken_by(mut self, changes: Changes, wanted: fn(Change) -> bool) -> Self {
        self.wakeups = Some(Wakeups { changes, wanted });
        self
    }

    /// Waits for the next tick; false once shutdown has come.
    pub async fn next(&mut self) -> bool {
        loop {
            let announced = async {
                match &mut self.wakeups {
                    Some(wakeups) => wakeups.changes.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                _ = self.interval.tick() => return true,
                change = announced => match (change, &self.wakeups) {
                    (Some(change), Some(wakeups)) if (wakeups.wanted)(change) => {
                        // The work about to run covers this period's tick too.
                        self.interval.reset();
                        return true;
                    }
                    (Some(_), _) => {}
                    // The store is gone; the period alone remains.
                    (None, _) => self.wakeups = None,
                },
            }
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

    #[tokio::test]
    async fn an_announced_change_ticks_at_once() {
        let db = marketd_testkit::TestDb::sqlite();
        let store = marketd_storage::connect(&db.url, &marketd_storage::ConnectOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let shutdown = CancellationToken::new();
        let mut ticks = Ticks::new(Duration::from_secs(3600), shutdown.clone())
            .woken_by(store.changes(), Change::touches_prices);
        assert!(ticks.next().await, "the first tick comes at once");
        let candle = marketd_domain::Candle {
            open_time: 0,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
        };
        store
            .upsert_candles("BTC", marketd_domain::Interval::H1, "test", &[candle])
            .await
            .unwrap();
        let price = marketd_domain::LatestPrice {
            symbol: "BTC".into(),
            price: 1.0,
            open_24h: 1.0,
            high_24h: 1.0,
            low_24h: 1.0,
            volume_24h: 0.0,
            as_of: 0,
            source: "test".into(),
        };
        store.upsert_latest_price(&price).await.unwrap();
        // The period is an hour: only the price write can end this wait.
        let woken = tokio::time::timeout(Duration::from_secs(60), ticks.next()).await;
        assert_eq!(woken.ok(), Some(true));
        shutdown.cancel();
        assert!(!ticks.next().await);
    }
}
