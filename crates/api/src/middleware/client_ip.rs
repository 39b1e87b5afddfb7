//! Resolves the client address once per request (see `auth::client_ip`) and stores it
//! in the request extensions for the auth, rate-limit and audit code.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};
use crate::auth::Auth;

pub fn layer(auth: Arc<Auth>) -> WrapLayer<ResolveClientIp> {
    WrapLayer::new(ResolveClientIp(auth))
}

#[derive(Debug, Clone)]
pub struct ResolveClientIp(Arc<Auth>);

impl Wrap for ResolveClientIp {
    type Carry = ();

    fn before(&self, request: &mut Request) -> Result<(), Response> {
        // Without connection info (an in-process call) the address is unknown:
        // unspecified, which no allowlist contains.
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        let client = self.0.trusted_proxies.resolve(peer, request.headers());
        request.extensions_mut().insert(client);
        Ok(())
    }
}
