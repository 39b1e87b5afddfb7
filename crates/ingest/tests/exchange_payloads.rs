//! The exchange payload parsers against fixtures in each exchange's documented format,
//! and against the ways a payload goes wrong.

use marketd_domain::{Candle, Interval, LatestPrice};
use marketd_ingest::exchange::symbols::Source;
use marketd_ingest::exchange::{
    Parsed, PayloadError, SymbolTable, binance, coinbase, coingecko, kraken,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exchange");
/// Far after every fixture, so nothing in them is "in the future".
const LATER: i64 = 1_800_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ok<T>(result: Result<Parsed<T>, PayloadError>) -> Parsed<T> {
    result.unwrap_or_else(|e| panic!("payload refused: {e}"))
}

fn reasons<T>(parsed: &Parsed<T>) -> Vec<(usize, String)> {
    parsed
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.clone()))
        .collect()
}

#[test]
fn binance_klines_fixture() {
    let parsed = ok(binance::parse_klines(
        &fixture("binance_klines_1w.json"),
        Interval::W1,
        LATER,
    ));
    assert_eq!(
        parsed.rows,
        vec![Candle {
            open_time: 1_499_040_000_000,
            open: 0.0163479,
            high: 0.8,
            low: 0.015758,
            close: 0.015771,
            volume: 148_976.114_278_15,
        }]
    );
    assert!(parsed.rejected.is_empty());
}

#[test]
fn binance_ticker_fixture_single_and_array() {
    let expected = LatestPrice {
        symbol: "BNBBTC".into(),
        price: 4.000002,
        open_24h: 99.0,
        high_24h: 100.0,
        low_24h: 0.1,
        volume_24h: 8913.3,
        as_of: 1_499_869_899_040,
        source: "binance".into(),
    };
    let single = fixture("binance_ticker_24hr.json");
    assert_eq!(
        ok(binance::parse_ticker_24hr(&single)).rows,
        vec![expected.clone()]
    );

    let mut array = b"[".to_vec();
    array.extend_from_slice(&single);
    array.extend_from_slice(br#",{"symbol":"ETHBTC","lastPrice":"abc"},7]"#);
    let parsed = ok(binance::parse_ticker_24hr(&array));
    assert_eq!(parsed.rows, vec![expected]);
    let r = reasons(&parsed);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].0, 1);
    assert!(r[0].1.contains("lastPrice"), "{}", r[0].1);
    assert_eq!(r[1].0, 2);
}

#[test]
fn binance_ticker_with_price_outside_its_range_is_rejected() {
    let body = br#"[{"symbol":"BTCUSDT","lastPrice":"200","openPrice":"99","highPrice":"100","lowPrice":"90","volume":"1","closeTime":1499869899040}]"#;
    let parsed = ok(binance::parse_ticker_24hr(body));
    assert!(parsed.rows.is_empty());
    assert!(parsed.rejected[0].reason.contains("outside"));
}

#[test]
fn coinbase_fixture_comes_out_ascending() {
    let parsed = ok(coinbase::parse_candles(
        &fixture("coinbase_candles_1h.json"),
        Interval::H1,
        LATER,
    ));
    assert_eq!(
        parsed.rows,
        vec![
            Candle {
                open_time: 1_712_188_800_000,
                open: 65984.18,
                high: 66387.77,
                low: 65857.35,
                close: 66314.59,
                volume: 358.74851052,
            },
            Candle {
                open_time: 1_712_192_400_000,
                open: 66312.4,
                high: 66331.99,
                low: 66055.14,
                close: 66181.6,
                volume: 355.82896243,
            },
        ]
    );
    assert!(parsed.rejected.is_empty());
}

#[test]
fn coinbase_documentation_row_is_misaligned() {
    // The row from Coinbase's own documentation starts 28 s into a minute.
    let parsed = ok(coinbase::parse_candles(
        b"[[1415398768, 0.32, 4.2, 0.35, 4.2, 12.3]]",
        Interval::M1,
        LATER,
    ));
    assert!(parsed.rows.is_empty());
    assert_eq!(parsed.rejected[0].index, 0);
    assert!(parsed.rejected[0].reason.contains("aligned"));
}

