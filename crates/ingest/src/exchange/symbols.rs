//! How each exchange names the assets we track. The defaults cover the 20 largest assets
//! by market capitalisation that trade against USD or USDT; configuration changes a
//! symbol's names or adds symbols through [`SymbolTable::set_names`].

/// One asset's names on each source. `None` means the source does not list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Our symbol, as stored (`BTC`).
    pub symbol: String,
    /// Binance spot pair against USDT (`BTCUSDT`).
    pub binance: Option<String>,
    /// Coinbase Exchange product id (`BTC-USD`).
    pub coinbase: Option<String>,
    /// Kraken pair as requested (`XBTUSD`).
    pub kraken: Option<String>,
    /// Kraken's key for the pair in responses (`XXBTZUSD`), which may differ from the
    /// requested name.
    pub kraken_response: Option<String>,
    /// CoinGecko coin id (`bitcoin`).
    pub coingecko: Option<String>,
}

/// Which source a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Binance,
    Coinbase,
    Kraken,
    CoinGecko,
}

/// The default table, as data: symbol, Binance, Coinbase, Kraken request, Kraken
/// response key, CoinGecko id. An empty string means "not listed there".
const DEFAULTS: [[&str; 6]; 20] = [
    ["BTC", "BTCUSDT", "BTC-USD", "XBTUSD", "XXBTZUSD", "bitcoin"],
    [
        "ETH", "ETHUSDT", "ETH-USD", "ETHUSD", "XETHZUSD", "ethereum",
    ],
    ["USDT", "", "USDT-USD", "USDTUSD", "USDTZUSD", "tether"],
    ["XRP", "XRPUSDT", "XRP-USD", "XRPUSD", "XXRPZUSD", "ripple"],
    ["BNB", "BNBUSDT", "", "", "", "binancecoin"],
    ["SOL", "SOLUSDT", "SOL-USD", "SOLUSD", "SOLUSD", "solana"],
    ["USDC", "USDCUSDT", "", "USDCUSD", "USDCUSD", "usd-coin"],
    [
        "DOGE", "DOGEUSDT", "DOGE-USD", "XDGUSD", "XDGUSD", "dogecoin",
    ],
    ["ADA", "ADAUSDT", "ADA-USD", "ADAUSD", "ADAUSD", "cardano"],
    ["TRX", "TRXUSDT", "", "TRXUSD", "TRXUSD", "tron"],
    [
        "AVAX",
        "AVAXUSDT",
        "AVAX-USD",
        "AVAXUSD",
        "AVAXUSD",
        "avalanche-2",
    ],
    [
        "LINK",
        "LINKUSDT",
        "LINK-USD",
        "LINKUSD",
        "LINKUSD",
        "chainlink",
    ],
    ["DOT", "DOTUSDT", "DOT-USD", "DOTUSD", "DOTUSD", "polkadot"],
    [
        "LTC", "LTCUSDT", "LTC-USD", "LTCUSD", "XLTCZUSD", "litecoin",
    ],
    [
        "BCH",
        "BCHUSDT",
        "BCH-USD",
        "BCHUSD",
        "BCHUSD",
        "bitcoin-cash",
    ],
    [
        "SHIB",
        "SHIBUSDT",
        "SHIB-USD",
        "SHIBUSD",
        "SHIBUSD",
        "shiba-inu",
    ],
    ["XLM", "XLMUSDT", "XLM-USD", "XLMUSD", "XXLMZUSD", "stellar"],
    ["UNI", "UNIUSDT", "UNI-USD", "UNIUSD", "UNIUSD", "uniswap"],
    [
        "ATOM", "ATOMUSDT", "ATOM-USD", "ATOMUSD", "ATOMUSD", "cosmos",
    ],
    ["XMR", "", "", "XMRUSD", "XXMRZUSD", "monero"],
];

/// Configured names of one symbol. `None` keeps the current name (none for a new
/// symbol); `Some("")` means the source does not list it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub binance: Option<String>,
    pub coinbase: Option<String>,
    pub kraken: Option<String>,
    /// Kraken's key for the pair in responses; when `kraken` is set and this is not, the
    /// requested name is taken to be the key too.
    pub kraken_response: Option<String>,
    pub coingecko: Option<String>,
}

