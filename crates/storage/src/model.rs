//! Rows the Store returns besides candles and prices.

use marketd_domain::{Bar, Candle, Interval, LatestPrice};

/// A tracked asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    pub symbol: String,
    pub name: String,
    /// The currency prices are quoted in, `USD` unless a source says otherwise.
    pub quote: String,
    /// Sources that supply this asset, in priority order.
    pub sources: Vec<String>,
    pub created_at: i64,
}

/// What is stored natively for one (symbol, interval).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub symbol: String,
    pub interval: Interval,
    pub first_open_time: i64,
    pub last_open_time: i64,
}

pub(crate) fn join_sources(sources: &[String]) -> String {
    sources.join(",")
}

pub(crate) fn split_sources(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) type CandleRow = (i64, f64, f64, f64, f64, f64, String);

pub(crate) fn bar_from_row(row: CandleRow) -> Bar {
    let (open_time, open, high, low, close, volume, source) = row;
    Bar {
        candle: Candle {
            open_time,
            open,
            high,
            low,
            close,
            volume,
        },
        source,
        count: 1,
    }
}

pub(crate) type PriceRow = (String, f64, f64, f64, f64, f64, i64, String);

pub(crate) fn price_from_row(row: PriceRow) -> LatestPrice {
    let (symbol, price, open_24h, high_24h, low_24h, volume_24h, as_of, source) = row;
    LatestPrice {
        symbol,
        price,
        open_24h,
        high_24h,
        low_24h,
        volume_24h,
        as_of,
        source,
    }
}

pub(crate) type AssetRow = (String, String, String, String, i64);

/// An asset joined to one of its series; the series columns are NULL when none is stored.
pub(crate) type AssetSeriesRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// Folds the rows of an asset joined to its series; `None` when there are no rows.
pub(crate) fn asset_with_series_from_rows(
    rows: Vec<AssetSeriesRow>,
) -> Option<(Asset, Vec<SeriesInfo>)> {
    let mut asset = None;
    let mut series = Vec::with_capacity(rows.len());
    for (symbol, name, quote, sources, created_at, period, first, last) in rows {
        if let (Some(period), Some(first), Some(last)) = (period, first, last) {
            series.push((symbol.clone(), period, first, last));
        }
        if asset.is_none() {
            asset = Some(asset_from_row((symbol, name, quote, sources, created_at)));
        }
    }
    Some((asset?, crate::read::series_from_rows(series)))
}

pub(crate) fn asset_from_row(row: AssetRow) -> Asset {
    let (symbol, name, quote, sources, created_at) = row;
    Asset {
        symbol,
        name,
        quote,
        sources: split_sources(&sources),
        created_at,
    }
}
