//! Refuses requests that carry an API key in the URL. A URL is written to proxy logs,
//! browser history and referrers, so such a key must be treated as leaked: the request
//! is answered 400 before anything logs the URL, and the key is not used.

use axum::extract::Request;
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};
use crate::error::{Problem, ProblemType};

/// Query parameter names that clients use for credentials.
const CREDENTIAL_PARAMS: [&str; 7] = [
    "api_key",
    "apikey",
    "api-key",
    "key",
    "token",
    "access_token",
    "authorization",
];

fn carries_credentials(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
        CREDENTIAL_PARAMS
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
            || value.contains("mkd_live_")
            || value.contains("mkd_test_")
    }) || query.contains("mkd_live_")
        || query.contains("mkd_test_")
}

pub fn layer() -> WrapLayer<RefuseCredentialsInUrl> {
    WrapLayer::new(RefuseCredentialsInUrl)
}

#[derive(Debug, Clone, Copy)]
pub struct RefuseCredentialsInUrl;

impl Wrap for RefuseCredentialsInUrl {
    type Carry = ();

    fn before(&self, request: &mut Request) -> Result<(), Response> {
        let in_query = request.uri().query().is_some_and(carries_credentials);
        let path = request.uri().path();
        let in_path = path.contains("mkd_live_") || path.contains("mkd_test_");
        if in_query || in_path {
            return Err(Problem::new(
                ProblemType::CredentialsInUrl,
                "API keys must not be sent in the URL; send it in `Authorization: Bearer <key>` \
                 or `X-API-Key`, and rotate this key: URLs are logged along the way",
            )
            .into_response_with(None));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::carries_credentials;

    #[test]
    fn spots_keys_by_name_and_by_shape() {
        assert!(carries_credentials("api_key=abc"));
        assert!(carries_credentials("symbols=BTC&ApiKey=abc"));
        assert!(carries_credentials("x=mkd_live_AAAA"));
        assert!(carries_credentials("x=mkd%5Ftest%5FAAAA"));
        assert!(!carries_credentials("symbols=BTC,ETH&limit=10"));
        assert!(!carries_credentials("cursor=bWtk"));
    }
}
