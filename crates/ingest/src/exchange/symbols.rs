//! How each exchange names the assets we track. The defaults cover the 20 largest assets
//! by market capitalisation that trade against USD or USDT; configuration can replace or
//! extend them later through [`SymbolTable::new`].

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
    fn unknown_names_are_none() {
        let table = SymbolTable::default();
        assert!(table.by_source_name(Source::Binance, "NOPEUSDT").is_none());
        assert!(table.source_name(Source::Coinbase, "BNB").is_none());
    }
}