#[test]
fn kraken_fixture_pair_and_cursor() {
    let ohlc = kraken::parse_ohlc(&fixture("kraken_ohlc_1m.json"), Interval::M1, LATER)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ohlc.pair, "XXBTZUSD");
    assert_eq!(ohlc.last, 1_688_672_160);
    assert!(ohlc.candles.rejected.is_empty());
    assert_eq!(ohlc.candles.rows.len(), 4);
    assert_eq!(
        ohlc.candles.rows[0],
        Candle {
            open_time: 1_688_671_200_000,
            open: 30306.1,
            high: 30306.2,
            low: 30305.7,
            close: 30305.7,
            volume: 3.39243896,
        }
    );
    assert_eq!(
        ohlc.candles.rows[3],
        Candle {
            open_time: 1_688_671_380_000,
            open: 30291.8,
            high: 30295.1,
            low: 30291.8,
            close: 30295.0,
            volume: 1.01836275,
        }
    );
    let table = SymbolTable::default();
    let asset = table.by_source_name(Source::Kraken, &ohlc.pair);
    assert_eq!(asset.map(|a| a.symbol.as_str()), Some("BTC"));
}

#[test]
fn coingecko_fixture() {
    let parsed = ok(coingecko::parse_simple_price(
        &fixture("coingecko_simple_price.json"),
        "usd",
    ));
    assert!(parsed.rejected.is_empty());
    let p = &parsed.rows[0];
    assert_eq!(p.symbol, "bitcoin");
    assert_eq!(p.source, "coingecko");
    assert_eq!(p.price, 67187.3358936566);
    assert_eq!(p.volume_24h, 31260929299.5248);
    assert_eq!(p.as_of, 1_711_356_300_000);
    assert!((p.change_24h_pct() - 3.63727894677354).abs() < 1e-9);
}

#[test]
fn coingecko_markets_fixture() {
    let parsed = ok(coingecko::parse_markets(&fixture("coingecko_markets.json")));
    assert!(parsed.rejected.is_empty());
    assert_eq!(
        parsed.rows,
        vec![LatestPrice {
            symbol: "bitcoin".into(),
            price: 70187.0,
            open_24h: 70187.0 - 2126.88,
            high_24h: 70215.0,
            low_24h: 68060.0,
            volume_24h: 20154184933.0,
            as_of: 1_712_508_571_736,
            source: "coingecko".into(),
        }]
    );
}

#[test]
fn each_malformation_is_rejected_alone_and_good_rows_survive() {
    // Binance-shaped 1m klines around 2023-11-14T22:14:00Z; now is 30 s into the
    // 22:20 bucket.
    let t = |m: i64| 1_700_000_040_000 + m * 60_000;
    let now = t(6) + 30_000;
    let body = format!(
        r#"[
        [{},"10","12","9","11","5"],
        [{},10,"12","9","11","5"],
        ["{}","10","12","9","11","5"],
        [{},"ten","12","9","11","5"],
        [{},"-10","12","9","11","5"],
        [{},"0","12","9","11","5"],
        [{},"10","8","9","8.5","5"],
        [{},"13","12","9","11","5"],
        [{},"10","12","9","11","5"],
        [{},"10","12","9","11","5"],
        [{},"10","12","9","11","5"],
        "row",
        [{},"10","12","9","10.5","5"],
        [{},"10","12","9","11","-1"]
        ]"#,
        t(2),         // 0 good
        t(1),         // 1 good: a number where a string is usual is still a number
        t(3),         // 2 open time as a string
        t(3),         // 3 non-numeric
        t(3),         // 4 negative price
        t(3),         // 5 zero price
        t(3),         // 6 high < low
        t(3),         // 7 open above high
        t(3) + 1_000, // 8 misaligned
        t(6),         // 9 the still-open bucket: allowed
        t(7),         // 10 future
        t(2),         // 12 duplicate of row 0: row 12 wins, row 0 noted
        t(4),         // 13 negative volume
    );
    let parsed = ok(binance::parse_klines(body.as_bytes(), Interval::M1, now));
    let times: Vec<i64> = parsed.rows.iter().map(|c| c.open_time).collect();
    assert_eq!(times, vec![t(1), t(2), t(6)]);
    assert_eq!(parsed.rows[1].close, 10.5, "the later duplicate wins");
    let r = reasons(&parsed);
    let indexes: Vec<usize> = r.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, vec![0, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13]);
    let expect = [
        (0, "duplicate"),
        (2, "expected an integer"),
        (3, "open is not a finite number"),
        (4, "open must be greater than zero"),
        (5, "open must be greater than zero"),
        (6, "high is below low"),
        (7, "outside the high-low range"),
        (8, "not aligned"),
        (10, "future"),
        (11, "expected an array"),
        (13, "volume must not be negative"),
    ];
    for ((index, reason), (want_index, want)) in r.iter().zip(expect) {
        assert_eq!(*index, want_index);
        assert!(
            reason.contains(want),
            "row {index}: {reason:?} lacks {want:?}"
        );
    }
}

