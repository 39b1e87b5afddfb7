//! Known gaps: runs of closed buckets of a series that the sources asked for did not have.
//!
//! A gap is recorded rather than filled, because an invented candle could never be told
//! apart from a real one. Stored gaps never cover a stored candle: recording one leaves
//! out the buckets that hold candles, and writing candles shrinks, splits or removes the
//! gaps they land in. Both backends share the arithmetic here and differ only in SQL.

use async_trait::async_trait;
use marketd_domain::Interval;

use crate::Result;
use crate::model::{join_sources, split_sources};

/// A stored gap: buckets with open times in `[start, end)` that are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownGap {
    pub symbol: String,
    pub interval: Interval,
    /// Open time of the first missing bucket.
    pub start: i64,
    /// Open time just past the last missing bucket.
    pub end: i64,
    /// The sources that answered without these buckets, in the order they were asked.
    pub sources: Vec<String>,
    /// How many times the range was asked for and still missing; merged gaps keep the
    /// highest count.
    pub attempts: i64,
    /// When the buckets were first found missing, Unix ms.
    pub detected_at: i64,
    /// When the sources were last asked, Unix ms.
    pub checked_at: i64,
}

#[async_trait]
pub trait GapStore: Send + Sync + 'static {
    /// Records that `sources` were asked at `at` for the buckets of `[start, end)` and had
    /// none. The range merges with stored gaps it overlaps or touches, and buckets that
    /// hold a stored candle are left out of it. An empty range does nothing.
    async fn record_gap(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        sources: &[String],
        at: i64,
    ) -> Result<()>;

    /// Stored gaps of a series that overlap `[start, end)`, ascending, unclipped.
    async fn gaps(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<Vec<KnownGap>>;
}

/// `symbol, period, start_time, end_time, sources, attempts, detected_at, checked_at`.
pub(crate) type GapRow = (String, String, i64, i64, String, i64, i64, i64);

pub(crate) const GAP_COLUMNS: &str =
    "symbol, period, start_time, end_time, sources, attempts, detected_at, checked_at";

pub(crate) fn gaps_from_rows(rows: Vec<GapRow>) -> Vec<KnownGap> {
    rows.into_iter()
        .filter_map(
            |(symbol, period, start, end, sources, attempts, detected_at, checked_at)| {
                // A period this build does not know (written by a newer version) is skipped.
                let interval = period.parse().ok()?;
                Some(KnownGap {
                    symbol,
                    interval,
                    start,
                    end,
                    sources: split_sources(&sources),
                    attempts,
                    detected_at,
                    checked_at,
                })
            },
        )
        .collect()
}

pub(crate) fn sources_column(gap: &KnownGap) -> String {
    join_sources(&gap.sources)
}

/// The runs of `[start, end)` (buckets of `step`) that hold none of `filled`, which must
/// be ascending open times.
pub(crate) fn subtract(start: i64, end: i64, step: i64, filled: &[i64]) -> Vec<(i64, i64)> {
    let mut runs = Vec::new();
    let mut from = start;
    for &t in filled.iter().filter(|t| (start..end).contains(*t)) {
        if t > from {
            runs.push((from, t));
        }
        from = from.max(t.saturating_add(step));
    }
    if end > from {
        runs.push((from, end));
    }
    runs
}

/// What replaces `touching` (the stored gaps that overlap or touch the new range) when
/// `[start, end)` is recorded: one merged gap, minus the buckets in `filled`.
pub(crate) fn plan_record(new: &KnownGap, touching: &[KnownGap], filled: &[i64]) -> Vec<KnownGap> {
    let mut merged = new.clone();
    for old in touching {
        merged.start = merged.start.min(old.start);
        merged.end = merged.end.max(old.end);
        merged.attempts = merged.attempts.max(old.attempts + 1);
        merged.detected_at = merged.detected_at.min(old.detected_at);
    }
    // Sources in the order first asked: the stored gaps' (oldest first), then the new.
    let mut sources: Vec<String> = Vec::new();
    let mut by_age: Vec<&KnownGap> = touching.iter().collect();
    by_age.sort_by_key(|g| g.detected_at);
    for name in by_age
        .iter()
        .flat_map(|g| g.sources.iter())
        .chain(new.sources.iter())
    {
        if !sources.contains(name) {
            sources.push(name.clone());
        }
    }
    merged.sources = sources;
    split(&merged, filled)
}

/// `gap` without the buckets in `filled`: unchanged, shrunk, split or gone.
pub(crate) fn split(gap: &KnownGap, filled: &[i64]) -> Vec<KnownGap> {
    subtract(gap.start, gap.end, gap.interval.millis(), filled)
        .into_iter()
        .map(|(start, end)| KnownGap {
            start,
            end,
            ..gap.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracting_splits_runs_around_filled_buckets() {
        assert_eq!(subtract(0, 100, 10, &[]), [(0, 100)]);
        assert_eq!(subtract(0, 100, 10, &[0, 50, 90]), [(10, 50), (60, 90)]);
        assert_eq!(subtract(0, 30, 10, &[-10, 0, 10, 20, 30]), []);
        assert_eq!(subtract(20, 40, 10, &[0, 10, 50]), [(20, 40)]);
    }

    fn gap(start: i64, end: i64, sources: &[&str], attempts: i64, detected_at: i64) -> KnownGap {
        KnownGap {
            symbol: "BTC".into(),
            interval: Interval::M1,
            start,
            end,
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            attempts,
            detected_at,
            checked_at: detected_at,
        }
    }

    #[test]
    fn recording_merges_what_it_touches_and_keeps_the_first_detection() {
        const M: i64 = 60_000;
        let old = [
            gap(0, 2 * M, &["kraken"], 3, 10),
            gap(5 * M, 6 * M, &["binance"], 1, 20),
        ];
        let planned = plan_record(
            &gap(2 * M, 5 * M, &["binance", "kraken"], 1, 30),
            &old,
            &[3 * M],
        );
        let expected = |start, end| KnownGap {
            checked_at: 30,
            ..gap(start, end, &["kraken", "binance"], 4, 10)
        };
        assert_eq!(planned, [expected(0, 3 * M), expected(4 * M, 6 * M)]);
    }
}
