//! One module per resource: its router, handlers and wire types together.

pub mod assets;
pub mod audit;
pub mod health;
pub mod indicators;
pub mod keys;
pub mod ohlcv;
pub mod prices;

mod cursor;
mod interval;
mod params;
mod window;

pub use interval::IntervalName;
