//! The window and cursor semantics of every candle-paged resource (`/v1/ohlcv`,
//! `/v1/indicators`), in one place so they cannot drift apart: buckets opening in
//! `[start, end)`, `start` aligned up to the interval, defaults counted back from the
//! bucket in progress, and cursors that carry the window so later pages never shift.

use marketd_domain::timestamp::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use marketd_domain::{Interval, Symbol};

use super::{cursor, params};
use crate::error::ApiError;

/// The resolved window: buckets opening in `[start, end)`, `start` aligned.
#[derive(Debug)]
pub(super) struct Window {
    pub start: i64,
    pub end: i64,
    /// Where this page starts (a cursor moves it past `start`).
    pub page_start: i64,
}

/// The window parameters of a request, as given.
#[derive(Debug)]
pub(super) struct WindowQuery<'a> {
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    /// `None` when the cursor does not apply (streams ignore it).
    pub cursor: Option<&'a str>,
    /// Buckets in the window when `start` is not given.
    pub default_span: i64,
}

pub(super) fn resolve(
    query: &WindowQuery<'_>,
    symbol: &Symbol,
    interval: Interval,
    now: i64,
) -> Result<Window, ApiError> {
    let step = interval.millis();
    // An empty `cursor=` is what a client sends for "no cursor yet".
    if let Some(raw) = query.cursor.filter(|c| !c.is_empty()) {
        return from_cursor(raw, symbol, interval);
    }
    let mut errors = Vec::new();
    let start = query
        .start
        .map(|s| params::timestamp("start", s))
        .transpose();
    let end = query.end.map(|s| params::timestamp("end", s)).transpose();
    let (start, end) = match (start, end) {
        (Ok(s), Ok(e)) => (s, e),
        (s, e) => {
            errors.extend(s.err());
            errors.extend(e.err());
            return Err(ApiError::Validation(errors));
        }
    };
    let end = end.unwrap_or_else(|| interval.bucket_start(now).saturating_add(step));
    if let (Some(explicit_start), true) = (start, query.end.is_some()) {
        // A window too short to hold a bucket boundary is merely empty; a reversed one is
        // a mistake.
        if explicit_start >= end {
            return Err(ApiError::InvalidRange {
                field: "start",
                message: "must be before `end`",
            });
        }
    }
    let start = start.unwrap_or_else(|| {
        interval
            .bucket_start(end.saturating_sub(1))
            .saturating_sub((query.default_span - 1) * step)
    });
    let start = interval.ceil(start.max(MIN_TIMESTAMP_MS));
    Ok(Window {
        start,
        end: end.max(start),
        page_start: start,
    })
}

fn from_cursor(raw: &str, symbol: &Symbol, interval: Interval) -> Result<Window, ApiError> {
    let fields = cursor::decode(raw, 5).ok_or(ApiError::InvalidCursor)?;
    let number = |i: usize| {
        fields[i]
            .parse::<i64>()
            .map_err(|_| ApiError::InvalidCursor)
    };
    let (start, end, page_start) = (number(2)?, number(3)?, number(4)?);
    // Cursors are not signed, so their numbers get the same bounds as `start`/`end`
    // parameters: arithmetic on a forged extreme must never overflow.
    let in_range =
        |t: i64| (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS + Interval::W1.millis()).contains(&t);
    let consistent = [start, end, page_start].into_iter().all(in_range)
        && fields[0] == symbol.as_str()
        && fields[1] == interval.as_str()
        && start <= page_start
        && page_start < end
        && interval.bucket_start(page_start) == page_start;
    if !consistent {
        return Err(ApiError::InvalidCursor);
    }
    Ok(Window {
        start,
        end,
        page_start,
    })
}

/// The cursor of the page of `window` that starts at `next`.
pub(super) fn next_cursor(
    symbol: &Symbol,
    interval: Interval,
    window: &Window,
    next: i64,
) -> String {
    cursor::encode(&[
        symbol.as_str(),
        interval.as_str(),
        &window.start.to_string(),
        &window.end.to_string(),
        &next.to_string(),
    ])
}
