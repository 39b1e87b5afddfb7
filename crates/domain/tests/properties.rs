//! Properties every indicator keeps on arbitrary series: the batch and incremental forms
//! agree, non-finite inputs are refused at the right index without disturbing the
//! state, and the advertised warm-up makes a late start agree with the full history.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests fail loudly"
)]

use marketd_domain::Candle;
use marketd_domain::indicators::{IndicatorError, IndicatorKind, IndicatorSpec, InputKind, WarmUp};
use proptest::prelude::*;

/// (relative move, upper wick, lower wick, volume or none, flat candle?)
type Step = (f64, f64, f64, Option<f64>, bool);

fn build(steps: &[Step]) -> Vec<Candle> {
    let mut close: f64 = 100.0;
    let mut time = 1_709_269_200_000_i64;
    steps
        .iter()
        .map(|&(change, up, down, volume, flat)| {
            time += 900_000;
            let open = close;
            if flat {
                return Candle {
                    open_time: time,
                    open,
                    high: open,
                    low: open,
                    close: open,
                    volume: volume.unwrap_or(0.0),
                };
            }
            close = (close * (1.0 + change)).max(0.01);
            Candle {
                open_time: time,
                open,
                high: open.max(close) * (1.0 + up),
                low: open.min(close) * (1.0 - down),
                close,
                volume: volume.unwrap_or(0.0),
            }
        })
        .collect()
}

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            -0.05..0.05f64,
            0.0..0.02f64,
            0.0..0.02f64,
            prop::option::weighted(0.9, 0.0..1e4f64),
            prop::bool::weighted(0.15),
        ),
        0..max,
    )
}

/// Any indicator with parameters drawn from its valid range (periods kept short so
/// that short series still reach the defined region).
fn spec() -> impl Strategy<Value = IndicatorSpec> {
    let kinds: Vec<IndicatorKind> = IndicatorKind::all().collect();
    (
        prop::sample::select(kinds),
        prop::array::uniform3(0.0..1.0f64),
    )
        .prop_filter_map("macd needs fast < slow", |(kind, unit)| {
            let params: Vec<f64> = kind
                .info()
                .params
                .iter()
                .zip(unit)
                .map(|(p, u)| {
                    if p.integer {
                        (p.min + u * (40.0_f64.min(p.max) - p.min)).round()
                    } else {
                        p.min + u * (p.max - p.min)
                    }
                })
                .collect();
            IndicatorSpec::new(kind, &params).ok()
        })
}

fn incremental(spec: &IndicatorSpec, candles: &[Candle]) -> Vec<Vec<Option<f64>>> {
    let mut state = spec.state();
    let rows: Vec<_> = candles.iter().map(|&c| state.push(c).unwrap()).collect();
    (0..spec.outputs().len())
        .map(|i| rows.iter().map(|r| r.as_slice()[i]).collect())
        .collect()
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
        }
        _ => false,
    }
}

/// The fields each kind reads, which are the ones that must be finite.
fn fields_read(kind: IndicatorKind) -> &'static [&'static str] {
    use IndicatorKind as K;
    match kind {
        _ if kind.info().input == InputKind::Close => &["close"],
        K::Obv => &["close", "volume"],
        K::Mfi | K::Vwap => &["high", "low", "close", "volume"],
        _ => &["high", "low", "close"],
    }
}

