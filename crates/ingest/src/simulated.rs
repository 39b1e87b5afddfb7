//! A deterministic simulated market: every price is a pure function of the symbol and the
//! time, so a restarted demo continues the same history and tests can predict it.
//!
//! Hourly opens follow a geometric random walk from a fixed origin. Inside each hour the
//! path is a Brownian bridge sampled once a minute from that hour's open to the next
//! hour's open; between two minute points the live price moves linearly, so every price
//! the live feed has shown stays inside the candle that is finally stored.

use marketd_domain::{Candle, Interval, LatestPrice};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const STEPS_PER_HOUR: usize = 60;
/// 2024-01-01T00:00:00Z: the walk starts here, so any later instant has one fixed price.
const ORIGIN_MS: i64 = 1_704_067_200_000;
/// Standard deviation of one hour's log return; about 0.7 %, typical of large crypto assets.
const HOURLY_VOLATILITY: f64 = 0.007;

/// The source name stored with simulated candles and prices.
pub const SOURCE: &str = "simulated";

/// One simulated asset.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedAsset {
    pub symbol: &'static str,
    pub name: &'static str,
    /// Price at the origin of the walk.
    pub base_price: f64,
    /// Typical traded volume per minute, in units of the asset.
    pub minute_volume: f64,
}

/// Ten well-known assets with realistic price levels.
pub const DEMO_ASSETS: [SimulatedAsset; 10] = [
    SimulatedAsset {
        symbol: "BTC",
        name: "Bitcoin",
        base_price: 42_000.0,
        minute_volume: 12.0,
    },
    SimulatedAsset {
        symbol: "ETH",
        name: "Ethereum",
        base_price: 2_300.0,
        minute_volume: 180.0,
    },
    SimulatedAsset {
        symbol: "SOL",
        name: "Solana",
        base_price: 100.0,
        minute_volume: 2_500.0,
    },
    SimulatedAsset {
        symbol: "BNB",
        name: "BNB",
        base_price: 310.0,
        minute_volume: 400.0,
    },
    SimulatedAsset {
        symbol: "XRP",
        name: "XRP",
        base_price: 0.62,
        minute_volume: 350_000.0,
    },
    SimulatedAsset {
        symbol: "ADA",
        name: "Cardano",
        base_price: 0.59,
        minute_volume: 300_000.0,
    },
    SimulatedAsset {
        symbol: "DOGE",
        name: "Dogecoin",
        base_price: 0.09,
        minute_volume: 1_500_000.0,
    },
    SimulatedAsset {
        symbol: "AVAX",
        name: "Avalanche",
        base_price: 38.0,
        minute_volume: 4_000.0,
    },
    SimulatedAsset {
        symbol: "DOT",
        name: "Polkadot",
        base_price: 8.2,
        minute_volume: 20_000.0,
    },
    SimulatedAsset {
        symbol: "LINK",
        name: "Chainlink",
        base_price: 15.0,
        minute_volume: 9_000.0,
    },
];

/// SplitMix64: tiny, fast and good enough for simulated prices; seeded per (symbol, hour)
/// so any hour can be generated without the ones before it.
#[derive(Debug, Clone, Copy)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn seed(symbol: &str, salt: u64) -> SplitMix {
    // FNV-1a of the symbol, mixed with the salt.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in symbol.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    SplitMix(hash ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D))
}

/// The simulated path of one asset: a random walk of hourly opens from 2024-01-01.
#[derive(Debug)]
pub struct SimulatedSeries {
    asset: SimulatedAsset,
    /// `checkpoints[k]` is the walk at ORIGIN + k * [`HOURS_PER_CHECKPOINT`] hours.
    checkpoints: Vec<WalkPoint>,
    /// The walk at the hour asked for last, where the next request most likely starts.
    cursor: (usize, WalkPoint),
}

/// Hours between kept points of the hourly walk. Any hour's open is replayed from the
/// kept point before it, so years of walk take kilobytes where every open would take
/// megabytes, kept for the life of the process.
const HOURS_PER_CHECKPOINT: usize = 64;

