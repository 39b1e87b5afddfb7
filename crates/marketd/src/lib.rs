//! marketd as a library: configuration, commands and the server wiring, so the binary
//! stays thin and tests start the real thing in-process.

pub mod backfill;
pub mod cli;
pub mod config;
pub mod http;
pub mod import;
pub mod ingest;
pub mod keys;
pub mod pepper;
pub mod server;
pub mod telemetry;
pub mod tls;
