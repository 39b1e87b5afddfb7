//! Tower middleware, one concern per module. `crate::app` composes them in one place.

pub mod problem;
pub mod request_id;
