//! Recently read assets with their series, so a candle read does not cost a second
//! round trip to look them up.
//!
//! Every candle page first needs its asset's stored series to choose between the native
//! interval and a derived one; on Postgres that lookup was a query of its own, as costly
//! as the page's. An entry is dropped when this store writes candles or assets, and
//! otherwise kept for [`FRESH_FOR`]: the longest a write by another process (a replica,
//! `marketd import`) goes unseen here. Only assets that exist are kept, so what clients
//! ask for cannot grow it beyond the tracked assets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Asset, Result, SeriesInfo};

/// How long an entry is served without a write of this store having dropped it.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most; far above any tracked asset list, a bound all the same.
const MAX_ENTRIES: usize = 4_096;

type AssetSeries = (Asset, Vec<SeriesInfo>);

#[derive(Debug, Default)]
pub(crate) struct AssetCache {
    /// Counts this store's writes: an entry read before the latest write is never kept.
    writes: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    read_at: Instant,
    value: AssetSeries,
}

impl AssetCache {
    /// The asset and series of `symbol` if read within [`FRESH_FOR`] and since the last
    /// write.
    fn get(&self, symbol: &str) -> Option<AssetSeries> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(symbol)
            .filter(|entry| entry.read_at.elapsed() < FRESH_FOR)
            .map(|entry| entry.value.clone())
    }

    /// The asset and series of `symbol`, from what is kept or else from `read`, which
    /// runs only on a miss and whose answer is then kept unless a write overtook it.
    pub(crate) async fn get_or_read(
        &self,
        symbol: &str,
        read: impl Future<Output = Result<Option<AssetSeries>>>,
    ) -> Result<Option<AssetSeries>> {
        if let Some(kept) = self.get(symbol) {
            return Ok(Some(kept));
        }
        // Taken before `read` is first polled, so a write committed while it runs is seen.
        let (writes, read_at) = (self.writes_so_far(), Instant::now());
        let found = read.await?;
        if let Some(found) = &found {
            self.keep(symbol, writes, read_at, found);
        }
        Ok(found)
    }

    /// To be taken before reading what [`Self::keep`] is then given.
    fn writes_so_far(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Keeps what was read after [`Self::writes_so_far`] returned `writes`, unless a write
    /// has happened since: the read may have missed it.
    fn keep(&self, symbol: &str, writes: u64, read_at: Instant, value: &AssetSeries) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that `written` clears under, so a write cannot land
        // between the check and the insert.
        if self.writes.load(Ordering::Acquire) != writes {
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(symbol) {
            entries.clear();
        }
        entries.insert(
            symbol.to_owned(),
            Entry {
                read_at,
                value: value.clone(),
            },
        );
    }

    /// Drops every entry: called once a write of candles or assets has committed.
    pub(crate) fn written(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.writes.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_domain::Interval;

    fn btc(last_open_time: i64) -> AssetSeries {
        let asset = Asset {
            symbol: "BTC".into(),
            name: "Bitcoin".into(),
            quote: "USD".into(),
            sources: vec!["binance".into()],
            created_at: 0,
        };
        let series = SeriesInfo {
            symbol: "BTC".into(),
            interval: Interval::H1,
            first_open_time: 0,
            last_open_time,
        };
        (asset, vec![series])
    }

    #[test]
    fn serves_what_it_kept_until_a_write() {
        let cache = AssetCache::default();
        assert_eq!(cache.get("BTC"), None);
        cache.keep("BTC", cache.writes_so_far(), Instant::now(), &btc(1));
        assert_eq!(cache.get("BTC"), Some(btc(1)));
        assert_eq!(cache.get("ETH"), None);
        cache.written();
        assert_eq!(cache.get("BTC"), None);
    }

    #[test]
    fn reads_only_on_a_miss_and_keeps_what_it_read() {
        let cache = AssetCache::default();
        let reads = std::cell::Cell::new(0);
        let read = |last| {
            let reads = &reads;
            async move {
                reads.set(reads.get() + 1);
                Ok(Some(btc(last)))
            }
        };
        let first = futures::executor::block_on(cache.get_or_read("BTC", read(1))).unwrap();
        let second = futures::executor::block_on(cache.get_or_read("BTC", read(2))).unwrap();
        assert_eq!(
            (first, second, reads.get()),
            (Some(btc(1)), Some(btc(1)), 1)
        );
        let missing =
            futures::executor::block_on(cache.get_or_read("ETH", async { Ok(None) })).unwrap();
        assert_eq!((missing, cache.get("ETH")), (None, None));
    }

    #[test]
    fn a_read_overtaken_by_a_write_is_not_kept() {
        let cache = AssetCache::default();
        let before = cache.writes_so_far();
        cache.written();
        cache.keep("BTC", before, Instant::now(), &btc(1));
        assert_eq!(cache.get("BTC"), None);
    }

    #[test]
    fn entries_expire() {
        let cache = AssetCache::default();
        let Some(long_ago) = Instant::now().checked_sub(FRESH_FOR) else {
            return;
        };
        cache.keep("BTC", cache.writes_so_far(), long_ago, &btc(1));
        assert_eq!(cache.get("BTC"), None);
    }

    #[test]
    fn stays_bounded() {
        let cache = AssetCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.keep(&format!("S{i}"), 0, Instant::now(), &btc(1));
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(cache.get(&format!("S{}", MAX_ENTRIES + 9)).is_some());
    }
}