/// The walk at one hour: that hour's open, and the generator that draws the next step.
#[derive(Debug, Clone, Copy)]
struct WalkPoint {
    open: f64,
    walk: SplitMix,
}

impl WalkPoint {
    fn advance(&mut self, base_price: f64) {
        let step = HOURLY_VOLATILITY * self.walk.normal();
        // Pull gently back towards the base price so decades of demo stay plausible.
        let reversion = -0.0005 * (self.open / base_price).ln();
        self.open *= (step + reversion).exp();
    }
}

/// The minute points of one hour: index 0 is the hour's open, index 60 the next open.
#[derive(Debug, Clone)]
pub struct HourPath {
    pub open_time: i64,
    pub points: [f64; STEPS_PER_HOUR + 1],
    pub minute_volumes: [f64; STEPS_PER_HOUR],
}

impl SimulatedSeries {
    pub fn new(asset: SimulatedAsset) -> Self {
        let origin = WalkPoint {
            open: asset.base_price,
            walk: seed(asset.symbol, 0),
        };
        Self {
            asset,
            checkpoints: vec![origin],
            cursor: (0, origin),
        }
    }

    pub fn asset(&self) -> &SimulatedAsset {
        &self.asset
    }

    /// The opens of `hour` and of the hour after it.
    fn hour_opens(&mut self, hour: usize) -> (f64, f64) {
        let base_price = self.asset.base_price;
        let kept = hour / HOURS_PER_CHECKPOINT;
        while self.checkpoints.len() <= kept {
            let mut point = self.checkpoints[self.checkpoints.len() - 1];
            for _ in 0..HOURS_PER_CHECKPOINT {
                point.advance(base_price);
            }
            self.checkpoints.push(point);
        }
        let (from, mut point) = match self.cursor {
            (at, point) if at <= hour && at >= kept * HOURS_PER_CHECKPOINT => (at, point),
            _ => (kept * HOURS_PER_CHECKPOINT, self.checkpoints[kept]),
        };
        for _ in from..hour {
            point.advance(base_price);
        }
        self.cursor = (hour, point);
        let open = point.open;
        point.advance(base_price);
        (open, point.open)
    }

    /// The path of the hour starting at `open_time` (aligned, not before 2024-01-01).
    pub fn hour(&mut self, open_time: i64) -> HourPath {
        let index = usize::try_from((open_time.max(ORIGIN_MS) - ORIGIN_MS) / HOUR_MS).unwrap_or(0);
        let (open, close) = self.hour_opens(index);
        let mut rng = seed(self.asset.symbol, index as u64 + 1);
        // Brownian bridge in log space, pinned to the two opens.
        let step_sigma = HOURLY_VOLATILITY / (STEPS_PER_HOUR as f64).sqrt();
        let mut walk = [0.0; STEPS_PER_HOUR + 1];
        for k in 1..=STEPS_PER_HOUR {
            walk[k] = walk[k - 1] + step_sigma * rng.normal();
        }
        let (log_open, log_close) = (open.ln(), close.ln());
        let mut points = [0.0; STEPS_PER_HOUR + 1];
        for (k, point) in points.iter_mut().enumerate() {
            let t = k as f64 / STEPS_PER_HOUR as f64;
            let bridge = walk[k] - t * walk[STEPS_PER_HOUR];
            *point = self.to_tick((log_open + t * (log_close - log_open) + bridge).exp());
        }
        let mut minute_volumes = [0.0; STEPS_PER_HOUR];
        for volume in &mut minute_volumes {
            *volume = self.asset.minute_volume * (0.4 + 1.2 * rng.unit());
        }
        HourPath {
            open_time: ORIGIN_MS + index as i64 * HOUR_MS,
            points,
            minute_volumes,
        }
    }

