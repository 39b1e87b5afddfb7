//! `GET /v1/ohlcv/{symbol}`: candles at any interval, paginated as JSON or streamed whole
//! as CSV or NDJSON.
//!
//! Semantics every row states: `open_time` is the bucket's start and `close_time` its
//! exclusive end (the next bucket's `open_time`); `is_closed` is false for the bucket
//! still in progress; `count` is how many stored candles the row summarises.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use marketd_domain::{Bar, Interval, Symbol, write_rfc3339_ms};
use marketd_storage::{CandleRange, KnownGap, SourceChoice, read_bars, stream_bars};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::window::{self, Window, WindowQuery};
use super::{IntervalName, params};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::wire::{PAGE_START, Timestamp, end_page};

const DEFAULT_LIMIT: u32 = 500;
/// Most rows one CSV or NDJSON response streams.
pub const MAX_STREAM_ROWS: i64 = 1_000_000;
/// Rows fetched per round trip while streaming.
const STREAM_PAGE: u32 = 5_000;
/// Missing buckets listed by open time; beyond this only `missing_count` grows.
const MAX_MISSING_LISTED: usize = 100;

/// Query of `GET /v1/ohlcv/{symbol}`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OhlcvQuery {
    /// Candle interval (default `1h`).
    pub interval: Option<IntervalName>,
    /// First bucket to include: RFC 3339 or Unix milliseconds. A bucket is included when
    /// it opens at or after `start`. Default: `limit` buckets before `end` (streams: the
    /// most a stream may carry).
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-01T00:00:00Z")]
    pub start: Option<String>,
    /// Exclusive end: buckets opening before it are included. RFC 3339 or Unix
    /// milliseconds. Default: just after the bucket in progress.
    #[param(value_type = Option<super::params::TimestampInput>, inline, example = "2024-01-02T00:00:00Z")]
    pub end: Option<String>,
    /// Candles per page, 1 to 1000 (default 500). Ignored by CSV and NDJSON streams.
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page. It carries the window, so `start` and `end`
    /// are ignored when it is given.
    pub cursor: Option<String>,
}

/// One candle.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandleOut {
    /// Start of the bucket (inclusive).
    pub open_time: Timestamp,
    /// End of the bucket (exclusive): `open_time` plus the interval.
    pub close_time: Timestamp,
    /// False while the bucket is still in progress; its values may then change.
    pub is_closed: bool,
    #[schema(example = 42_283.58)]
    pub open: f64,
    #[schema(example = 42_554.57)]
    pub high: f64,
    #[schema(example = 42_261.02)]
    pub low: f64,
    #[schema(example = 42_475.23)]
    pub close: f64,
    /// Traded volume in units of the asset.
    #[schema(example = 1_271.68)]
    pub volume: f64,
    /// Stored candles aggregated into this row: 1 when stored natively; for a derived
    /// interval, fewer than the bucket holds means source candles are missing.
    #[schema(example = 1)]
    pub count: u32,
    /// Where the data came from (`mixed` when a derived bucket spans several sources).
    #[schema(example = "binance")]
    pub source: String,
}

/// Completeness of the returned page.
#[derive(Debug, Serialize, ToSchema)]
pub struct OhlcvMeta {
    #[schema(example = "BTC")]
    pub symbol: String,
    pub interval: IntervalName,
    /// The stored interval rows were read from; `null` when nothing is stored that could
    /// supply this interval.
    pub source_interval: Option<IntervalName>,
    /// True when rows were aggregated from a finer stored interval.
    pub derived: bool,
    /// Start of the window this page covers (inclusive).
    pub window_start: Timestamp,
    /// End of the window this page covers (exclusive); buckets that have not opened yet
    /// are never counted as expected.
    pub window_end: Timestamp,
    /// Buckets in the window.
    pub expected: u64,
    /// Buckets returned.
    pub returned: u64,
    /// Buckets in the window with no data. Nothing is forward-filled or invented.
    pub missing_count: u64,
    /// Open times of the first missing buckets (at most 100).
    pub missing: Vec<Timestamp>,
    /// Known gaps in the window, clipped to it: ranges of `source_interval` buckets that
    /// the named sources were asked for and did not have. They stay empty; buckets
    /// missing outside them may simply not have been fetched yet.
    pub gaps: Vec<GapOut>,
}

