//! Where marketd's data comes from: the deterministic simulated market used for demos and
//! offline work, CSV files, and (later) exchanges' public APIs.

pub mod csv_import;
pub mod demo;
pub mod exchange;
pub mod simulated;
