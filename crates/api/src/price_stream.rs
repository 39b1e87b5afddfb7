//! Live latest prices for Server-Sent Events.
//!
//! One task per process watches the stored latest prices and turns each change into an
//! event with a process-wide increasing id. It reads the database rather than listening
//! to this process's writers, so prices written by another process (an ingesting
//! replica, `marketd import`) reach this process's streams too: at once when the write
//! is announced (Postgres NOTIFY, or this process's own write), else at the next poll.
//!
//! Events go to subscribers through one bounded broadcast channel, and the newest
//! [`REPLAY`] stay in a ring for clients that reconnect with `Last-Event-ID`. A client
//! too slow to keep up falls behind the channel's bound; its stream then ends with a
//! final `lagged` event, so memory never grows with a slow reader.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use marketd_domain::LatestPrice;
use marketd_ingest::ticks::Ticks;
use marketd_storage::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::middleware::response_cache::ResponseCache;

/// Events kept for `Last-Event-ID` resumption.
pub const REPLAY: usize = 1_024;
/// Events a subscriber may fall behind before it is cut off.
pub const SUBSCRIBER_QUEUE: usize = 256;
/// How often the stored prices are read.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// One price change.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEvent {
    pub id: u64,
    pub price: LatestPrice,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// The last price published per symbol, to publish changes only.
    last: HashMap<String, (f64, i64)>,
    replay: VecDeque<PriceEvent>,
}

/// Publishes price changes to every open stream of this process.
#[derive(Debug)]
pub struct PriceHub {
    state: Mutex<State>,
    sender: broadcast::Sender<PriceEvent>,
}

impl Default for PriceHub {
    fn default() -> Self {
        Self::with_queue(SUBSCRIBER_QUEUE)
    }
}

impl PriceHub {
    /// A hub whose subscribers may fall `queue` events behind.
    pub fn with_queue(queue: usize) -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
            sender: broadcast::channel(queue.max(1)).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the prices that differ from the last published ones; returns how many.
    pub fn offer(&self, prices: Vec<LatestPrice>) -> usize {
        let mut state = self.state();
        let mut published = 0;
        for price in prices {
            let seen = (price.price, price.as_of);
            if state.last.get(&price.symbol) == Some(&seen) {
                continue;
            }
            state.last.insert(price.symbol.clone(), seen);
            let event = PriceEvent {
                id: state.next_id,
                price,
            };
            state.next_id += 1;
            if state.replay.len() == REPLAY {
                state.replay.pop_front();
            }
            state.replay.push_back(event.clone());
            // No subscriber is not an error: the event waits in the replay ring.
            let _ = self.sender.send(event);
            published += 1;
        }
        published
    }

    /// Subscribes to new events, with the kept events after `after` (all kept ones for
    /// `None`, which a new client uses as its snapshot) taken under the same lock, so
    /// nothing falls between the two.
    pub fn subscribe(
        &self,
        after: Option<u64>,
    ) -> (Vec<PriceEvent>, broadcast::Receiver<PriceEvent>) {
        let state = self.state();
        let receiver = self.sender.subscribe();
        // Events after `after` are no longer all kept: a snapshot is the honest answer.
        let too_old = |after: u64| state.replay.front().is_some_and(|e| e.id > after + 1);
        let replay = match after.filter(|&after| !too_old(after)) {
            Some(after) => state
                .replay
                .iter()
                .filter(|e| e.id > after)
                .cloned()
                .collect(),
            // A snapshot: each symbol's latest event.
            None => {
                let mut latest: HashMap<&str, &PriceEvent> = HashMap::new();
                for event in &state.replay {
                    latest.insert(&event.price.symbol, event);
                }
                let mut events: Vec<PriceEvent> = latest.into_values().cloned().collect();
                events.sort_by_key(|e| e.id);
                events
            }
        };
        (replay, receiver)
    }