#[test]
fn coinbase_out_of_order_and_duplicates_are_deterministic() {
    let body = br#"[
        [1712192400, 1, 3, 2, 2, 1],
        [1712188800, 1, 3, 2, 2, 1],
        [1712196000, 1, 3, 2, 2, 1],
        [1712192400, 1, 3, 2, 2.5, 1]
    ]"#;
    let parsed = ok(coinbase::parse_candles(body, Interval::H1, LATER));
    let times: Vec<i64> = parsed.rows.iter().map(|c| c.open_time / 1000).collect();
    assert_eq!(times, vec![1712188800, 1712192400, 1712196000]);
    assert_eq!(parsed.rows[1].close, 2.5);
    assert_eq!(parsed.rejected.len(), 1);
    assert_eq!(parsed.rejected[0].index, 0);
}

#[test]
fn error_envelopes_and_foreign_bodies_are_errors() {
    let html = b"<html><head><title>502 Bad Gateway</title></head></html>";
    assert!(matches!(
        binance::parse_klines(html, Interval::M1, LATER),
        Err(PayloadError::NotJson(_))
    ));
    assert!(matches!(
        coinbase::parse_candles(br#"{"message":"Unsupported granularity"}"#, Interval::M1, LATER),
        Err(PayloadError::Upstream(m)) if m == "Unsupported granularity"
    ));
    assert!(matches!(
        kraken::parse_ohlc(br#"{"error":["EGeneral:Invalid arguments"],"result":{}}"#, Interval::M1, LATER),
        Err(PayloadError::Upstream(m)) if m == "EGeneral:Invalid arguments"
    ));
    assert!(matches!(
        coingecko::parse_simple_price(br#"{"error":"coin not found"}"#, "usd"),
        Err(PayloadError::Upstream(_))
    ));
    assert!(matches!(
        binance::parse_klines(b"42", Interval::M1, LATER),
        Err(PayloadError::Shape(_))
    ));
    assert!(matches!(
        kraken::parse_ohlc(b"[]", Interval::M1, LATER),
        Err(PayloadError::Shape(_))
    ));
}

/// Every truncation of every fixture, fed to every parser: an error, never a panic.
#[test]
fn no_truncation_panics() {
    let fixtures = [
        "binance_klines_1w.json",
        "binance_ticker_24hr.json",
        "coinbase_candles_1h.json",
        "kraken_ohlc_1m.json",
        "coingecko_simple_price.json",
        "coingecko_markets.json",
    ];
    for name in fixtures {
        let body = fixture(name);
        let complete = body
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        for end in 0..complete {
            let cut = &body[..end];
            let _ = binance::parse_klines(cut, Interval::M1, LATER);
            let _ = binance::parse_ticker_24hr(cut);
            let _ = coinbase::parse_candles(cut, Interval::H1, LATER);
            let _ = kraken::parse_ohlc(cut, Interval::M1, LATER);
            let _ = coingecko::parse_simple_price(cut, "usd");
            let _ = coingecko::parse_markets(cut);
            // A strict prefix of a fixture is never a complete document.
            assert!(
                matches!(
                    binance::parse_klines(cut, Interval::M1, LATER),
                    Err(PayloadError::NotJson(_))
                ),
                "{name} cut at {end} parsed"
            );
        }
    }
}

/// Odd but well-formed JSON in every row position: refused row by row, never a panic.
#[test]
fn hostile_rows_are_rejected_not_panicked_on() {
    let odd = [
        "null",
        "true",
        "[]",
        "{}",
        "[-9223372036854775808,\"1\",\"1\",\"1\",\"1\",\"1\"]",
        "[9223372036854775807,\"1\",\"1\",\"1\",\"1\",\"1\"]",
        "[18446744073709551615,\"1\",\"1\",\"1\",\"1\",\"1\"]",
        "[1.5,\"1\",\"1\",\"1\",\"1\",\"1\"]",
        "[1499040000000,\"1e999\",\"1\",\"1\",\"1\",\"1\"]",
        "[1499040000000,\"\",\"1\",\"1\",\"1\",\"1\"]",
    ];
    for row in odd {
        let body = format!("[{row}]");
        for interval in Interval::ALL {
            let parsed = ok(binance::parse_klines(body.as_bytes(), interval, i64::MAX));
            assert_eq!(parsed.rejected.len(), 1, "{row}");
            let parsed = ok(coinbase::parse_candles(body.as_bytes(), interval, i64::MIN));
            assert_eq!(parsed.rejected.len(), 1, "{row}");
        }
        let kraken_body = format!(r#"{{"error":[],"result":{{"X":[{row}],"last":1}}}}"#);
        let ohlc = kraken::parse_ohlc(kraken_body.as_bytes(), Interval::M1, LATER);
        assert!(ohlc.is_ok_and(|o| o.candles.rejected.len() == 1), "{row}");
        let gecko = format!(r#"{{"x":{row}}}"#);
        let parsed = ok(coingecko::parse_simple_price(gecko.as_bytes(), "usd"));
        assert_eq!(parsed.rejected.len(), 1, "{row}");
        let _ = binance::parse_ticker_24hr(body.as_bytes());
    }
}

/// Every fixture with each byte in turn replaced by characters that change JSON's
/// meaning: every parser answers, none panics.
#[test]
fn no_single_byte_mutation_panics() {
    let fixtures = [
        "binance_klines_1w.json",
        "binance_ticker_24hr.json",
        "coinbase_candles_1h.json",
        "kraken_ohlc_1m.json",
        "coingecko_simple_price.json",
        "coingecko_markets.json",
    ];
    for name in fixtures {
        let original = fixture(name);
        for at in 0..original.len() {
            for replacement in *b"\"-0.e[]{},:nx9" {
                let mut body = original.clone();
                body[at] = replacement;
                let _ = binance::parse_klines(&body, Interval::W1, LATER);
                let _ = binance::parse_ticker_24hr(&body);
                let _ = coinbase::parse_candles(&body, Interval::H1, LATER);
                let _ = kraken::parse_ohlc(&body, Interval::M1, LATER);
                let _ = coingecko::parse_simple_price(&body, "usd");
                let _ = coingecko::parse_markets(&body);
            }
        }
    }
}

#[test]
fn coinbase_ticker_and_stats_fixtures() {
    let ticker = coinbase::parse_object(&fixture("coinbase_ticker.json")).unwrap();
    let stats = coinbase::parse_object(&fixture("coinbase_stats.json")).unwrap();
    assert_eq!(
        coinbase::product_price("BTC-USD", &ticker, &stats),
        Ok(LatestPrice {
            symbol: "BTC-USD".into(),
            price: 6268.48,
            open_24h: 5414.18,
            high_24h: 6441.37,
            low_24h: 5261.69,
            volume_24h: 53_687.767_642_33,
            // Microseconds are cut to milliseconds.
            as_of: 1_584_663_777_833,
            source: "coinbase".into(),
        })
    );
    assert_eq!(
        coinbase::parse_object(br#"{"message":"NotFound"}"#),
        Err(PayloadError::Upstream("NotFound".into()))
    );
    assert!(matches!(
        coinbase::parse_object(b"[]"),
        Err(PayloadError::Shape(_))
    ));
}

#[test]
fn coinbase_prices_refuse_bad_values_with_reasons() {
    let stats = coinbase::parse_object(&fixture("coinbase_stats.json")).unwrap();
    let ticker = coinbase::parse_object(&fixture("coinbase_ticker.json")).unwrap();
    let with = |obj: &serde_json::Map<String, serde_json::Value>, key: &str, value| {
        let mut obj = obj.clone();
        match value {
            Some(v) => obj.insert(key.to_owned(), v),
            None => obj.remove(key),
        };
        obj
    };
    let cases = [
        (
            with(&ticker, "price", Some("abc".into())),
            stats.clone(),
            "ticker price",
        ),
        (
            with(&ticker, "price", Some("-5".into())),
            stats.clone(),
            "price must be",
        ),
        (
            with(&ticker, "time", None),
            stats.clone(),
            "time is missing",
        ),
        (
            with(&ticker, "time", Some("yesterday".into())),
            stats.clone(),
            "ticker time",
        ),
        (
            ticker.clone(),
            with(&stats, "open", None),
            "stats open is missing",
        ),
        (
            ticker.clone(),
            with(&stats, "volume", Some("-1".into())),
            "volume",
        ),
        (
            ticker.clone(),
            with(&stats, "low", Some(serde_json::json!([1]))),
            "stats low",
        ),
    ];
    for (t, s, reason) in cases {
        let err = coinbase::product_price("BTC-USD", &t, &s).unwrap_err();
        assert!(err.contains(reason), "{reason}: {err}");
    }
    // A trade after the stats were taken widens their range instead of being refused.
    let later = with(&ticker, "price", Some("6500.5".into()));
    let price = coinbase::product_price("BTC-USD", &later, &stats).unwrap();
    assert_eq!((price.price, price.high_24h), (6500.5, 6500.5));
}

#[test]
fn kraken_ticker_fixture_and_bad_pairs() {
    let parsed = ok(kraken::parse_ticker(&fixture("kraken_ticker.json"), LATER));
    assert_eq!(
        parsed.rows,
        vec![LatestPrice {
            symbol: "XXBTZUSD".into(),
            price: 30_303.2,
            open_24h: 30_502.8,
            high_24h: 31_631.0,
            low_24h: 29_868.3,
            volume_24h: 4_412.736_017_99,
            as_of: LATER,
            source: "kraken".into(),
        }]
    );
    assert_eq!(
        SymbolTable::default()
            .by_source_name(Source::Kraken, &parsed.rows[0].symbol)
            .map(|a| a.symbol.as_str()),
        Some("BTC")
    );

    let good = r#"{"c":["10.5","1"],"v":["5","9"],"l":["10","10"],"h":["11","12"],"o":"10.2"}"#;
    let body = format!(
        r#"{{"error":[],"result":{{"A1":{good},"B2":{{"c":["x","1"],"v":["5","9"],"l":["10","10"],"h":["11","12"],"o":"10.2"}},"C3":{{"c":["10.5","1"],"v":["5","-9"],"l":["10","10"],"h":["11","12"],"o":"10.2"}},"D4":{{"c":["10.5","1"],"v":["5","9"],"l":["10","10"],"h":["11","12"]}},"E5":{{"c":["10.5"],"v":["5"],"l":["10","10"],"h":["11","12"],"o":"10.2"}},"F6":7}}}}"#
    );
    let parsed = ok(kraken::parse_ticker(body.as_bytes(), LATER));
    assert_eq!(parsed.rows.len(), 1);
    assert_eq!(
        (parsed.rows[0].symbol.as_str(), parsed.rows[0].volume_24h),
        ("A1", 9.0)
    );
    let r = reasons(&parsed);
    let expected = [
        (1, "B2: c[0]"),
        (2, "C3: volume must not be negative"),
        (3, "D4: o is missing"),
        (4, "E5: v has 1 elements"),
        (5, "F6: ticker is a number"),
    ];
    assert_eq!(r.len(), expected.len(), "{r:?}");
    for ((index, reason), (want_index, want)) in r.iter().zip(expected) {
        assert_eq!(*index, want_index);
        assert!(reason.starts_with(want), "{reason}");
    }
    assert_eq!(
        kraken::parse_ticker(br#"{"error":["EQuery:Unknown asset pair"]}"#, LATER),
        Err(PayloadError::Upstream("EQuery:Unknown asset pair".into()))
    );
}
