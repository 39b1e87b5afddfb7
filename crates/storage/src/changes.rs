//! Announcements of changed market data, so caches and streams react to a write at once
//! instead of at their next poll.
//!
//! On Postgres the announcements come from the database itself: triggers on `series` and
//! `latest_prices` call `pg_notify` in the writing transaction, so every process sharing
//! the database hears about every committed write, whoever made it. One listening
//! connection per process, opened on the first subscription, forwards them. On SQLite
//! only this process's own writes are announced; other processes' writes are still found
//! by the pollers.
//!
//! Announcements are hints, never the data: a receiver rereads the store. A receiver that
//! fell behind, or a listener that lost its connection (and so may have missed
//! announcements), gets [`Change::Missed`] and should assume everything changed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;

/// The Postgres channel the triggers of migration 000006 notify.
pub const CHANNEL: &str = "marketd_changes";

/// Announcements a slow receiver may fall behind before it gets [`Change::Missed`].
const QUEUE: usize = 64;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Candles of some series were written.
    Candles,
    /// A latest price was written.
    Prices,
    /// Announcements may have been lost; anything may have changed.
    Missed,
}

impl Change {
    /// Reads a notification payload: `candles:<symbol>:<interval>` or `prices:<symbol>`.
    pub fn from_payload(payload: &str) -> Self {
        match payload.split(':').next() {
            Some("candles") => Change::Candles,
            Some("prices") => Change::Prices,
            _ => Change::Missed,
        }
    }

    /// Whether a reader of candles must look again.
    pub fn touches_candles(self) -> bool {
        matches!(self, Change::Candles | Change::Missed)
    }

    /// Whether a reader of latest prices must look again.
    pub fn touches_prices(self) -> bool {
        matches!(self, Change::Prices | Change::Missed)
    }
}

/// Receives announcements; see the module documentation.
#[derive(Debug)]
pub struct Changes {
    receiver: broadcast::Receiver<Change>,
}

impl Changes {
    /// The next announcement, or `None` once the store is gone. Falling behind yields
    /// [`Change::Missed`] rather than an error: the caller's answer is the same.
    pub async fn next(&mut self) -> Option<Change> {
        match self.receiver.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Missed),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The sending side, owned by a store.
#[derive(Debug, Clone)]
pub(crate) struct ChangeFeed {
    sender: broadcast::Sender<Change>,
    /// Started on the first subscription, so one-shot commands never open a listener.
    listening: Arc<OnceLock<()>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(QUEUE).0,
            listening: Arc::new(OnceLock::new()),
        }
    }
}

impl ChangeFeed {
    pub(crate) fn publish(&self, change: Change) {
        // No receivers is the usual case for command-line tools: nothing to tell.
        let _ = self.sender.send(change);
    }

    /// Subscribes, running `start_listener` (with a sender for it) on the first call only.
    pub(crate) fn subscribe(&self, start_listener: impl FnOnce(ChangeFeed)) -> Changes {
        let receiver = self.sender.subscribe();
        self.listening.get_or_init(|| start_listener(self.clone()));
        Changes { receiver }
    }

    /// Whether anyone still listens; a listener task stops when no one does.
    pub(crate) fn has_receivers(&self) -> bool {
        self.sender.receiver_count() > 0
    }
}

/// How long a Postgres listener waits before connecting again after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Forwards the database's notifications to `feed` until the pool closes. Runs on its
/// own single-connection pool so it never takes a connection requests need.
pub(crate) async fn listen_postgres(options: sqlx::postgres::PgConnectOptions, feed: ChangeFeed) {
    use sqlx::postgres::{PgListener, PgPoolOptions};

    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let mut connected = false;
    while feed.has_receivers() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                if connected {
                    tracing::warn!(error = %err, "change listener lost Postgres; reconnecting");
                }
                connected = false;
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "LISTEN failed; retrying");
            tokio::time::sleep(RECONNECT_AFTER).await;
            continue;
        }
        if connected {
            tracing::info!("change listener reconnected to Postgres");
        }
        connected = true;
        // Whatever was written while no one listened is unknown.
        feed.publish(Change::Missed);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    feed.publish(Change::from_payload(notification.payload()))
                }
                // The connection dropped; try_recv reconnects on the next call, and
                // announcements made meanwhile are gone.
                Ok(None) => feed.publish(Change::Missed),
                Err(err) => {
                    tracing::warn!(error = %err, "change listener failed; reconnecting");
                    break;
                }
            }
            if !feed.has_receivers() {
                return;
            }
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(Change::from_payload("candles:BTC:1h"), Change::Candles);
        assert_eq!(Change::from_payload("prices:ETH"), Change::Prices);
        assert_eq!(Change::from_payload("something else"), Change::Missed);
        assert!(Change::Missed.touches_candles() && Change::Missed.touches_prices());
        assert!(!Change::Prices.touches_candles());
    }

    #[tokio::test]
    async fn a_lagging_receiver_is_told_it_missed_some() {
        let feed = ChangeFeed::default();
        let mut changes = feed.subscribe(|_| {});
        for _ in 0..QUEUE + 1 {
            feed.publish(Change::Prices);
        }
        assert_eq!(changes.next().await, Some(Change::Missed));
    }
}