    /// Reads the stored latest prices on each announced price write and every
    /// [`POLL_EVERY`], and publishes changes, until
    /// `shutdown`; a change also drops kept responses. A failed read is logged and retried.
    pub fn spawn(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        responses: Arc<ResponseCache>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = Ticks::new(POLL_EVERY, shutdown)
                .woken_by(store.changes(), marketd_storage::Change::touches_prices);
            while ticks.next().await {
                let symbols = match store.assets().await {
                    Ok(assets) => assets.into_iter().map(|a| a.symbol).collect::<Vec<_>>(),
                    Err(err) => {
                        tracing::warn!(error = %err, "reading assets for the price stream failed");
                        continue;
                    }
                };
                match store.latest_prices(&symbols).await {
                    Ok(prices) => {
                        if self.offer(prices) > 0 {
                            responses.clear();
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "reading prices for the price stream failed");
                    }
                }
            }
        })
    }
}

/// Open streams per key, so one key cannot hold every connection.
#[derive(Debug, Default)]
pub struct StreamCounts {
    open: Mutex<HashMap<String, usize>>,
}

/// Most streams one key may hold open.
pub const STREAMS_PER_KEY: usize = 5;

impl StreamCounts {
    /// A slot for one more stream of `key_id`, or `None` at the cap.
    pub fn open(self: &Arc<Self>, key_id: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key_id.to_owned()).or_default();
        if *count >= STREAMS_PER_KEY {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            counts: Arc::clone(self),
            key_id: key_id.to_owned(),
        })
    }
}

/// Frees its stream's place when the stream ends, however it ends.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    key_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(symbol: &str, price: f64, as_of: i64) -> LatestPrice {
        LatestPrice {
            symbol: symbol.into(),
            price,
            open_24h: price,
            high_24h: price,
            low_24h: price,
            volume_24h: 1.0,
            as_of,
            source: "test".into(),
        }
    }

    #[test]
    fn only_changes_are_published_with_increasing_ids() {
        let hub = PriceHub::default();
        assert_eq!(
            hub.offer(vec![price("BTC", 1.0, 1), price("ETH", 2.0, 1)]),
            2
        );
        assert_eq!(
            hub.offer(vec![price("BTC", 1.0, 1), price("ETH", 2.5, 2)]),
            1
        );
        let (snapshot, _) = hub.subscribe(None);
        let ids: Vec<(u64, &str)> = snapshot
            .iter()
            .map(|e| (e.id, e.price.symbol.as_str()))
            .collect();
        assert_eq!(ids, [(1, "BTC"), (3, "ETH")], "each symbol's latest");
        let (resumed, _) = hub.subscribe(Some(1));
        assert_eq!(resumed.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3]);
        let (caught_up, _) = hub.subscribe(Some(3));
        assert!(caught_up.is_empty());
    }

    #[test]
    fn a_resume_from_beyond_the_ring_gets_a_snapshot() {
        let hub = PriceHub::default();
        for i in 0..(REPLAY as i64 + 10) {
            hub.offer(vec![price("BTC", i as f64, i)]);
        }
        let (resumed, _) = hub.subscribe(Some(3));
        assert_eq!(resumed.len(), 1);
        assert_eq!(resumed[0].price.price, (REPLAY + 9) as f64);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_so() {
        let hub = PriceHub::with_queue(4);
        let (_, mut receiver) = hub.subscribe(None);
        for i in 0..10 {
            hub.offer(vec![price("BTC", f64::from(i), i64::from(i))]);
        }
        assert!(matches!(
            receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        ));
    }

    #[test]
    fn streams_per_key_are_capped_and_freed() {
        let counts = Arc::new(StreamCounts::default());
        let slots: Vec<StreamSlot> = (0..STREAMS_PER_KEY)
            .map(|_| counts.open("k").unwrap())
            .collect();
        assert!(counts.open("k").is_none());
        assert!(counts.open("other").is_some(), "per key");
        drop(slots);
        assert!(counts.open("k").is_some());
    }
}
