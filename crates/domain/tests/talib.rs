//! Every indicator against TA-Lib's own output.
//!
//! The fixtures in `fixtures/talib/` were written by `scripts/talib_fixtures.py` with
//! TA-Lib's Python package; each column is headed by the request token that produced it
//! (`macd:12:26:9|macd_hist`), so this test also drives the request parser. VWAP, which
//! TA-Lib lacks, comes from a plain reference implementation in the same script.

#![expect(
    clippy::unwrap_used,
    reason = "a malformed fixture should fail the test loudly"
)]

use std::collections::BTreeMap;
use std::path::Path;

use marketd_domain::Candle;
use marketd_domain::indicators::{IndicatorSpec, Series};

/// Agreement required: relative error at most 1e-9.
const RELATIVE: f64 = 1e-9;

struct Fixture {
    name: String,
    candles: Vec<Candle>,
    /// token -> output name -> TA-Lib's values (None where TA-Lib gave NaN).
    expected: BTreeMap<String, BTreeMap<String, Series>>,
}

fn cell(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

fn load(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..6],
        ["open_time", "open", "high", "low", "close", "volume"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let candles = rows
        .iter()
        .map(|r| Candle {
            open_time: r[0].parse().unwrap(),
            open: r[1].parse().unwrap(),
            high: r[2].parse().unwrap(),
            low: r[3].parse().unwrap(),
            close: r[4].parse().unwrap(),
            volume: r[5].parse().unwrap(),
        })
        .collect();
    let mut expected: BTreeMap<String, BTreeMap<String, Series>> = BTreeMap::new();
    for (col, head) in header.iter().enumerate().skip(6) {
        let (token, output) = head.split_once('|').unwrap();
        let values = rows.iter().map(|r| cell(r[col])).collect();
        expected
            .entry(token.to_owned())
            .or_default()
            .insert(output.to_owned(), values);
    }
    Fixture {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        candles,
        expected,
    }
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/talib");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "fixtures missing");
    paths.iter().map(|p| load(p)).collect()
}

/// Values this close to zero, relative to the column's largest magnitude, are rounding
/// residue of quantities that are exactly zero (an SMA of zeros after non-zero values, a
/// money flow summed and subtracted away); they are compared absolutely at that level.
const NOISE: f64 = 1e-12;

/// Compares one column, returning a description of every disagreement.
fn compare(what: &str, ours: &Series, talib: &Series) -> Vec<String> {
    assert_eq!(ours.len(), talib.len(), "{what}: length");
    let scale = talib.iter().flatten().fold(0.0_f64, |m, v| m.max(v.abs()));
    let mut problems = Vec::new();
    for (i, (a, b)) in ours.iter().zip(talib.iter()).enumerate() {
        let ok = match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                let diff = (a - b).abs();
                diff <= RELATIVE * a.abs().max(b.abs()) || diff <= NOISE * scale
            }
            _ => false,
        };
        if !ok {
            problems.push(format!("{what}[{i}]: ours {a:?}, TA-Lib {b:?}"));
        }
    }
    problems
}

#[test]
fn batch_and_incremental_match_talib() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for fx in fixtures() {
        for (token, outputs) in &fx.expected {
            let spec: IndicatorSpec = token.parse().unwrap();
            let columns = spec.compute(&fx.candles).unwrap();
            assert_eq!(columns.len(), outputs.len(), "{token}: column count");

            let mut state = spec.state();
            let rows: Vec<_> = fx.candles.iter().map(|&c| state.push(c).unwrap()).collect();

            for (i, column) in columns.iter().enumerate() {
                let talib = outputs
                    .get(column.name)
                    .unwrap_or_else(|| panic!("{token}: no fixture column {}", column.name));
                let what = format!("{}/{token}/{}", fx.name, column.name);
                problems.extend(compare(&what, &column.values, talib));
                let incremental: Series = rows.iter().map(|r| r.as_slice()[i]).collect();
                problems.extend(compare(
                    &format!("{what} (incremental)"),
                    &incremental,
                    talib,
                ));

                // The lookback is TA-Lib's: exactly that many leading NaN (VWAP aside,
                // whose gaps come from volumeless candles, not from a lookback).
                if spec.name() != "vwap" {
                    let leading = talib.iter().take_while(Option::is_none).count();
                    let lookback = spec.output_lookbacks()[i];
                    assert_eq!(leading, lookback.min(talib.len()), "{what}: lookback");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 5 * 60, "only {checked} columns checked");
    assert!(
        problems.is_empty(),
        "{} disagreements with TA-Lib, first ones:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_indicator_kind_is_covered_by_the_fixtures() {
    let fx = fixtures();
    for kind in marketd_domain::indicators::IndicatorKind::all() {
        assert!(
            fx[0]
                .expected
                .keys()
                .any(|t| t.split(':').next().is_some_and(|n| n == kind.name())),
            "no TA-Lib fixture for {}",
            kind.name()
        );
    }
}
