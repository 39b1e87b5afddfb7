//! History from an exchange into the store, one upstream page at a time.
//!
//! Each page is written as soon as it arrives, so an interrupted run loses at most the page
//! in flight, and a rerun carries on from the last stored candle instead of starting over.
//! Buckets the upstream did not return are reported as gaps and left empty: a made-up
//! candle would be indistinguishable from a real one once stored. [`crate::repair`] asks
//! for them again.

use std::fmt;

use marketd_domain::{Interval, format_rfc3339_ms};
use marketd_storage::{Asset, Store, StoreError};

use crate::source::{Source, SourceError, now_ms};

/// How many gap ranges a report keeps; the count covers all of them.
pub const MAX_GAP_RANGES: usize = 10;

/// Where a backfill stands after each stored page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillProgress {
    /// The first open time this run asked for.
    pub start: i64,
    /// Where this run stops: the end of the range, clipped at the bucket open now.
    pub end: i64,
    /// Everything before this open time has been fetched.
    pub reached: i64,
    /// Candles written so far.
    pub written: u64,
    pub pages: u64,
}

/// A run of missing closed buckets, open times in `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start: i64,
    pub end: i64,
}

/// What one backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// The first open time fetched: `since`, or the last stored candle when resuming.
    pub start: i64,
    /// The end of the walked range, exclusive.
    pub end: i64,
    /// The run carried on from an earlier one's last stored candle.
    pub resumed: bool,
    /// Candles written, the re-fetched last candle of an earlier run included.
    pub written: u64,
    /// Rows the upstream sent that failed a check; each is logged with its reason.
    pub rejected: u64,
    pub pages: u64,
    /// Closed buckets in the walked range that the upstream did not return.
    pub gap_buckets: u64,
    /// The first [`MAX_GAP_RANGES`] runs of missing buckets.
    pub gaps: Vec<Gap>,
    /// The open time of the last candle written, if any.
    pub last_written: Option<i64>,
}

/// What stopped a backfill.
#[derive(Debug, thiserror::Error)]
pub enum BackfillCause {
    #[error("the upstream failed: {0}")]
    Source(#[from] SourceError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// A backfill that stopped early. What was written before stays written, and a rerun
/// resumes from [`BackfillError::resume_from`].
#[derive(Debug)]
pub struct BackfillError {
    pub cause: BackfillCause,
    /// The last open time written: a rerun starts there. `None` when this run wrote nothing
    /// and nothing was stored before, so a rerun starts from `since` again.
    pub resume_from: Option<i64>,
    /// What the run did before it stopped.
    pub report: BackfillReport,
}

impl fmt::Display for BackfillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {} candles stored", self.cause, self.report.written)?;
        match self.resume_from {
            Some(at) => write!(f, "; rerun to resume from {}", format_rfc3339_ms(at)),
            None => write!(f, "; rerun to start again"),
        }
    }
}

