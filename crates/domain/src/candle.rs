//! Candles (OHLCV bars) and the rules a candle must satisfy before we store it.

/// One OHLCV bar. `open_time` is the bucket's start in Unix milliseconds (UTC); the bucket
/// ends, exclusively, one interval later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Why a candle was refused. The messages are shown to people importing data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CandleError {
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
    #[error("volume must not be negative")]
    NegativeVolume,
    #[error("high is below low")]
    HighBelowLow,
    #[error("open or close lies outside the high-low range")]
    OutsideRange,
    #[error("open_time is not aligned to the start of a {0} bucket")]
    Misaligned(&'static str),
}

impl Candle {
    /// Checks the invariants every stored candle keeps, so no reader ever has to.
    pub fn validate(&self) -> Result<(), CandleError> {
        for (name, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
        ] {
            if !value.is_finite() {
                return Err(CandleError::NotFinite(name));
            }
        }
        for (name, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if value <= 0.0 {
                return Err(CandleError::NotPositive(name));
            }
        }
        if self.volume < 0.0 {
            return Err(CandleError::NegativeVolume);
        }
        if self.high < self.low {
            return Err(CandleError::HighBelowLow);
        }
        if self.open.max(self.close) > self.high || self.open.min(self.close) < self.low {
            return Err(CandleError::OutsideRange);
        }
        Ok(())
    }

    /// Validates the candle and that it starts exactly on a bucket boundary of `interval`.
    pub fn validate_for(&self, interval: crate::Interval) -> Result<(), CandleError> {
        self.validate()?;
        if interval.bucket_start(self.open_time) != self.open_time {
            return Err(CandleError::Misaligned(interval.as_str()));
        }
        Ok(())
    }
}

/// A stored candle together with where it came from and how many stored candles it
/// summarises: 1 for a natively stored candle, more when derived from a finer interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub candle: Candle,
    pub source: String,
    pub count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Candle {
        Candle {
            open_time: 0,
            open: 10.0,
            high: 12.0,
            low: 9.0,
            close: 11.0,
            volume: 5.0,
        }
    }

    #[test]
    fn accepts_a_sound_candle() {
        assert_eq!(good().validate(), Ok(()));
        assert_eq!(
            Candle {
                volume: 0.0,
                ..good()
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn rejects_broken_candles() {
        assert_eq!(
            Candle {
                high: 8.0,
                ..good()
            }
            .validate(),
            Err(CandleError::HighBelowLow)
        );
        assert_eq!(
            Candle {
                open: 13.0,
                ..good()
            }
            .validate(),
            Err(CandleError::OutsideRange)
        );
        assert_eq!(
            Candle {
                low: -1.0,
                ..good()
            }
            .validate(),
            Err(CandleError::NotPositive("low"))
        );
        assert_eq!(
            Candle {
                volume: -1.0,
                ..good()
            }
            .validate(),
            Err(CandleError::NegativeVolume)
        );
        assert_eq!(
            Candle {
                close: f64::NAN,
                ..good()
            }
            .validate(),
            Err(CandleError::NotFinite("close"))
        );
    }

    #[test]
    fn checks_alignment() {
        let c = Candle {
            open_time: 60_000,
            ..good()
        };
        assert!(c.validate_for(crate::Interval::M1).is_ok());
        assert_eq!(
            c.validate_for(crate::Interval::H1),
            Err(CandleError::Misaligned("1h"))
        );
    }
}
