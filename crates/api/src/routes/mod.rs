//! One module per resource: its router, handlers and wire types together.

pub mod assets;
pub mod health;
pub mod ohlcv;
pub mod prices;

mod cursor;
mod interval;
mod params;

pub use interval::IntervalName;
