//! Where marketd's data comes from: the deterministic simulated market used for demos and
//! offline work, CSV files, and exchanges' public APIs.
//!
//! [`backfill`] walks a source's history into the store page by page; [`repair`] asks
//! again, and asks the fallbacks, for the buckets a backfill found missing, and records
//! what none has; [`schedule`] keeps configured series current by backfilling them again
//! on every poll.
//!
//! [`exchange`] parses exchange payloads without any I/O; [`source`] fetches them over
//! HTTP through [`resilience`], which keeps each exchange's failures to itself.

pub mod backfill;
pub mod csv_import;
pub mod demo;
pub mod exchange;
pub mod reconcile;
pub mod repair;
pub mod resilience;
pub mod schedule;
pub mod simulated;
pub mod source;
pub mod ticks;

/// Where the ingest's trace spans are made (polls, upstream calls), for a filter that
/// enables them for trace export.
pub const SPAN_TARGETS: [&str; 2] = [resilience::SPAN_TARGET, schedule::SPAN_TARGET];
