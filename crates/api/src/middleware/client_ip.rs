//! Resolves the client address once per request (see `auth::client_ip`) and stores it
//! in the request extensions for the auth, rate-limit and audit code.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn client_ip(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Without connection info (an in-process call) the address is unknown: unspecified,
    // which no allowlist contains.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let client = state.auth.trusted_proxies.resolve(peer, request.headers());
    request.extensions_mut().insert(client);
    next.run(request).await
}
