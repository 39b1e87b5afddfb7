//! Every indicator's batch form on 1,000,000 candles, to compare with TA-Lib on the same
//! size (scripts/talib_bench.py). Results and commands: benches/RESULTS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use marketd_domain::Candle;
use marketd_domain::indicators as ind;

const N: usize = 1_000_000;

/// A reproducible random walk of hourly candles; no dependency on a random-number crate.
fn candles() -> Vec<Candle> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut close = 100.0;
    (0..N)
        .map(|i| {
            let open = close;
            close = (close * (1.0 + (uniform() - 0.5) * 0.02)).max(1.0);
            let high = open.max(close) * (1.0 + uniform() * 0.005);
            let low = open.min(close) * (1.0 - uniform() * 0.005);
            Candle {
                open_time: i as i64 * 3_600_000,
                open,
                high,
                low,
                close,
                volume: 1.0 + uniform() * 1000.0,
            }
        })
        .collect()
}

fn indicators(c: &mut Criterion) {
    // Built beforehand, as the TA-Lib script builds its NumPy arrays beforehand; building
    // the columns is timed on its own below.
    let candles = candles();
    let columns = ind::CandleColumns::from_candles(&candles);
    let (k, cs) = (&columns, columns.close());
    let mut g = c.benchmark_group("1M");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    g.bench_function("sma:30", |b| b.iter(|| ind::sma(black_box(cs), 30)));
    g.bench_function("ema:30", |b| b.iter(|| ind::ema(black_box(cs), 30)));
    g.bench_function("wma:30", |b| b.iter(|| ind::wma(black_box(cs), 30)));
    g.bench_function("dema:30", |b| b.iter(|| ind::dema(black_box(cs), 30)));
    g.bench_function("tema:30", |b| b.iter(|| ind::tema(black_box(cs), 30)));
    g.bench_function("rsi:14", |b| b.iter(|| ind::rsi(black_box(cs), 14)));
    g.bench_function("macd:12:26:9", |b| {
        b.iter(|| ind::macd(black_box(cs), 12, 26, 9))
    });
    g.bench_function("bbands:20:2", |b| {
        b.iter(|| ind::bbands(black_box(cs), 20, 2.0))
    });
    g.bench_function("stddev:5:1", |b| {
        b.iter(|| ind::stddev(black_box(cs), 5, 1.0))
    });
    g.bench_function("atr:14", |b| b.iter(|| ind::atr(black_box(k), 14)));
    g.bench_function("natr:14", |b| b.iter(|| ind::natr(black_box(k), 14)));
    g.bench_function("stoch:5:3:3", |b| {
        b.iter(|| ind::stoch(black_box(k), 5, 3, 3))
    });
    g.bench_function("stochrsi:14:5:3", |b| {
        b.iter(|| ind::stochrsi(black_box(cs), 14, 5, 3))
    });
    g.bench_function("obv", |b| b.iter(|| ind::obv(black_box(k))));
    g.bench_function("adx:14", |b| b.iter(|| ind::adx(black_box(k), 14)));
    g.bench_function("cci:14", |b| b.iter(|| ind::cci(black_box(k), 14)));
    g.bench_function("mfi:14", |b| b.iter(|| ind::mfi(black_box(k), 14)));
    g.bench_function("willr:14", |b| b.iter(|| ind::willr(black_box(k), 14)));
    g.bench_function("roc:10", |b| b.iter(|| ind::roc(black_box(cs), 10)));
    g.bench_function("vwap", |b| b.iter(|| ind::vwap(black_box(k))));
    g.bench_function("CandleColumns::from_candles", |b| {
        b.iter(|| ind::CandleColumns::from_candles(black_box(&candles)))
    });
    g.finish();
}

criterion_group!(benches, indicators);
criterion_main!(benches);
