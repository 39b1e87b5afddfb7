//! Asset symbols: uppercase ASCII letters and digits, 1 to 15 characters.

use std::fmt;
use std::str::FromStr;

/// Longest symbol we accept; long enough for every listed asset, short enough to index.
pub const MAX_SYMBOL_LEN: usize = 15;

/// A validated, normalised (uppercase) asset symbol such as `BTC`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Symbol(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("a symbol must not be empty")]
    Empty,
    #[error("a symbol has at most {MAX_SYMBOL_LEN} characters")]
    TooLong,
    #[error("a symbol contains only letters A-Z and digits 0-9")]
    BadCharacter,
}

impl Symbol {
    /// Parses a symbol, accepting lowercase input: clients type `btc` as often as `BTC`,
    /// and we store only the uppercase form so lookups never depend on collation.
    pub fn parse(raw: &str) -> Result<Self, SymbolError> {
        if raw.is_empty() {
            return Err(SymbolError::Empty);
        }
        if raw.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SymbolError::BadCharacter);
        }
        Ok(Self(raw.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case() {
        assert_eq!(Symbol::parse("btc").unwrap().as_str(), "BTC");
        assert_eq!(Symbol::parse("Eth2").unwrap().as_str(), "ETH2");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Symbol::parse(""), Err(SymbolError::Empty));
        assert_eq!(Symbol::parse("ABCDEFGHIJKLMNOP"), Err(SymbolError::TooLong));
        assert_eq!(Symbol::parse("BTC-USD"), Err(SymbolError::BadCharacter));
        assert_eq!(Symbol::parse("BTÇ"), Err(SymbolError::BadCharacter));
    }
}