/// A range of buckets no source asked has.
#[derive(Debug, Serialize, ToSchema)]
pub struct GapOut {
    /// Open time of the first missing bucket (inclusive).
    pub start: Timestamp,
    /// Open time just past the last missing bucket (exclusive).
    pub end: Timestamp,
    /// The sources that answered without these buckets, in the order they were asked.
    #[schema(example = json!(["binance", "coinbase"]))]
    pub sources: Vec<String>,
    /// How many times the range was asked for and still missing.
    #[schema(example = 1)]
    pub attempts: u64,
    /// When the buckets were first found missing.
    pub detected_at: Timestamp,
    /// When the sources were last asked.
    pub checked_at: Timestamp,
}

fn gap_out(gap: KnownGap, from: i64, to: i64) -> GapOut {
    GapOut {
        start: Timestamp(gap.start.max(from)),
        end: Timestamp(gap.end.min(to)),
        sources: gap.sources,
        attempts: u64::try_from(gap.attempts).unwrap_or(0),
        detected_at: Timestamp(gap.detected_at),
        checked_at: Timestamp(gap.checked_at),
    }
}

/// A page of candles.
#[derive(Debug, Serialize, ToSchema)]
pub struct OhlcvResponse {
    pub data: Vec<CandleOut>,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
    pub meta: OhlcvMeta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Ndjson,
}

fn negotiate(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let position = |needle: &str| accept.find(needle).unwrap_or(usize::MAX);
    let (csv, ndjson, json) = (
        position("text/csv"),
        position("application/x-ndjson"),
        position("application/json"),
    );
    if csv < ndjson && csv < json {
        Format::Csv
    } else if ndjson < json {
        Format::Ndjson
    } else {
        Format::Json
    }
}

fn resolve_window(
    query: &OhlcvQuery,
    symbol: &Symbol,
    interval: Interval,
    now: i64,
    format: Format,
) -> Result<Window, ApiError> {
    let default_span = match format {
        Format::Json => i64::from(query.limit.unwrap_or(DEFAULT_LIMIT)),
        Format::Csv | Format::Ndjson => MAX_STREAM_ROWS,
    };
    let window = window::resolve(
        &WindowQuery {
            start: query.start.as_deref(),
            end: query.end.as_deref(),
            cursor: query.cursor.as_deref().filter(|_| format == Format::Json),
            default_span,
        },
        symbol,
        interval,
        now,
    )?;
    if format != Format::Json && (window.end - window.start) / interval.millis() > MAX_STREAM_ROWS {
        return Err(ApiError::RangeTooLarge(format!(
            "a stream carries at most {MAX_STREAM_ROWS} candles; narrow `start`..`end`"
        )));
    }
    Ok(window)
}

/// Counts and lists the buckets of `[from, to)` that `bars` (ascending, aligned) lack.
fn missing_buckets(bars: &[Bar], from: i64, to: i64, step: i64) -> (u64, u64, Vec<Timestamp>) {
    let expected = if to > from {
        ((to - from + step - 1) / step) as u64
    } else {
        0
    };
    let mut listed = Vec::new();
    let mut count: u64 = 0;
    let mut next_expected = from;
    let mut note_gap = |gap_from: i64, gap_to: i64, listed: &mut Vec<Timestamp>| {
        if gap_to > gap_from {
            count += ((gap_to - gap_from) / step) as u64;
            let mut t = gap_from;
            while t < gap_to && listed.len() < MAX_MISSING_LISTED {
                listed.push(Timestamp(t));
                t += step;
            }
        }
    };
    for bar in bars {
        note_gap(next_expected, bar.candle.open_time.min(to), &mut listed);
        next_expected = bar.candle.open_time + step;
    }
    let tail_end = from + expected as i64 * step;
    note_gap(next_expected, tail_end, &mut listed);
    (expected, count, listed)
}

