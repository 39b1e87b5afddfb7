//! The Postgres backend, for production and for several replicas sharing one database.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt as _;
use marketd_domain::{Bar, Candle, Interval, LatestPrice};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{Connection as _, Executor, PgPool, Postgres, Row};

use crate::asset_cache::AssetCache;
use crate::changes::{ChangeFeed, Changes, listen_postgres};
use crate::model::{
    AssetRow, AssetSeriesRow, PriceRow, asset_from_row, asset_with_series_from_rows, bar_from_row,
    join_sources, price_from_row,
};
use crate::pool_waits::PoolWaits;
use crate::postgres_copy::{COPY_FROM_ROWS, SeriesRows, copy_candles};
use crate::postgres_pages;
use crate::{Asset, Backend, ConnectOptions, Result, SeriesInfo, Store, dedupe_candles, now_ms};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Rows per UNNEST insert: large enough to amortise round trips, small enough that one
/// statement's arrays stay a few hundred kilobytes.
const ROWS_PER_INSERT: usize = 5_000;

/// Bars reserved up front for a candle read: a page's worth, so filling it never
/// reallocates, while a caller's far larger limit does not reserve memory it may not use.
pub(crate) const MAX_PREALLOCATED_BARS: u32 = 5_000;

/// A pooled connection idle this long is pinged before use; a busier one is not.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    feed: ChangeFeed,
    waits: PoolWaits,
    assets: Arc<AssetCache>,
}

impl PgStore {
    /// The candles of a range with their sources, a row per candle: for the pages whose
    /// joined sources cannot be split apart.
    async fn read_candle_rows(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<Bar>> {
        let mut conn = self.conn().await?;
        let mut rows = sqlx::query(
            "SELECT open_time, open, high, low, close, volume, source FROM candles
             WHERE symbol = $1 AND period = $2 AND open_time >= $3 AND open_time < $4
             ORDER BY open_time LIMIT $5",
        )
        .bind(symbol)
        .bind(interval.as_str())
        .bind(start)
        .bind(end)
        .bind(i64::from(limit))
        .fetch(&mut *conn);
        let mut bars = Vec::with_capacity(limit.min(MAX_PREALLOCATED_BARS) as usize);
        while let Some(row) = rows.try_next().await? {
            bars.push(bar_from_row(row_values(&row)?));
        }
        Ok(bars)
    }

    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?.application_name("marketd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // sqlx's default pings every connection it hands out: a round trip to the
            // server before every query. Only a connection that sat idle may have been cut
            // off (a restarted server, a dropped socket); one just returned by a busy
            // request has not, and a query on a broken one fails and closes it anyway.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Every read here is a range of an index prefix wanted in index
                    // order. A bitmap scan reads the whole range and sorts it: as a
                    // generic plan (used after five executions) it made 500-row pages
                    // 8x slower (DESIGN §9), and even a custom plan picks it for ranges
                    // whose rows were written interleaved with other symbols. Without it
                    // prepared statements keep their cached plans instead of being
                    // planned again on every execution, as `force_custom_plan` did.
                    conn.execute("SET enable_bitmapscan = off").await?;
                    Ok(())
                })
            })
            // Connect lazily so the service starts, and reports itself unready, while the
            // database is down; the pool reconnects on its own when it returns.
            .connect_lazy_with(connect);
        Ok(Self {
            pool,
            feed: ChangeFeed::default(),
            waits: PoolWaits::default(),
            assets: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A pooled connection, its wait recorded.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.waits.time(self.pool.acquire()).await?)
    }

    /// A transaction on a pooled connection; the recorded wait includes its `BEGIN`.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.waits.time(self.pool.begin()).await?)
    }
}

