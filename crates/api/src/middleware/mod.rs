//! Tower middleware, one concern per module. `crate::app` composes them in one place.

pub mod auth;
pub mod client_ip;
pub mod credentials;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