    /// Rounds to the asset's tick, about a millionth of its price as exchanges quote it
    /// (0.01 for BTC), so simulated prices look like real ones on the wire.
    fn to_tick(&self, price: f64) -> f64 {
        let decimals = 6 - self.asset.base_price.log10().floor() as i32;
        let scale = 10f64.powi(decimals);
        (price * scale).round() / scale
    }

    /// The price at `t`, interpolated between minute points and rounded to the tick.
    pub fn price_at(&mut self, t: i64) -> f64 {
        let hour = self.hour(Interval::H1.bucket_start(t));
        let into = (t - hour.open_time) as f64 / MINUTE_MS as f64;
        let k = (into.floor() as usize).min(STEPS_PER_HOUR - 1);
        let frac = into - k as f64;
        self.to_tick(hour.points[k] + (hour.points[k + 1] - hour.points[k]) * frac)
    }

    /// The candle of `interval` (1m or 1h) opening at `open_time`, as known at `now`: a
    /// bucket still open at `now` holds only what has happened so far. `None` if the
    /// bucket has not opened yet.
    pub fn candle(&mut self, interval: Interval, open_time: i64, now: i64) -> Option<Candle> {
        if open_time > now {
            return None;
        }
        let end = (open_time + interval.millis()).min(now);
        let mut candle: Option<Candle> = None;
        let mut cursor = open_time;
        while cursor < end {
            let hour = self.hour(Interval::H1.bucket_start(cursor));
            let first = usize::try_from((cursor - hour.open_time) / MINUTE_MS).unwrap_or(0);
            let hour_end = (hour.open_time + HOUR_MS).min(end);
            let mut k = first;
            while k < STEPS_PER_HOUR && hour.open_time + (k as i64) * MINUTE_MS < hour_end {
                let minute_start = hour.open_time + k as i64 * MINUTE_MS;
                let done = ((hour_end - minute_start) as f64 / MINUTE_MS as f64).min(1.0);
                let a = hour.points[k];
                let b = self.to_tick(a + (hour.points[k + 1] - a) * done);
                let volume = hour.minute_volumes[k] * done;
                let c = candle.get_or_insert(Candle {
                    open_time,
                    open: a,
                    high: a,
                    low: a,
                    close: a,
                    volume: 0.0,
                });
                c.high = c.high.max(a).max(b);
                c.low = c.low.min(a).min(b);
                c.close = b;
                c.volume += volume;
                k += 1;
            }
            cursor = hour.open_time + HOUR_MS;
        }
        candle
    }

