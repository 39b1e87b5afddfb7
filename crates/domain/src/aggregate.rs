//! Deriving coarser candles from finer ones: open = first, high = max, low = min,
//! close = last, volume = sum, each bucket aligned as `Interval::bucket_start` says.

use crate::candle::{Bar, Candle};
use crate::interval::Interval;

/// Folds an ascending stream of finer bars into `target` buckets. A bucket with missing
/// finer candles is still emitted, and its `count` tells how many it holds.
#[derive(Debug)]
pub struct Aggregator {
    target: Interval,
    current: Option<Bar>,
}

/// Marker for a bucket built from bars of more than one source.
pub const MIXED_SOURCE: &str = "mixed";

impl Aggregator {
    pub fn new(target: Interval) -> Self {
        Self {
            target,
            current: None,
        }
    }

    /// Adds the next bar (ascending open_time). Returns the previous bucket once a bar of
    /// a later bucket arrives.
    pub fn push(&mut self, bar: Bar) -> Option<Bar> {
        let bucket = self.target.bucket_start(bar.candle.open_time);
        match &mut self.current {
            Some(current) if current.candle.open_time == bucket => {
                let c = &mut current.candle;
                c.high = c.high.max(bar.candle.high);
                c.low = c.low.min(bar.candle.low);
                c.close = bar.candle.close;
                c.volume += bar.candle.volume;
                current.count += bar.count;
                if current.source != bar.source && current.source != MIXED_SOURCE {
                    current.source = MIXED_SOURCE.to_owned();
                }
                None
            }
            _ => {
                let started = Bar {
                    candle: Candle {
                        open_time: bucket,
                        ..bar.candle
                    },
                    source: bar.source,
                    count: bar.count,
                };
                self.current.replace(started)
            }
        }
    }

    /// The last, possibly partial, bucket.
    pub fn finish(self) -> Option<Bar> {
        self.current
    }
}

/// Aggregates a whole ascending slice at once.
pub fn aggregate(target: Interval, bars: impl IntoIterator<Item = Bar>) -> Vec<Bar> {
    let mut aggregator = Aggregator::new(target);
    let mut out: Vec<Bar> = bars
        .into_iter()
        .filter_map(|b| aggregator.push(b))
        .collect();
    out.extend(aggregator.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(open_time: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar {
            candle: Candle {
                open_time,
                open: o,
                high: h,
                low: l,
                close: c,
                volume: v,
            },
            source: "test".into(),
            count: 1,
        }
    }

    #[test]
    fn folds_minutes_into_five_minute_buckets() {
        let m = 60_000;
        let bars = vec![
            bar(0, 10.0, 11.0, 9.0, 10.5, 1.0),
            bar(m, 10.5, 13.0, 10.0, 12.0, 2.0),
            bar(4 * m, 12.0, 12.5, 8.0, 9.0, 3.0),
            // next bucket, with minutes 6..9 missing
            bar(5 * m, 9.0, 9.5, 8.5, 9.2, 4.0),
        ];
        let out = aggregate(Interval::M5, bars);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].candle,
            Candle {
                open_time: 0,
                open: 10.0,
                high: 13.0,
                low: 8.0,
                close: 9.0,
                volume: 6.0
            }
        );
        assert_eq!(out[0].count, 3);
        assert_eq!(out[1].candle.open_time, 5 * m);
        assert_eq!(out[1].count, 1);
    }

    #[test]
    fn marks_mixed_sources() {
        let mut b = bar(60_000, 1.0, 1.0, 1.0, 1.0, 1.0);
        b.source = "other".into();
        let out = aggregate(Interval::M5, vec![bar(0, 1.0, 1.0, 1.0, 1.0, 1.0), b]);
        assert_eq!(out[0].source, MIXED_SOURCE);
    }
}
