//! Missing buckets asked for again, and what nobody has recorded as a gap.
//!
//! After a backfill reports missing closed buckets, each run of them is asked for once
//! more from the source that left it out (a page can come back short for reasons of the
//! moment), then from each fallback in priority order. Every candle found is stored under
//! the source that supplied it. What is still missing after every source that answered is
//! recorded in the store as a known gap, never filled: an invented candle would be
//! indistinguishable from a real one.

use marketd_domain::Interval;
use marketd_storage::{Store, StoreError};

use crate::backfill::{Gap, ensure_asset};
use crate::source::{Source, SourceError, candles_in_range, now_ms};

/// Stored candles read per round trip while looking for missing buckets.
const SCAN_PAGE: u32 = 10_000;

/// What one repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Runs of missing closed buckets found in the range.
    pub missing: Vec<Gap>,
    /// Candles found on the second asking, by source, in the order asked.
    pub filled: Vec<(&'static str, u64)>,
    /// Runs no source that answered had, now recorded as known gaps.
    pub recorded: Vec<Gap>,
    /// Buckets in `recorded`.
    pub recorded_buckets: u64,
}

/// Looks for missing closed buckets of `symbol`'s `interval` series in `[start, end)`, asks
/// `sources` for them in order, stores what they have and records the rest as gaps.
///
/// A source that fails (rather than answering without the buckets) is logged and skipped:
/// it has said nothing about them. A run is recorded only when at least one source
/// answered for it, and it names the sources that did. Only a store failure is an error.
pub async fn repair_gaps(
    store: &dyn Store,
    sources: &[&dyn Source],
    symbol: &str,
    interval: Interval,
    start: i64,
    end: i64,
) -> Result<RepairReport, StoreError> {
    let mut report = RepairReport::default();
    // Closed buckets only: the open one may simply have no trade yet.
    let end = end.min(interval.bucket_start(now_ms()));
    let start = interval.ceil(start.max(0));
    if start >= end {
        return Ok(report);
    }
    report.missing = missing_runs(store, symbol, interval, start, end).await?;
    for run in report.missing.clone() {
        let mut left = vec![run];
        let mut answered: Vec<String> = Vec::new();
        for source in sources {
            if left.is_empty() {
                break;
            }
            let mut found = Vec::new();
            let mut failed = false;
            for part in &left {
                match candles_in_range(*source, symbol, interval, part.start, part.end).await {
                    Ok(page) => {
                        for refused in &page.rejected {
                            tracing::warn!(
                                source = source.name(),
                                symbol,
                                interval = interval.as_str(),
                                reason = %refused.reason,
                                "candle refused"
                            );
                        }
                        found.extend(
                            page.candles
                                .into_iter()
                                .filter(|c| (part.start..part.end).contains(&c.open_time)),
                        );
                    }
                    // A prices-only source (CoinGecko) listed for a series has nothing to say.
                    Err(SourceError::Unsupported) => {
                        failed = true;
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(
                            source = source.name(),
                            symbol,
                            interval = interval.as_str(),
                            error = %err,
                            "asking again for missing candles failed"
                        );
                        failed = true;
                        break;
                    }
                }
            }
            if !found.is_empty() {
                ensure_asset(store, symbol, source.name()).await?;
                let written = store
                    .upsert_candles(symbol, interval, source.name(), &found)
                    .await?;
                add_filled(&mut report, source.name(), written);
                let filled: Vec<i64> = found.iter().map(|c| c.open_time).collect();
                left = left
                    .iter()
                    .flat_map(|g| without(*g, interval, &filled))
                    .collect();
            }
            if !failed {
                answered.push(source.name().to_owned());
            }
        }
        if answered.is_empty() {
            continue;
        }
        let at = now_ms();
        for gap in left {
            store
                .record_gap(symbol, interval, gap.start, gap.end, &answered, at)
                .await?;
            tracing::info!(
                symbol,
                interval = interval.as_str(),
                start = gap.start,
                end = gap.end,
                sources = answered.join(","),
                "recorded a gap: no source has these candles"
            );
            report.recorded_buckets +=
                u64::try_from((gap.end - gap.start) / interval.millis()).unwrap_or(0);
            report.recorded.push(gap);
        }
    }
    Ok(report)
}

fn add_filled(report: &mut RepairReport, source: &'static str, written: u64) {
    match report.filled.iter_mut().find(|(name, _)| *name == source) {
        Some((_, count)) => *count += written,
        None => report.filled.push((source, written)),
    }
}

/// The runs of buckets in `[start, end)` with no stored candle, read page by page.
async fn missing_runs(
    store: &dyn Store,
    symbol: &str,
    interval: Interval,
    start: i64,
    end: i64,
) -> Result<Vec<Gap>, StoreError> {
    let step = interval.millis();
    let mut runs = Vec::new();
    let mut expected = start;
    let mut from = start;
    loop {
        let page = store
            .candles(symbol, interval, from, end, SCAN_PAGE)
            .await?;
        for bar in &page {
            if bar.candle.open_time > expected {
                runs.push(Gap {
                    start: expected,
                    end: bar.candle.open_time,
                });
            }
            expected = expected.max(bar.candle.open_time + step);
        }
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE as usize => from = last.candle.open_time + 1,
            _ => break,
        }
    }
    if end > expected {
        runs.push(Gap {
            start: expected,
            end,
        });
    }
    Ok(runs)
}

/// `gap` without the buckets in `filled`.
fn without(gap: Gap, interval: Interval, filled: &[i64]) -> Vec<Gap> {
    let mut runs = Vec::new();
    let mut from = gap.start;
    let mut inside: Vec<i64> = filled
        .iter()
        .copied()
        .filter(|t| (gap.start..gap.end).contains(t))
        .collect();
    inside.sort_unstable();
    for t in inside {
        if t > from {
            runs.push(Gap {
                start: from,
                end: t,
            });
        }
        from = from.max(t + interval.millis());
    }
    if gap.end > from {
        runs.push(Gap {
            start: from,
            end: gap.end,
        });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn filled_buckets_split_a_gap() {
        let gap = Gap {
            start: 0,
            end: 10 * MIN,
        };
        let g = |s: i64, e: i64| Gap {
            start: s * MIN,
            end: e * MIN,
        };
        assert_eq!(
            without(gap, Interval::M1, &[5 * MIN, 0, 20 * MIN]),
            [g(1, 5), g(6, 10)]
        );
        assert_eq!(without(gap, Interval::M1, &[]), [gap]);
    }
}