/// Candles (OHLCV).
///
/// Candles of one asset at any interval, ascending by `open_time`. Intervals that are not
/// stored are derived from the finest stored interval that covers the window (open =
/// first, high = max, low = min, close = last, volume = sum; `count` tells how many stored
/// candles each row holds). `meta` reports how many buckets the page's window should
/// hold, how many it returned and which are missing: nothing is forward-filled. Missing
/// buckets that every source was asked for and lacks are listed in `meta.gaps`.
///
/// Pages hold up to `limit` candles; follow `next_cursor` (or the `Link` header) to walk
/// a range, which returns every candle exactly once. With `Accept: text/csv` or
/// `Accept: application/x-ndjson` the whole window (up to 1,000,000 candles) is streamed
/// instead. Requires scope `prices:read`.
#[utoipa::path(get, path = "/v1/ohlcv/{symbol}", tag = "ohlcv", operation_id = "ohlcv_get",
    security(("bearer" = ["prices:read"]), ("api_key" = ["prices:read"])),
    params(
        ("symbol" = String, Path, description = "Asset symbol, e.g. `BTC`", pattern = "^[A-Za-z0-9]{1,15}$"),
        OhlcvQuery,
    ),
    responses(
        (status = 200, description = "Candles",
            headers(("link" = String, description = "`<…>; rel=\"next\"` when there is a next page")),
            content(
                (OhlcvResponse = "application/json"),
                (String = "text/csv", example = "open_time,close_time,is_closed,open,high,low,close,volume,count,source\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,true,42283.58,42554.57,42261.02,42475.23,1271.68108,1,binance\n"),
                (String = "application/x-ndjson"),
            )),
        (status = 400, description = "Malformed query or cursor, or `start` not before `end`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No tracked asset has this symbol", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters, or a stream range above 1,000,000 candles", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ohlcv_get(
    State(state): State<AppState>,
    ApiPath(raw_symbol): ApiPath<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<OhlcvQuery>,
) -> Result<Response, ApiError> {
    let symbol =
        params::symbol("symbol", &raw_symbol).map_err(|e| ApiError::Validation(vec![e]))?;
    let interval: Interval = query.interval.unwrap_or(IntervalName::H1).into();
    let format = negotiate(&headers);
    let now = state.now();
    let window = resolve_window(&query, &symbol, interval, now, format)?;

    let Some((_, stored)) = state.store.asset_with_series(symbol.as_str()).await? else {
        return Err(ApiError::UnknownSymbol(symbol.to_string()));
    };
    let choice = SourceChoice::pick(&stored, symbol.as_str(), interval, window.page_start);
    let range = CandleRange {
        symbol: symbol.to_string(),
        interval,
        start: window.page_start,
        end: window.end,
    };
    if format != Format::Json {
        return Ok(stream_response(&state, range, choice, format, now));
    }

    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let page = read_bars(state.store.as_ref(), &range, choice, limit).await?;
    let step = interval.millis();
    let open_bucket_end = interval.bucket_start(now).saturating_add(step);
    let page_end = page
        .next_start
        .unwrap_or_else(|| window.end.min(open_bucket_end));
    let (expected, missing_count, missing) =
        missing_buckets(&page.bars, window.page_start, page_end, step);
    let derived = matches!(choice, SourceChoice::Derived(_));
    let gaps = match choice.source_interval(interval) {
        // A native page with every bucket present cannot overlap a gap, so it costs no
        // query; a derived bucket may lack some of its finer candles and still be present.
        Some(stored) if missing_count > 0 || derived => state
            .store
            .gaps(symbol.as_str(), stored, window.page_start, page_end)
            .await?
            .into_iter()
            .map(|g| gap_out(g, window.page_start, page_end))
            .collect(),
        _ => Vec::new(),
    };
    let next_cursor = page
        .next_start
        .map(|next| window::next_cursor(&symbol, interval, &window, next));
    let meta = OhlcvMeta {
        symbol: symbol.to_string(),
        interval: interval.into(),
        source_interval: choice.source_interval(interval).map(IntervalName::from),
        derived,
        window_start: Timestamp(window.page_start),
        window_end: Timestamp(page_end.max(window.page_start)),
        expected,
        returned: page.bars.len() as u64,
        missing_count,
        missing,
        gaps,
    };
    let mut response_headers = HeaderMap::new();
    if let Some(next) = &next_cursor {
        let link = format!(
            "</v1/ohlcv/{symbol}?interval={interval}&limit={limit}&cursor={next}>; rel=\"next\""
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response_headers.insert(header::LINK, value);
        }
    }
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = page_json(&page.bars, step, now, next_cursor.as_deref(), &meta)
        .map_err(|e| ApiError::Internal(format!("serialising a candle page: {e}")))?;
    Ok((response_headers, body).into_response())
}

/// The body of an [`OhlcvResponse`], byte for byte what serialising it gives. The rows are
/// written directly: through serde they cost more than reading them from the database.
fn page_json(
    bars: &[Bar],
    step: i64,
    now: i64,
    next_cursor: Option<&str>,
    meta: &OhlcvMeta,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024 + bars.len() * JSON_BYTES_PER_CANDLE);
    out.extend_from_slice(PAGE_START);
    let mut previous_close = None;
    for (i, bar) in bars.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        previous_close = Some(write_candle_json(&mut out, bar, step, now, previous_close)?);
    }
    end_page(&mut out, next_cursor, meta)?;
    Ok(out)
}

