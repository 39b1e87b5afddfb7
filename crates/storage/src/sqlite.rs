//! The SQLite backend: one file, WAL mode, so readers never wait for the writer.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use marketd_domain::{Bar, Candle, Interval, LatestPrice};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use crate::asset_cache::AssetCache;
use crate::changes::{Change, ChangeFeed, Changes};
use crate::model::{
    AssetRow, AssetSeriesRow, PriceRow, asset_from_row, asset_with_series_from_rows, join_sources,
    price_from_row,
};
use crate::pool_waits::PoolWaits;
use crate::{Asset, Backend, ConnectOptions, Result, SeriesInfo, Store, dedupe_candles, now_ms};
use crate::{packed, sqlite_pages};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Rows per multi-row INSERT: 11 bound values each keeps us far below SQLite's limit of
/// 32,766 variables while amortising the statement overhead.
const ROWS_PER_INSERT: usize = 500;

/// Page cache per connection, in KiB.
const PAGE_CACHE_KIB: u32 = 256;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    feed: ChangeFeed,
    waits: PoolWaits,
    assets: Arc<AssetCache>,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only a power loss
            // can drop the last commits, which a re-ingest restores.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true)
            // Each connection keeps its own page cache (2 MiB by default) for as long as it
            // lives, and the operating system caches the file for all of them anyway: a
            // small one keeps an idle service small at no measured cost to reads.
            .pragma("cache_size", format!("-{PAGE_CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // A SQLite connection is a file handle on a worker thread: nothing can cut it
            // off while it is idle, so sqlx's ping before every use is only a round trip
            // to that thread.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            feed: ChangeFeed::default(),
            waits: PoolWaits::default(),
            assets: Arc::default(),
        })
    }

    /// Begins a write transaction that takes SQLite's write lock up front, so it waits on
    /// the busy timeout instead of failing on a snapshot conflict halfway through.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self
            .waits
            .time(self.pool.begin_with("BEGIN IMMEDIATE"))
            .await?)
    }

    /// A pooled connection, its wait recorded.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.waits.time(self.pool.acquire()).await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        let packed = sqlite_pages::pack_unpacked(&self.pool).await?;
        if packed > 0 {
            tracing::info!(candles = packed, "packed stored candles for page reads");
        }
        Ok(())
    }

    async fn upsert_asset(&self, asset: &Asset) -> Result<()> {
        sqlx::query(
            "INSERT INTO assets (symbol, name, quote, sources, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (symbol) DO UPDATE SET
                 name = excluded.name, quote = excluded.quote, sources = excluded.sources",
        )
        .bind(&asset.symbol)
        .bind(&asset.name)
        .bind(&asset.quote)
        .bind(join_sources(&asset.sources))
        .bind(asset.created_at)
        .execute(&mut *self.conn().await?)
        .await?;
        self.assets.written();
        Ok(())
    }

    async fn assets(&self) -> Result<Vec<Asset>> {
        let rows: Vec<AssetRow> = sqlx::query_as(
            "SELECT symbol, name, quote, sources, created_at FROM assets ORDER BY symbol",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(rows.into_iter().map(asset_from_row).collect())
    }

    async fn asset(&self, symbol: &str) -> Result<Option<Asset>> {
        let row: Option<AssetRow> = sqlx::query_as(
            "SELECT symbol, name, quote, sources, created_at FROM assets WHERE symbol = ?",
        )
        .bind(symbol)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(row.map(asset_from_row))
    }

    async fn series(&self, symbol: Option<&str>) -> Result<Vec<SeriesInfo>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT symbol, period, first_open_time, last_open_time FROM series
             WHERE ?1 IS NULL OR symbol = ?1 ORDER BY symbol",
        )
        .bind(symbol)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(crate::read::series_from_rows(rows))
    }

    async fn asset_with_series(&self, symbol: &str) -> Result<Option<(Asset, Vec<SeriesInfo>)>> {
        self.assets
            .get_or_read(symbol, async {
                let rows: Vec<AssetSeriesRow> = sqlx::query_as(
                    "SELECT a.symbol, a.name, a.quote, a.sources, a.created_at,
                            s.period, s.first_open_time, s.last_open_time
                     FROM assets a LEFT JOIN series s ON s.symbol = a.symbol
                     WHERE a.symbol = ?",
                )
                .bind(symbol)
                .fetch_all(&mut *self.conn().await?)
                .await?;
                Ok(asset_with_series_from_rows(rows))
            })
            .await
    }

    async fn upsert_candles(
        &self,
        symbol: &str,
        interval: Interval,
        source: &str,
        candles: &[Candle],
    ) -> Result<u64> {
        let candles = dedupe_candles(candles);
        let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
            return Ok(0);
        };
        let updated_at = now_ms();
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for chunk in candles.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO candles
                 (symbol, period, open_time, open, high, low, close, volume, source, updated_at,
                  packed) ",
            );
            insert.push_values(chunk, |mut row, c| {
                row.push_bind(symbol)
                    .push_bind(interval.as_str())
                    .push_bind(c.open_time)
                    .push_bind(c.open)
                    .push_bind(c.high)
                    .push_bind(c.low)
                    .push_bind(c.close)
                    .push_bind(c.volume)
                    .push_bind(source)
                    .push_bind(updated_at)
                    .push_bind(packed::pack(c).to_vec());
            });
            insert.push(
                " ON CONFLICT (symbol, period, open_time) DO UPDATE SET
                    open = excluded.open, high = excluded.high, low = excluded.low,
                    close = excluded.close, volume = excluded.volume,
                    source = excluded.source, updated_at = excluded.updated_at,
                    packed = excluded.packed",
            );
            written += insert.build().execute(&mut *tx).await?.rows_affected();
        }
        sqlx::query(
            "INSERT INTO series (symbol, period, first_open_time, last_open_time,
                 revision, signals_dirty_from)
             VALUES (?1, ?2, ?3, ?4, 1, ?3)
             ON CONFLICT (symbol, period) DO UPDATE SET
                 first_open_time = min(series.first_open_time, excluded.first_open_time),
                 last_open_time = max(series.last_open_time, excluded.last_open_time),
                 revision = series.revision + 1,
                 signals_dirty_from = min(
                     coalesce(series.signals_dirty_from, excluded.signals_dirty_from),
                     excluded.signals_dirty_from)",
        )
        .bind(symbol)
        .bind(interval.as_str())
        .bind(first.open_time)
        .bind(last.open_time)
        .execute(&mut *tx)
        .await?;
        crate::sqlite_gaps::shrink_gaps(&mut tx, symbol, interval, &candles).await?;
        tx.commit().await?;
        self.assets.written();
        self.feed.publish(Change::Candles);
        Ok(written)
    }

    async fn read_candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
        with_source: bool,
    ) -> Result<Vec<Bar>> {
        let sql = if with_source {
            sqlite_pages::PAGE_WITH_SOURCES
        } else {
            sqlite_pages::PAGE
        };
        let page_query = |sql| {
            sqlx::query(sql)
                .bind(symbol)
                .bind(interval.as_str())
                .bind(start)
                .bind(end)
                .bind(i64::from(limit))
        };
        let mut conn = self.conn().await?;
        let page = page_query(sql).fetch_one(&mut *conn).await?;
        if let Some(bars) = sqlite_pages::bars_from_page(&page, with_source)? {
            return Ok(bars);
        }
        let text = page_query(sqlite_pages::PAGE_AS_TEXT)
            .fetch_one(&mut *conn)
            .await?;
        sqlite_pages::bars_from_text(text.try_get(0)?)
    }

    async fn upsert_latest_price(&self, p: &LatestPrice) -> Result<()> {
        sqlx::query(
            "INSERT INTO latest_prices
             (symbol, price, open_24h, high_24h, low_24h, volume_24h, as_of, source)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (symbol) DO UPDATE SET
                 price = excluded.price, open_24h = excluded.open_24h,
                 high_24h = excluded.high_24h, low_24h = excluded.low_24h,
                 volume_24h = excluded.volume_24h, as_of = excluded.as_of,
                 source = excluded.source
             WHERE excluded.as_of >= latest_prices.as_of",
        )
        .bind(&p.symbol)
        .bind(p.price)
        .bind(p.open_24h)
        .bind(p.high_24h)
        .bind(p.low_24h)
        .bind(p.volume_24h)
        .bind(p.as_of)
        .bind(&p.source)
        .execute(&mut *self.conn().await?)
        .await?;
        self.feed.publish(Change::Prices);
        Ok(())
    }

    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>> {
        if symbols.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT symbol, price, open_24h, high_24h, low_24h, volume_24h, as_of, source
             FROM latest_prices WHERE symbol IN (",
        );
        let mut list = query.separated(", ");
        for symbol in symbols {
            list.push_bind(symbol);
        }
        query.push(") ORDER BY symbol");
        let rows: Vec<PriceRow> = query
            .build_query_as()
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows.into_iter().map(price_from_row).collect())
    }

    async fn try_lead(&self, _job: &str) -> Result<Option<Box<dyn crate::Lease>>> {
        Ok(Some(Box::new(crate::leader::SoleLease)))
    }

    fn pool_stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
            waits: self.waits.stats(),
        }
    }

    fn changes(&self) -> Changes {
        // Only this process's writes are announced: no other process can reach it.
        self.feed.subscribe(|_| {})
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[tokio::test]
    async fn every_pooled_connection_keeps_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let options = ConnectOptions {
            max_connections: 2,
            ..ConnectOptions::default()
        };
        let store = SqliteStore::connect(&url, &options).await.unwrap();
        let mut first = store.conn().await.unwrap();
        let mut second = store.conn().await.unwrap();
        for conn in [&mut first, &mut second] {
            let kib: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            // A negative size is in KiB; SQLite's own default is -2000.
            assert_eq!(kib, -i64::from(PAGE_CACHE_KIB));
        }
    }
}