/// Whether `name` has the form `source`'s names take. Names go into request paths and
/// queries, so nothing outside each exchange's alphabet is let through.
pub fn check_name(source: Source, name: &str) -> Result<(), String> {
    let (alphabet_ok, max, form) = match source {
        Source::Binance => (
            name.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            20,
            "uppercase letters and digits, such as PEPEUSDT",
        ),
        Source::Coinbase => (
            name.split_once('-').is_some_and(|(base, quote)| {
                [base, quote].iter().all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                })
            }),
            24,
            "a product id such as PEPE-USD",
        ),
        Source::Kraken => (
            name.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.'),
            24,
            "uppercase letters, digits and dots, such as PEPEUSD",
        ),
        Source::CoinGecko => (
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            64,
            "a lowercase coin id such as pepe",
        ),
    };
    if alphabet_ok && !name.is_empty() && name.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name this exchange uses; expected {form} (at most {max} characters)"
        ))
    }
}

/// Looks assets up by our symbol or by any source's name for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolTable {
    assets: Vec<Asset>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self::new(
            DEFAULTS
                .iter()
                .map(
                    |[symbol, binance, coinbase, kraken, kraken_response, gecko]| Asset {
                        symbol: (*symbol).to_owned(),
                        binance: some(binance),
                        coinbase: some(coinbase),
                        kraken: some(kraken),
                        kraken_response: some(kraken_response),
                        coingecko: some(gecko),
                    },
                )
                .collect(),
        )
    }
}