fn poison(c: &mut Candle, field: &str, value: f64) {
    match field {
        "high" => c.high = value,
        "low" => c.low = value,
        "close" => c.close = value,
        _ => c.volume = value,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn batch_and_incremental_agree(spec in spec(), steps in steps(250)) {
        let candles = build(&steps);
        let batch = spec.compute(&candles).unwrap();
        let inc = incremental(&spec, &candles);
        prop_assert_eq!(batch.len(), spec.outputs().len());
        for (column, inc) in batch.iter().zip(&inc) {
            prop_assert_eq!(column.values.len(), candles.len());
            for (i, (a, &b)) in column.values.iter().zip(inc).enumerate() {
                prop_assert!(same(a, b), "{spec} {}[{i}]: batch {a:?}, incremental {b:?}", column.name);
            }
        }
        // Nothing is defined before the lookback, and (VWAP's volumeless mornings aside)
        // everything is defined from it on.
        for (column, &lookback) in batch.iter().zip(&spec.output_lookbacks()) {
            for (i, v) in column.values.iter().enumerate() {
                if i < lookback {
                    prop_assert!(v.is_none(), "{spec} {}[{i}] defined early", column.name);
                } else if spec.kind() != IndicatorKind::Vwap {
                    prop_assert!(v.is_some_and(f64::is_finite), "{spec} {}[{i}] missing", column.name);
                }
            }
        }
    }

    #[test]
    fn non_finite_input_is_refused_where_it_occurs(
        spec in spec(),
        steps in steps(120),
        at in any::<prop::sample::Index>(),
        field in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
    ) {
        let clean = build(&steps);
        prop_assume!(!clean.is_empty());
        let at = at.index(clean.len());
        let fields = fields_read(spec.kind());
        let field = fields[field.index(fields.len())];
        let mut dirty = clean.clone();
        poison(&mut dirty[at], field, bad);

        let expected = IndicatorError::NotFinite { index: at, field };
        prop_assert_eq!(spec.compute(&dirty).unwrap_err(), expected);

        // The state refuses the candle, stays as it was, and carries on as if the bad
        // candle had never been offered.
        let mut state = spec.state();
        let mut skipped = spec.state();
        for (i, (&c, &d)) in clean.iter().zip(&dirty).enumerate() {
            if i == at {
                prop_assert_eq!(state.push(d).unwrap_err(), expected);
                continue;
            }
            let a = state.push(d).unwrap();
            let b = skipped.push(c).unwrap();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn specs_print_as_they_parse(spec in spec()) {
        let text = spec.to_string();
        let back: IndicatorSpec = text.parse().unwrap();
        prop_assert_eq!(back, spec);
    }
}

/// A long random walk, deterministic so that failures reproduce.
fn walk(len: usize, seed: u64) -> Vec<Candle> {
    let mut state = seed | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let steps: Vec<Step> = (0..len)
        .map(|_| {
            (
                (uniform() - 0.5) * 0.04,
                uniform() * 0.01,
                uniform() * 0.01,
                Some(uniform() * 1000.0),
                uniform() < 0.05,
            )
        })
        .collect();
    build(&steps)
}

#[test]
fn warm_up_makes_a_late_start_agree_with_the_full_history() {
    let tokens = [
        "ema:50",
        "ema:9",
        "dema:30",
        "tema:30",
        "macd:12:26:9",
        "macd:5:35:5",
        "rsi:14",
        "rsi:2",
        "atr:14",
        "natr:14",
        "adx:14",
        "adx:30",
        "stochrsi:14:5:3",
        "sma:20",
        "bbands:20:2",
        "stoch:5:3:3",
        "cci:14",
        "mfi:14",
        "willr:14",
        "roc:10",
        "wma:30",
        "stddev:5:1",
    ];
    for seed in 1..=4 {
        for token in tokens {
            let spec: IndicatorSpec = token.parse().unwrap();
            let WarmUp::Candles(warm) = spec.warm_up() else {
                panic!("{token}: expected a candle count");
            };
            let candles = walk(warm + 400, seed);
            let full = spec.compute(&candles).unwrap();
            // Start late by various amounts; the first wanted value sits `warm` later.
            for start in [1, 37, 150, 399] {
                let late = spec.compute(&candles[start..]).unwrap();
                let wanted = start + warm;
                for (f, l) in full.iter().zip(&late) {
                    // Oscillators are on a 0-100 scale; everything else on the price's.
                    let scale = candles[..=wanted]
                        .iter()
                        .fold(100.0_f64, |m, c| m.max(c.high));
                    for t in wanted..candles.len().min(wanted + 20) {
                        let (a, b) = (f.values.get(t).unwrap(), l.values.get(t - start).unwrap());
                        assert!(
                            (a - b).abs() <= 1e-9 * scale,
                            "{token} seed {seed} start {start}: {}[{t}] full {a}, late {b}",
                            f.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn cumulative_and_session_indicators_say_so() {
    assert_eq!(
        "obv".parse::<IndicatorSpec>().unwrap().warm_up(),
        WarmUp::FullHistory
    );
    assert_eq!(
        "vwap".parse::<IndicatorSpec>().unwrap().warm_up(),
        WarmUp::UtcDay
    );
}