/// A candle's JSON is about 210 bytes; a page's buffer is sized so it is not regrown.
const JSON_BYTES_PER_CANDLE: usize = 240;

/// Where a candle's `close_time` was written into a page, so the next candle, which
/// opens at that instant when the series has no gap, copies the text instead of
/// formatting the time again.
#[derive(Debug, Clone)]
struct WrittenTime {
    millis: i64,
    at: std::ops::Range<usize>,
}

/// One [`CandleOut`] as JSON, as its `Serialize` derive writes it. `previous_close` is
/// what the previous call returned for the same `out`.
fn write_candle_json(
    out: &mut Vec<u8>,
    bar: &Bar,
    step: i64,
    now: i64,
    previous_close: Option<WrittenTime>,
) -> serde_json::Result<WrittenTime> {
    let c = &bar.candle;
    let close_time = c.open_time.saturating_add(step);
    out.extend_from_slice(b"{\"open_time\":\"");
    match previous_close {
        Some(previous) if previous.millis == c.open_time => out.extend_from_within(previous.at),
        _ => write_rfc3339_ms(out, c.open_time),
    }
    out.extend_from_slice(b"\",\"close_time\":\"");
    let close_at = out.len();
    write_rfc3339_ms(out, close_time);
    let written_close = WrittenTime {
        millis: close_time,
        at: close_at..out.len(),
    };
    out.extend_from_slice(if close_time <= now {
        b"\",\"is_closed\":true"
    } else {
        b"\",\"is_closed\":false"
    });
    let mut float = zmij::Buffer::new();
    for (key, value) in [
        (&b",\"open\":"[..], c.open),
        (b",\"high\":", c.high),
        (b",\"low\":", c.low),
        (b",\"close\":", c.close),
        (b",\"volume\":", c.volume),
    ] {
        out.extend_from_slice(key);
        if value.is_finite() {
            out.extend_from_slice(float.format_finite(value).as_bytes());
        } else {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b",\"count\":");
    out.extend_from_slice(itoa::Buffer::new().format(bar.count).as_bytes());
    out.extend_from_slice(b",\"source\":");
    serde_json::to_writer(&mut *out, &bar.source)?;
    out.push(b'}');
    Ok(written_close)
}

const CSV_HEADER: &[u8] =
    b"open_time,close_time,is_closed,open,high,low,close,volume,count,source\n";

fn write_csv_row(out: &mut Vec<u8>, bar: &Bar, step: i64, now: i64) {
    let c = &bar.candle;
    let mut float = ryu::Buffer::new();
    write_rfc3339_ms(out, c.open_time);
    out.push(b',');
    write_rfc3339_ms(out, c.open_time + step);
    out.extend_from_slice(if c.open_time + step <= now {
        b",true"
    } else {
        b",false"
    });
    for value in [c.open, c.high, c.low, c.close, c.volume] {
        out.push(b',');
        out.extend_from_slice(float.format_finite(value).trim_end_matches(".0").as_bytes());
    }
    let _ = write!(out, ",{},{}", bar.count, bar.source);
    out.push(b'\n');
}

fn stream_response(
    state: &AppState,
    range: CandleRange,
    choice: SourceChoice,
    format: Format,
    now: i64,
) -> Response {
    let step = range.interval.millis();
    let store = Arc::clone(&state.store);
    let pages = stream_bars(store, range, choice, STREAM_PAGE, MAX_STREAM_ROWS as u64);
    let header_chunk = (format == Format::Csv)
        .then(|| Ok::<Bytes, std::io::Error>(Bytes::from_static(CSV_HEADER)));
    let rows = pages.map(move |page| match page {
        Ok(bars) => {
            let mut out = Vec::with_capacity(bars.len() * 128);
            let mut previous_close = None;
            for bar in bars {
                match format {
                    Format::Csv => write_csv_row(&mut out, &bar, step, now),
                    _ => {
                        previous_close =
                            write_candle_json(&mut out, &bar, step, now, previous_close).ok();
                        out.push(b'\n');
                    }
                }
            }
            Ok(Bytes::from(out))
        }
        Err(err) => {
            // The status line is gone; aborting the body tells the client the stream is
            // incomplete rather than letting it mistake a short file for the whole range.
            tracing::error!(error = %err, "candle stream failed");
            Err(std::io::Error::other("candle stream failed"))
        }
    });
    let body = Body::from_stream(futures::stream::iter(header_chunk).chain(rows));
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        _ => "application/x-ndjson",
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_domain::Candle;

    fn bar(open_time: i64) -> Bar {
        Bar {
            candle: Candle {
                open_time,
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 0.0,
            },
            source: "t".into(),
            count: 1,
        }
    }

    #[test]
    fn counts_missing_buckets_anywhere_in_the_window() {
        let bars = [bar(20), bar(30), bar(60)];
        let (expected, count, listed) = missing_buckets(&bars, 0, 80, 10);
        assert_eq!(expected, 8);
        assert_eq!(count, 5);
        let listed: Vec<i64> = listed.into_iter().map(|t| t.0).collect();
        assert_eq!(listed, vec![0, 10, 40, 50, 70]);
        assert_eq!(missing_buckets(&[], 0, 0, 10), (0, 0, vec![]));
    }

    #[test]
    fn caps_the_listed_missing_buckets() {
        let (expected, count, listed) = missing_buckets(&[], 0, 1_000_000, 10);
        assert_eq!(
            (expected, count, listed.len()),
            (100_000, 100_000, MAX_MISSING_LISTED)
        );
    }

    fn candle_out(bar: Bar, step: i64, now: i64) -> CandleOut {
        let close_time = bar.candle.open_time + step;
        CandleOut {
            open_time: Timestamp(bar.candle.open_time),
            close_time: Timestamp(close_time),
            is_closed: close_time <= now,
            open: bar.candle.open,
            high: bar.candle.high,
            low: bar.candle.low,
            close: bar.candle.close,
            volume: bar.candle.volume,
            count: bar.count,
            source: bar.source,
        }
    }

    #[test]
    fn pages_are_written_as_serde_would_write_them() {
        // Contiguous candles, then one after a gap: a copied open time and a formatted one.
        let mut bars = vec![bar(0), bar(3_600_000), bar(7_200_000), bar(18_000_000)];
        bars[0].candle.open = 42_283.58;
        bars[0].candle.volume = 1e-7;
        bars[1].candle.high = 1e21;
        bars[1].candle.low = f64::NAN;
        bars[2].source = "quote\"back\\slash\u{1}".into();
        bars[2].count = 60;
        let meta = || OhlcvMeta {
            symbol: "BTC".into(),
            interval: IntervalName::H1,
            source_interval: Some(IntervalName::H1),
            derived: false,
            window_start: Timestamp(0),
            window_end: Timestamp(10_800_000),
            expected: 3,
            returned: 3,
            missing_count: 0,
            missing: vec![],
            gaps: vec![],
        };
        let (step, now) = (3_600_000, 9_000_000);
        for next_cursor in [None, Some("abc")] {
            let written = page_json(&bars, step, now, next_cursor, &meta()).unwrap();
            let expected = serde_json::to_vec(&OhlcvResponse {
                data: bars
                    .iter()
                    .cloned()
                    .map(|b| candle_out(b, step, now))
                    .collect(),
                next_cursor: next_cursor.map(str::to_owned),
                meta: meta(),
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn negotiates_by_first_mention() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            negotiate(&h)
        };
        assert_eq!(accept("text/csv"), Format::Csv);
        assert_eq!(accept("application/x-ndjson"), Format::Ndjson);
        assert_eq!(accept("application/json, text/csv"), Format::Json);
        assert_eq!(accept("*/*"), Format::Json);
        assert_eq!(negotiate(&HeaderMap::new()), Format::Json);
    }
}
