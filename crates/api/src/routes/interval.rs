//! The interval as it appears on the wire and in the OpenAPI document.

use marketd_domain::Interval;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A candle interval. Buckets align to the UTC epoch; weeks start Monday 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum IntervalName {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

impl From<IntervalName> for Interval {
    fn from(name: IntervalName) -> Self {
        match name {
            IntervalName::M1 => Interval::M1,
            IntervalName::M5 => Interval::M5,
            IntervalName::M15 => Interval::M15,
            IntervalName::H1 => Interval::H1,
            IntervalName::H4 => Interval::H4,
            IntervalName::D1 => Interval::D1,
            IntervalName::W1 => Interval::W1,
        }
    }
}

impl From<Interval> for IntervalName {
    fn from(interval: Interval) -> Self {
        match interval {
            Interval::M1 => IntervalName::M1,
            Interval::M5 => IntervalName::M5,
            Interval::M15 => IntervalName::M15,
            Interval::H1 => IntervalName::H1,
            Interval::H4 => IntervalName::H4,
            Interval::D1 => IntervalName::D1,
            Interval::W1 => IntervalName::W1,
        }
    }
}
