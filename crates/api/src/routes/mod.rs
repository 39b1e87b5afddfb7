//! One module per resource: its router, handlers and wire types together.

pub mod assets;
pub mod audit;
pub mod backtests;
pub mod health;
pub mod history;
pub mod indicators;
pub mod keys;
pub mod metrics;
pub mod ohlcv;
pub mod prices;
pub mod signals;
pub mod strategies;
pub mod stream;

mod cursor;
mod interval;
mod number_pattern;
mod params;
mod window;

pub use interval::IntervalName;
