//! The latest known price of an asset, with its trailing 24-hour statistics.

/// A snapshot of an asset's market as one source last reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestPrice {
    pub symbol: String,
    pub price: f64,
    /// Price 24 hours before `as_of`, from which the change is derived.
    pub open_24h: f64,
    pub high_24h: f64,
    pub low_24h: f64,
    pub volume_24h: f64,
    /// When the source observed this price, Unix milliseconds.
    pub as_of: i64,
    pub source: String,
}

impl LatestPrice {
    pub fn change_24h(&self) -> f64 {
        self.price - self.open_24h
    }

    /// Percentage change over 24 hours; zero when there is no earlier price to compare.
    pub fn change_24h_pct(&self) -> f64 {
        if self.open_24h == 0.0 {
            0.0
        } else {
            (self.price - self.open_24h) / self.open_24h * 100.0
        }
    }
}
