//! Counters per source, kept in plain memory and read as a snapshot by whatever exports
//! metrics or answers health checks.

use std::time::Duration;

use super::breaker::BreakerState;
use crate::source::SourceError;

/// Requests sent, by how they ended. Every attempt counts, retries included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// 2xx with a payload that parsed.
    pub ok: u64,
    /// 4xx other than 429 and 418, and 3xx (redirects are not followed).
    pub client_error: u64,
    /// 5xx, and 200 answers that say the upstream is overloaded.
    pub server_error: u64,
    /// 429 and 418, and 200 answers that say the rate limit was hit.
    pub rate_limited: u64,
    pub timeout: u64,
    /// Connection refused or reset, TLS failures, bodies cut short.
    pub network: u64,
    /// 2xx whose payload was refused whole (not JSON, wrong shape, an error envelope).
    pub bad_payload: u64,
    /// Bodies over the size cap.
    pub too_large: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.ok
            + self.client_error
            + self.server_error
            + self.rate_limited
            + self.timeout
            + self.network
            + self.bad_payload
            + self.too_large
    }
}

/// A snapshot of one source's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub requests: RequestCounts,
    /// Attempts after the first within one call.
    pub retries: u64,
    /// Calls refused without a request because the circuit was open.
    pub short_circuited: u64,
    /// Calls refused without a request because an upstream-ordered pause was too long to
    /// wait out.
    pub paused: u64,
    /// Rows that passed every check.
    pub rows_accepted: u64,
    /// Rows refused one by one (the reasons travel with the page).
    pub rows_rejected: u64,
    /// Duration of the last completed request, body included.
    pub last_latency: Option<Duration>,
    pub breaker: BreakerState,
}

impl SourceStats {
    pub(crate) fn record<T>(&mut self, result: &Result<T, SourceError>, latency: Duration) {
        let counts = &mut self.requests;
        let counter = match result {
            Ok(_) => &mut counts.ok,
            Err(SourceError::Status { status, .. }) if *status >= 500 => &mut counts.server_error,
            Err(SourceError::Status { .. }) => &mut counts.client_error,
            Err(SourceError::Unavailable(_)) => &mut counts.server_error,
            Err(SourceError::RateLimited { .. }) => &mut counts.rate_limited,
            Err(SourceError::Timeout) => &mut counts.timeout,
            Err(SourceError::Connect(_) | SourceError::Transport(_)) => &mut counts.network,
            Err(SourceError::TooLarge { .. }) => &mut counts.too_large,
            Err(_) => &mut counts.bad_payload,
        };
        *counter += 1;
        self.last_latency = Some(latency);
    }
}