/// Takes, before any candle is written, the series lock that the `candle_blocks`
/// triggers take after each statement. Two transactions writing one series then queue at
/// their start, rather than one holding the lock while it waits on a row the other wrote,
/// which Postgres would have to break as a deadlock.
async fn lock_series_blocks(
    conn: &mut PgConnection,
    symbol: &str,
    interval: Interval,
) -> Result<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('marketd candle blocks'), hashtext($1 || ' ' || $2))",
    )
    .bind(symbol)
    .bind(interval.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// The bookkeeping of a candle write, in its transaction: the series' range and revision
/// (which also announces the write) and the known gaps the candles fill. `candles` are
/// ascending and deduplicated.
pub(crate) async fn record_series_write(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    symbol: &str,
    interval: Interval,
    candles: &[Candle],
) -> Result<()> {
    let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO series (symbol, period, first_open_time, last_open_time,
             revision, signals_dirty_from)
         VALUES ($1, $2, $3, $4, 1, $3)
         ON CONFLICT (symbol, period) DO UPDATE SET
             first_open_time = LEAST(series.first_open_time, excluded.first_open_time),
             last_open_time = GREATEST(series.last_open_time, excluded.last_open_time),
             revision = series.revision + 1,
             signals_dirty_from = LEAST(series.signals_dirty_from, excluded.signals_dirty_from)",
    )
    .bind(symbol)
    .bind(interval.as_str())
    .bind(first.open_time)
    .bind(last.open_time)
    .execute(&mut **tx)
    .await?;
    crate::postgres_gaps::shrink_gaps(tx, symbol, interval, candles).await
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn upsert_asset(&self, asset: &Asset) -> Result<()> {
        sqlx::query(
            "INSERT INTO assets (symbol, name, quote, sources, created_at)
             VALUES ($1, $2, $3, $4, $5)
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
            "SELECT symbol, name, quote, sources, created_at FROM assets WHERE symbol = $1",
        )
        .bind(symbol)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(row.map(asset_from_row))
    }

    async fn series(&self, symbol: Option<&str>) -> Result<Vec<SeriesInfo>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT symbol, period, first_open_time, last_open_time FROM series
             WHERE $1::text IS NULL OR symbol = $1 ORDER BY symbol",
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
                     WHERE a.symbol = $1",
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
        if candles.is_empty() {
            return Ok(0);
        }
        let updated_at = now_ms();
        let mut tx = self.begin().await?;
        lock_series_blocks(&mut tx, symbol, interval).await?;
        let mut written = 0;
        if candles.len() >= COPY_FROM_ROWS {
            let rows = SeriesRows {
                symbol,
                interval,
                source,
                updated_at,
                candles: &candles,
            };
            written = copy_candles(&mut tx, &rows).await?;
        } else {
            for chunk in candles.chunks(ROWS_PER_INSERT) {
                let column = |f: fn(&Candle) -> f64| chunk.iter().map(f).collect::<Vec<f64>>();
                let open_times: Vec<i64> = chunk.iter().map(|c| c.open_time).collect();
                written += sqlx::query(
                    "INSERT INTO candles
                     (symbol, period, open_time, open, high, low, close, volume, source, updated_at)
                     SELECT $1, $2, t.open_time, t.open, t.high, t.low, t.close, t.volume, $3, $4
                     FROM UNNEST($5::bigint[], $6::float8[], $7::float8[], $8::float8[],
                                 $9::float8[], $10::float8[])
                          AS t(open_time, open, high, low, close, volume)
                     ON CONFLICT (symbol, period, open_time) DO UPDATE SET
                         open = excluded.open, high = excluded.high, low = excluded.low,
                         close = excluded.close, volume = excluded.volume,
                         source = excluded.source, updated_at = excluded.updated_at",
                )
                .bind(symbol)
                .bind(interval.as_str())
                .bind(source)
                .bind(updated_at)
                .bind(open_times)
                .bind(column(|c| c.open))
                .bind(column(|c| c.high))
                .bind(column(|c| c.low))
                .bind(column(|c| c.close))
                .bind(column(|c| c.volume))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        record_series_write(&mut tx, symbol, interval, &candles).await?;
        tx.commit().await?;
        self.assets.written();
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
        let page = postgres_pages::read_page(
            &mut *self.conn().await?,
            symbol,
            interval,
            start..end,
            limit,
            with_source,
        )
        .await?;
        match page {
            Some(bars) => Ok(bars),
            None => {
                self.read_candle_rows(symbol, interval, start, end, limit)
                    .await
            }
        }
    }

    async fn upsert_latest_price(&self, p: &LatestPrice) -> Result<()> {
        sqlx::query(
            "INSERT INTO latest_prices
             (symbol, price, open_24h, high_24h, low_24h, volume_24h, as_of, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
        Ok(())
    }

    async fn latest_prices(&self, symbols: &[String]) -> Result<Vec<LatestPrice>> {
        let rows: Vec<PriceRow> = sqlx::query_as(
            "SELECT symbol, price, open_24h, high_24h, low_24h, volume_24h, as_of, source
             FROM latest_prices WHERE symbol = ANY($1) ORDER BY symbol",
        )
        .bind(symbols)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(rows.into_iter().map(price_from_row).collect())
    }

    async fn try_lead(&self, job: &str) -> Result<Option<Box<dyn crate::Lease>>> {
        self.try_lead_pg(job).await
    }

    fn pool_stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
            waits: self.waits.stats(),
        }
    }

    async fn upsert_candle_batches(
        &self,
        symbol: &str,
        interval: Interval,
        source: &str,
        batches: tokio::sync::mpsc::Receiver<crate::CandleBatch>,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        lock_series_blocks(&mut tx, symbol, interval).await?;
        let written =
            crate::postgres_copy::stream_candles(tx, symbol, interval, source, batches).await;
        self.assets.written();
        written
    }

    fn changes(&self) -> Changes {
        self.feed.subscribe(|feed| {
            let options = (*self.pool.connect_options()).clone();
            tokio::spawn(listen_postgres(options, feed));
        })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The values of a row of [`PgStore::read_candle_rows`].
fn row_values(row: &PgRow) -> Result<crate::model::CandleRow> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
    ))
}
