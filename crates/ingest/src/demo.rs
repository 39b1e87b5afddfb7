//! Demo data: seeds the simulated history on start-up and keeps it live, so a newcomer's
//! first `cargo run` serves charts and moving prices at once.

use std::sync::Arc;
use std::time::Duration;

use marketd_domain::{Candle, Interval};
use marketd_storage::{Asset, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::simulated::{DEMO_ASSETS, SOURCE, SimulatedSeries};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How much history to seed and how often to move the market.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Days of hourly candles.
    pub hourly_days: u32,
    /// Days of minute candles (finer charts for the recent past).
    pub minute_days: u32,
    /// How often live prices and open candles are updated.
    pub tick: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            hourly_days: 180,
            minute_days: 1,
            tick: Duration::from_secs(2),
        }
    }
}

/// What seeding wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub assets: usize,
    pub candles: u64,
}

fn series() -> Vec<SimulatedSeries> {
    DEMO_ASSETS
        .iter()
        .cloned()
        .map(SimulatedSeries::new)
        .collect()
}

/// Brings the demo assets up to `now`: on a fresh database the whole history, on a later
/// start only what was missed since the last stored candle.
pub async fn seed(
    store: &dyn Store,
    now: i64,
    options: &DemoOptions,
) -> Result<SeedReport, StoreError> {
    let mut report = SeedReport::default();
    let stored = store.series(None).await?;
    for mut simulated in series() {
        let asset = simulated.asset().clone();
        store
            .upsert_asset(&Asset {
                symbol: asset.symbol.to_owned(),
                name: asset.name.to_owned(),
                quote: "USD".to_owned(),
                sources: vec![SOURCE.to_owned()],
                created_at: now,
            })
            .await?;
        for (interval, days) in [
            (Interval::H1, options.hourly_days),
            (Interval::M1, options.minute_days),
        ] {
            let depth_start = interval.bucket_start(now - i64::from(days) * DAY_MS);
            // Resume at the last stored bucket: it may have been written while still open.
            let resume = stored
                .iter()
                .find(|s| s.symbol == asset.symbol && s.interval == interval)
                .map_or(depth_start, |s| s.last_open_time.max(depth_start));
            let candles = simulated_range(&mut simulated, interval, resume, now);
            report.candles += store
                .upsert_candles(asset.symbol, interval, SOURCE, &candles)
                .await?;
        }
        store.upsert_latest_price(&simulated.latest(now)).await?;
        report.assets += 1;
    }
    Ok(report)
}

/// Candles of `interval` whose buckets open in `[from, now]`, the last one partial.
fn simulated_range(
    simulated: &mut SimulatedSeries,
    interval: Interval,
    from: i64,
    now: i64,
) -> Vec<Candle> {
    let mut candles = Vec::new();
    let mut open_time = interval.bucket_start(from);
    while let Some(candle) = simulated.candle(interval, open_time, now) {
        candles.push(candle);
        open_time += interval.millis();
    }
    candles
}

/// Moves the simulated market every `tick` until `shutdown` is cancelled: the open
/// minute and hour candles grow, closed ones are finalised, latest prices move. A failed
/// write is logged and retried on the next tick; the demo never stops the service.
pub fn spawn_live(
    store: Arc<dyn Store>,
    tick_every: Duration,
    shutdown: CancellationToken,
    clock: fn() -> i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut all = series();
        // The bucket each series last wrote, so a bucket that closed between ticks is
        // finalised before the next one opens.
        let mut last_written: Vec<[i64; 2]> = vec![[i64::MIN; 2]; all.len()];
        let mut ticks = crate::ticks::Ticks::new(tick_every, shutdown);
        while ticks.next().await {
            let now = clock();
            for (simulated, written) in all.iter_mut().zip(last_written.iter_mut()) {
                if let Err(err) = tick(store.as_ref(), simulated, written, now).await {
                    tracing::warn!(error = %err, symbol = simulated.asset().symbol, "demo tick failed");
                }
            }
        }
    })
}

async fn tick(
    store: &dyn Store,
    simulated: &mut SimulatedSeries,
    written: &mut [i64; 2],
    now: i64,
) -> Result<(), StoreError> {
    let symbol = simulated.asset().symbol;
    for (slot, interval) in [Interval::M1, Interval::H1].into_iter().enumerate() {
        let from = if written[slot] == i64::MIN {
            now
        } else {
            written[slot]
        };
        let candles = simulated_range(simulated, interval, from, now);
        store
            .upsert_candles(symbol, interval, SOURCE, &candles)
            .await?;
        written[slot] = interval.bucket_start(now);
    }
    store.upsert_latest_price(&simulated.latest(now)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_storage::{ConnectOptions, connect};
    use marketd_testkit::TestDb;

    const NOW: i64 = 1_760_000_000_000 + 1_234_567;

    #[tokio::test]
    async fn seeds_once_then_only_catches_up() {
        let db = TestDb::sqlite();
        let store = connect(&db.url, &ConnectOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let options = DemoOptions {
            hourly_days: 3,
            minute_days: 1,
            ..DemoOptions::default()
        };
        let first = seed(store.as_ref(), NOW, &options).await.unwrap();
        assert_eq!(first.assets, 10);
        // 3 days of hours plus the open one, 1 day of minutes plus the open one.
        assert_eq!(first.candles, 10 * ((3 * 24 + 1) + (24 * 60 + 1)));
        let later = seed(store.as_ref(), NOW + 5 * 60_000, &options)
            .await
            .unwrap();
        // The open hour is rewritten; the open minute and five new ones.
        assert_eq!(later.candles, 10 * (1 + 6));
        let btc = store
            .candles("BTC", Interval::H1, 0, i64::MAX, 10_000)
            .await
            .unwrap();
        assert_eq!(btc.len(), 3 * 24 + 1);
        assert!(
            btc.windows(2)
                .all(|w| w[1].candle.open_time - w[0].candle.open_time == HOUR_MS)
        );
        let prices = store
            .latest_prices(&["BTC".into(), "ETH".into()])
            .await
            .unwrap();
        assert_eq!(prices.len(), 2);
        assert_eq!(prices[0].as_of, NOW + 5 * 60_000);
        // The stored open candle closes at the latest price.
        assert_eq!(btc.last().unwrap().candle.close, prices[0].price);
    }
}
