//! Candle intervals and the UTC-epoch-aligned buckets they define.

use std::fmt;
use std::str::FromStr;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-01 was a Thursday; weekly buckets start on Mondays, the first at 1970-01-05.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

/// A candle interval. Buckets are aligned to the UTC epoch; weeks start Monday 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    M1,
    M5,
    M15,
    H1,
    H4,
    D1,
    W1,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval; use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w")]
pub struct UnknownInterval;

impl Interval {
    /// Every interval, finest first.
    pub const ALL: [Interval; 7] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::H4,
        Interval::D1,
        Interval::W1,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::H4 => "4h",
            Interval::D1 => "1d",
            Interval::W1 => "1w",
        }
    }

    pub const fn millis(self) -> i64 {
        match self {
            Interval::M1 => MINUTE_MS,
            Interval::M5 => 5 * MINUTE_MS,
            Interval::M15 => 15 * MINUTE_MS,
            Interval::H1 => HOUR_MS,
            Interval::H4 => 4 * HOUR_MS,
            Interval::D1 => DAY_MS,
            Interval::W1 => WEEK_MS,
        }
    }

    const fn origin(self) -> i64 {
        match self {
            Interval::W1 => FIRST_MONDAY_MS,
            _ => 0,
        }
    }

    /// The open time of the bucket that contains `t` (Unix milliseconds).
    pub fn bucket_start(self, t: i64) -> i64 {
        let origin = self.origin();
        origin + (t - origin).div_euclid(self.millis()) * self.millis()
    }

    /// The first bucket open time at or after `t`.
    pub fn ceil(self, t: i64) -> i64 {
        let start = self.bucket_start(t);
        if start == t { t } else { start + self.millis() }
    }

    /// True when every bucket of `self` is exactly a whole number of `coarser` buckets'
    /// sub-buckets, so candles of `self` can be aggregated into `coarser` without splitting.
    pub fn divides(self, coarser: Interval) -> bool {
        coarser.millis() % self.millis() == 0 && coarser.origin() % self.millis() == 0
    }
}

impl FromStr for Interval {
    type Err = UnknownInterval;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or(UnknownInterval)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>().unwrap(), i);
        }
        assert!("2h".parse::<Interval>().is_err());
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-03 (a Wednesday) 12:00 UTC falls in the week that began Monday 2024-01-01.
        let wednesday = 1_704_283_200_000;
        assert_eq!(Interval::W1.bucket_start(wednesday), 1_704_067_200_000);
        // Before the first Monday of the epoch the alignment still holds.
        assert_eq!(Interval::W1.bucket_start(0), -3 * DAY_MS);
    }

    #[test]
    fn buckets_align_to_epoch() {
        assert_eq!(Interval::H4.bucket_start(5 * HOUR_MS + 1), 4 * HOUR_MS);
        assert_eq!(Interval::M15.bucket_start(-1), -15 * MINUTE_MS);
        assert_eq!(Interval::H1.ceil(HOUR_MS), HOUR_MS);
        assert_eq!(Interval::H1.ceil(HOUR_MS + 1), 2 * HOUR_MS);
    }

    #[test]
    fn divisibility_respects_week_origin() {
        assert!(Interval::M1.divides(Interval::W1));
        assert!(Interval::D1.divides(Interval::W1));
        assert!(Interval::H4.divides(Interval::D1));
        assert!(!Interval::D1.divides(Interval::H4));
    }
}
