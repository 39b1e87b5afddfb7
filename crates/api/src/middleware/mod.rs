//! Tower middleware, one concern per module. `crate::app` composes them in one place.

pub mod auth;
pub mod body_limit;
pub mod client_ip;
pub mod compression;
pub mod cors;
pub mod credentials;
pub mod header_limit;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod response_cache;
pub mod security_headers;
pub mod timeout;
pub mod trace;
pub mod wrap;

/// The settings of the layers an operator can tune.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub timeouts: timeout::Timeouts,
    pub body_limit: body_limit::BodyLimit,
    pub header_limit: header_limit::HeaderLimit,
    /// Origins browsers may call from, as sent in `Origin`; empty turns CORS off.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}