impl std::error::Error for BackfillError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Fetches `symbol`'s `interval` candles with open times in `[since, until)` from `source`
/// into `store`, calling `progress` after each stored page.
///
/// When the store already holds candles of the series later than `since`, the run starts
/// at the last of them: it may have been stored while its bucket was still open. The asset
/// row is created (or gains `source`) with the first stored page.
pub async fn backfill(
    store: &dyn Store,
    source: &dyn Source,
    symbol: &str,
    interval: Interval,
    since: i64,
    until: i64,
    mut progress: impl FnMut(BackfillProgress),
) -> Result<BackfillReport, BackfillError> {
    let mut report = BackfillReport::default();
    let fail =
        |cause: BackfillCause, report: BackfillReport, resume_from: Option<i64>| BackfillError {
            cause,
            resume_from,
            report,
        };

    let stored_last = match last_stored(store, symbol, interval).await {
        Ok(last) => last,
        Err(err) => return Err(fail(err.into(), report, None)),
    };

    let now = now_ms();
    // The bucket open at `now` is served but not final; later ones do not exist yet. Both
    // ends are clamped before rounding so that rounding cannot overflow.
    let open_bucket_end = interval.bucket_start(now) + interval.millis();
    let end = interval.ceil(until.clamp(0, open_bucket_end));
    let (start, resumed) = match stored_last {
        Some(last) if last > since => (last, true),
        _ => (interval.ceil(since.clamp(0, open_bucket_end)), false),
    };
    report.start = start;
    report.end = end.max(start);
    report.resumed = resumed;
    // Closed buckets only: the open one may simply have no trade yet.
    let closed_end = end.min(interval.bucket_start(now));
    let mut expected = start;
    let mut from = start;
    let mut asset_ready = false;

    while from < end {
        let page = match source.candles(symbol, interval, from, end).await {
            Ok(page) => page,
            Err(err) => {
                let resume_from = report.last_written.or(stored_last);
                return Err(fail(err.into(), report, resume_from));
            }
        };
        report.pages += 1;
        for refused in &page.rejected {
            tracing::warn!(
                source = source.name(),
                symbol,
                interval = interval.as_str(),
                index = refused.index,
                reason = %refused.reason,
                "candle refused"
            );
        }
        report.rejected += page.rejected.len() as u64;

        if !page.candles.is_empty() {
            // Only once the source has served the symbol, so that a symbol it does not list
            // leaves no asset behind.
            if !asset_ready {
                if let Err(err) = ensure_asset(store, symbol, source.name()).await {
                    return Err(fail(err.into(), report, stored_last));
                }
                asset_ready = true;
            }
            let written = match store
                .upsert_candles(symbol, interval, source.name(), &page.candles)
                .await
            {
                Ok(written) => written,
                Err(err) => {
                    let resume_from = report.last_written.or(stored_last);
                    return Err(fail(err.into(), report, resume_from));
                }
            };
            report.written += written;
            for candle in &page.candles {
                note_gap(
                    &mut report,
                    interval,
                    expected,
                    candle.open_time.min(closed_end),
                );
                expected = expected.max(candle.open_time + interval.millis());
            }
            report.last_written = page.candles.last().map(|c| c.open_time);
        }

        let next = match page.next_start {
            // A cursor that does not move would loop forever.
            Some(next) if next > from => next,
            _ => end,
        };
        // Everything before the page's end has been asked for; what did not come is a gap.
        note_gap(&mut report, interval, expected, next.min(closed_end));
        expected = expected.max(next);
        from = next;
        progress(BackfillProgress {
            start,
            end: report.end,
            reached: from.min(end),
            written: report.written,
            pages: report.pages,
        });
    }
    Ok(report)
}

/// The open time of the last stored candle of the series, if any.
async fn last_stored(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
) -> Result<Option<i64>, StoreError> {
    Ok(store
        .series(Some(symbol))
        .await?
        .into_iter()
        .find(|s| s.interval == interval)
        .map(|s| s.last_open_time))
}

/// Creates the asset if it is missing and adds `source` to its sources if it is not
/// listed; a name and quote set by someone else are kept.
pub(crate) async fn ensure_asset(
    store: &dyn Store,
    symbol: &str,
    source: &str,
) -> Result<(), StoreError> {
    let asset = match store.asset(symbol).await? {
        Some(asset) if asset.sources.iter().any(|s| s == source) => return Ok(()),
        Some(mut asset) => {
            asset.sources.push(source.to_owned());
            asset
        }
        None => Asset {
            symbol: symbol.to_owned(),
            name: symbol.to_owned(),
            quote: "USD".to_owned(),
            sources: vec![source.to_owned()],
            created_at: now_ms(),
        },
    };
    store.upsert_asset(&asset).await
}

/// Records the buckets in `[from, to)` as missing, merging with a gap that ends at `from`.
fn note_gap(report: &mut BackfillReport, interval: Interval, from: i64, to: i64) {
    if to <= from {
        return;
    }
    report.gap_buckets += u64::try_from((to - from) / interval.millis()).unwrap_or(0);
    let full = report.gaps.len() >= MAX_GAP_RANGES;
    match report.gaps.last_mut() {
        Some(last) if last.end == from => last.end = to,
        _ if !full => report.gaps.push(Gap {
            start: from,
            end: to,
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn adjacent_gaps_merge_and_the_list_is_capped() {
        let mut report = BackfillReport::default();
        note_gap(&mut report, Interval::M1, 0, 2 * MIN);
        note_gap(&mut report, Interval::M1, 2 * MIN, 3 * MIN);
        note_gap(&mut report, Interval::M1, 5 * MIN, 5 * MIN);
        assert_eq!(
            report.gaps,
            [Gap {
                start: 0,
                end: 3 * MIN
            }]
        );
        for i in 0..20 {
            note_gap(
                &mut report,
                Interval::M1,
                (10 + 2 * i) * MIN,
                (11 + 2 * i) * MIN,
            );
        }
        assert_eq!(report.gaps.len(), MAX_GAP_RANGES);
        assert_eq!(report.gap_buckets, 23);
    }
}
