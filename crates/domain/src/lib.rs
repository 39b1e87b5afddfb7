//! The vocabulary of marketd: what a symbol, an interval and a candle are, and the maths
//! over them. Nothing here performs I/O, so every rule can be tested exhaustively.

pub mod access;
pub mod aggregate;
pub mod api_key;
pub mod candle;
pub mod indicators;
pub mod interval;
pub mod price;
pub mod strategy;
pub mod symbol;
pub mod timestamp;

pub use aggregate::{Aggregator, MIXED_SOURCE, aggregate};
pub use candle::{Bar, Candle, CandleError};
pub use interval::Interval;
pub use price::LatestPrice;
pub use symbol::{Symbol, SymbolError};
pub use timestamp::{TimestampError, format_rfc3339_ms, parse_timestamp, write_rfc3339_ms};