impl SymbolTable {
    /// A table of exactly these assets (for configuration that replaces the defaults).
    pub fn new(assets: Vec<Asset>) -> Self {
        Self { assets }
    }

    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }

    /// Sets the names `names` gives for `symbol` (our symbol, already checked), adding the
    /// symbol when the table lacks it. Fails, leaving the table as it was, when a name is
    /// malformed or another symbol already has it on that source: a source's answer for a
    /// name must lead back to exactly one symbol.
    pub fn set_names(&mut self, symbol: &str, names: &Names) -> Result<(), String> {
        let mut asset = self.by_symbol(symbol).cloned().unwrap_or_else(|| Asset {
            symbol: symbol.to_owned(),
            binance: None,
            coinbase: None,
            kraken: None,
            kraken_response: None,
            coingecko: None,
        });
        let kraken_response = names
            .kraken_response
            .clone()
            .or_else(|| names.kraken.clone());
        let updates = [
            (
                Source::Binance,
                "binance",
                &names.binance,
                &mut asset.binance,
            ),
            (
                Source::Coinbase,
                "coinbase",
                &names.coinbase,
                &mut asset.coinbase,
            ),
            (Source::Kraken, "kraken", &names.kraken, &mut asset.kraken),
            (
                Source::Kraken,
                "kraken_response",
                &kraken_response,
                &mut asset.kraken_response,
            ),
            (
                Source::CoinGecko,
                "coingecko",
                &names.coingecko,
                &mut asset.coingecko,
            ),
        ];
        for (source, key, given, slot) in updates {
            let Some(name) = given else { continue };
            if name.is_empty() {
                *slot = None;
                continue;
            }
            check_name(source, name).map_err(|e| format!("{key}: {e}"))?;
            if let Some(other) = self
                .by_source_name(source, name)
                .filter(|other| !other.symbol.eq_ignore_ascii_case(symbol))
            {
                return Err(format!(
                    "{key}: {name:?} already names {} on this exchange",
                    other.symbol
                ));
            }
            *slot = Some(name.clone());
        }
        match self
            .assets
            .iter_mut()
            .find(|a| a.symbol.eq_ignore_ascii_case(symbol))
        {
            Some(slot) => *slot = asset,
            None => self.assets.push(asset),
        }
        Ok(())
    }

    /// The asset with our symbol, case-insensitively.
    pub fn by_symbol(&self, symbol: &str) -> Option<&Asset> {
        self.assets
            .iter()
            .find(|a| a.symbol.eq_ignore_ascii_case(symbol))
    }

    /// The asset a source calls `name`. For Kraken both the requested pair name and the
    /// response key match; CoinGecko ids are matched case-insensitively.
    pub fn by_source_name(&self, source: Source, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| {
            let names: [&Option<String>; 2] = match source {
                Source::Binance => [&a.binance, &None],
                Source::Coinbase => [&a.coinbase, &None],
                Source::Kraken => [&a.kraken, &a.kraken_response],
                Source::CoinGecko => [&a.coingecko, &None],
            };
            names
                .iter()
                .any(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        })
    }

    /// What `source` calls our `symbol`, for building requests.
    pub fn source_name(&self, source: Source, symbol: &str) -> Option<&str> {
        let asset = self.by_symbol(symbol)?;
        match source {
            Source::Binance => asset.binance.as_deref(),
            Source::Coinbase => asset.coinbase.as_deref(),
            Source::Kraken => asset.kraken.as_deref(),
            Source::CoinGecko => asset.coingecko.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_has_a_name_everywhere() {
        let table = SymbolTable::default();
        assert_eq!(table.source_name(Source::Binance, "btc"), Some("BTCUSDT"));
        assert_eq!(table.source_name(Source::Coinbase, "BTC"), Some("BTC-USD"));
        assert_eq!(table.source_name(Source::Kraken, "BTC"), Some("XBTUSD"));
        assert_eq!(table.source_name(Source::CoinGecko, "BTC"), Some("bitcoin"));
        for name in ["XBTUSD", "XXBTZUSD"] {
            assert_eq!(
                table
                    .by_source_name(Source::Kraken, name)
                    .map(|a| a.symbol.as_str()),
                Some("BTC")
            );
        }
    }

    #[test]
    fn defaults_are_twenty_distinct_valid_symbols() {
        let table = SymbolTable::default();
        assert_eq!(table.assets().len(), 20);
        let mut symbols: Vec<&str> = table.assets().iter().map(|a| a.symbol.as_str()).collect();
        symbols.sort_unstable();
        symbols.dedup();
        assert_eq!(symbols.len(), 20);
        for s in symbols {
            assert!(marketd_domain::Symbol::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn configured_names_replace_add_and_unlist() {
        let mut table = SymbolTable::default();
        let names = Names {
            binance: Some("PEPEUSDT".into()),
            coingecko: Some("pepe".into()),
            ..Names::default()
        };
        table.set_names("PEPE", &names).unwrap();
        assert_eq!(table.source_name(Source::Binance, "PEPE"), Some("PEPEUSDT"));
        assert_eq!(table.source_name(Source::Kraken, "PEPE"), None);
        let btc = Names {
            kraken: Some("XBTUSDT".into()),
            coinbase: Some(String::new()),
            ..Names::default()
        };
        table.set_names("BTC", &btc).unwrap();
        assert_eq!(table.source_name(Source::Kraken, "BTC"), Some("XBTUSDT"));
        assert_eq!(table.source_name(Source::Coinbase, "BTC"), None);
        assert_eq!(table.source_name(Source::Binance, "BTC"), Some("BTCUSDT"));
        assert_eq!(
            table
                .by_source_name(Source::Kraken, "XBTUSDT")
                .map(|a| a.symbol.as_str()),
            Some("BTC"),
            "the requested name is the answer's key unless told otherwise"
        );
        assert!(table.by_source_name(Source::Kraken, "XXBTZUSD").is_none());
        assert_eq!(table.assets().len(), 21);
    }

    #[test]
    fn bad_or_taken_names_are_refused() {
        let mut table = SymbolTable::default();
        let before = table.clone();
        for (names, message) in [
            (
                Names {
                    binance: Some("pepe usdt".into()),
                    ..Names::default()
                },
                "binance: \"pepe usdt\" is not a name",
            ),
            (
                Names {
                    coinbase: Some("PEPEUSD".into()),
                    ..Names::default()
                },
                "coinbase: \"PEPEUSD\" is not a name",
            ),
            (
                Names {
                    coingecko: Some("Pepe/x".into()),
                    ..Names::default()
                },
                "coingecko:",
            ),
            (
                Names {
                    binance: Some("ETHUSDT".into()),
                    ..Names::default()
                },
                "binance: \"ETHUSDT\" already names ETH on this exchange",
            ),
        ] {
            let err = table.set_names("PEPE", &names).unwrap_err();
            assert!(err.starts_with(message), "{err}");
        }
        assert_eq!(table, before);
    }

    #[test]
    fn unknown_names_are_none() {
        let table = SymbolTable::default();
        assert!(table.by_source_name(Source::Binance, "NOPEUSDT").is_none());
        assert!(table.source_name(Source::Coinbase, "BNB").is_none());
    }
}
