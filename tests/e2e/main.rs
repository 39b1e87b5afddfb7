//! Black-box tests: the real server on a real socket, over SQLite and Postgres.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod api;
mod auth;
mod cli;
mod connections;
mod helpers;
mod indicators;
mod middleware;
mod openapi;
mod otel;
mod replicas;
mod secrets;
mod signals;
mod stored_signals;
mod stream;
mod tls;