    /// The latest price at `now` with its trailing 24-hour statistics: open is the price
    /// 24 hours earlier; high and low span every minute point in between; volume is
    /// pro-rated at both ends.
    pub fn latest(&mut self, now: i64) -> LatestPrice {
        let day_ago = now - 24 * HOUR_MS;
        let price = self.price_at(now);
        let open_24h = self.price_at(day_ago);
        let (mut high, mut low) = (price.max(open_24h), price.min(open_24h));
        let mut volume = 0.0;
        let mut hour_start = Interval::H1.bucket_start(day_ago);
        while hour_start <= now {
            let path = self.hour(hour_start);
            for k in 0..STEPS_PER_HOUR {
                let minute_start = hour_start + k as i64 * MINUTE_MS;
                let overlap = (minute_start + MINUTE_MS).min(now) - minute_start.max(day_ago);
                if overlap <= 0 {
                    continue;
                }
                if minute_start >= day_ago {
                    high = high.max(path.points[k]);
                    low = low.min(path.points[k]);
                }
                volume += path.minute_volumes[k] * overlap as f64 / MINUTE_MS as f64;
            }
            hour_start += HOUR_MS;
        }
        LatestPrice {
            symbol: self.asset.symbol.to_owned(),
            price,
            open_24h,
            high_24h: high,
            low_24h: low,
            volume_24h: volume,
            as_of: now,
            source: SOURCE.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> SimulatedSeries {
        SimulatedSeries::new(DEMO_ASSETS[0].clone())
    }

    #[test]
    fn is_deterministic() {
        let t = ORIGIN_MS + 1_000 * HOUR_MS;
        let mut a = btc();
        let mut b = btc();
        // `b` jumps straight to the hour; `a` walks there step by step.
        let _ = a.price_at(t - 500 * HOUR_MS);
        assert_eq!(
            a.candle(Interval::H1, t, i64::MAX),
            b.candle(Interval::H1, t, i64::MAX)
        );
        assert_eq!(a.price_at(t + 1234), b.price_at(t + 1234));
    }

    #[test]
    fn opens_replayed_from_checkpoints_are_those_of_the_plain_walk() {
        let asset = DEMO_ASSETS[0].clone();
        let mut plain = vec![asset.base_price];
        let mut walk = seed(asset.symbol, 0);
        while plain.len() < 1_000 {
            let last = plain[plain.len() - 1];
            let step = HOURLY_VOLATILITY * walk.normal();
            let reversion = -0.0005 * (last / asset.base_price).ln();
            plain.push(last * (step + reversion).exp());
        }
        let mut s = btc();
        // Forwards, backwards across checkpoints, repeated, and far ahead then back.
        for hour in [0, 1, 2, 63, 64, 65, 130, 129, 3, 3, 500, 998, 64, 127, 128] {
            assert_eq!(
                s.hour_opens(hour),
                (plain[hour], plain[hour + 1]),
                "hour {hour}"
            );
        }
    }

    #[test]
    fn candles_are_valid_and_contiguous() {
        let mut s = btc();
        let start = ORIGIN_MS + 50 * HOUR_MS;
        let mut previous: Option<Candle> = None;
        for h in 0..48 {
            let c = s
                .candle(Interval::H1, start + h * HOUR_MS, i64::MAX)
                .unwrap();
            c.validate_for(Interval::H1).unwrap();
            if let Some(p) = previous {
                assert!((c.open - p.close).abs() < 1e-9 * c.open);
            }
            previous = Some(c);
        }
    }

    #[test]
    fn minutes_aggregate_to_the_hour() {
        let mut s = btc();
        let hour = ORIGIN_MS + 7 * HOUR_MS;
        let whole = s.candle(Interval::H1, hour, i64::MAX).unwrap();
        let minutes: Vec<Candle> = (0..60)
            .map(|m| {
                s.candle(Interval::M1, hour + m * MINUTE_MS, i64::MAX)
                    .unwrap()
            })
            .collect();
        assert_eq!(minutes[0].open, whole.open);
        assert!((minutes[59].close - whole.close).abs() < 1e-9 * whole.close);
        let high = minutes.iter().map(|c| c.high).fold(f64::MIN, f64::max);
        let volume: f64 = minutes.iter().map(|c| c.volume).sum();
        assert_eq!(high, whole.high);
        assert!((volume - whole.volume).abs() < 1e-6 * whole.volume);
    }

    #[test]
    fn an_open_candle_grows_into_the_closed_one() {
        let mut s = btc();
        let hour = ORIGIN_MS + 99 * HOUR_MS;
        let partial = s
            .candle(Interval::H1, hour, hour + 20 * MINUTE_MS + 30_000)
            .unwrap();
        let whole = s.candle(Interval::H1, hour, i64::MAX).unwrap();
        assert_eq!(partial.open, whole.open);
        assert!(partial.high <= whole.high && partial.low >= whole.low);
        assert!(partial.volume < whole.volume);
        let live = s.price_at(hour + 20 * MINUTE_MS + 30_000);
        assert_eq!(partial.close, live);
        assert!(s.candle(Interval::H1, hour + HOUR_MS, hour).is_none());
    }

    #[test]
    fn latest_price_statistics_bracket_the_price() {
        let mut s = btc();
        let now = ORIGIN_MS + 500 * HOUR_MS + 123_456;
        let p = s.latest(now);
        assert!(p.low_24h <= p.price && p.price <= p.high_24h);
        assert!(p.low_24h <= p.open_24h && p.open_24h <= p.high_24h);
        assert!(p.volume_24h > 0.0);
    }
}
