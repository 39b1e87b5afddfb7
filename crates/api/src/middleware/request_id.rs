//! Gives every request an id: the caller's `x-request-id` when it is sane, else a new
//! UUIDv7. It is echoed on the response and written into every problem document.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use super::wrap::{Wrap, WrapLayer};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied id we keep; longer ones are replaced, not truncated, so an id
/// always matches what the caller can search their own logs for.
const MAX_LEN: usize = 128;

/// The id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn layer() -> WrapLayer<AssignRequestId> {
    WrapLayer::new(AssignRequestId)
}

#[derive(Debug, Clone, Copy)]
pub struct AssignRequestId;

impl Wrap for AssignRequestId {
    type Carry = HeaderValue;

    fn before(&self, request: &mut Request) -> Result<HeaderValue, Response> {
        let id = request
            .headers()
            .get(&X_REQUEST_ID)
            .filter(|v| acceptable(v))
            .cloned()
            .unwrap_or_else(|| {
                let mut text = uuid::Uuid::encode_buffer();
                let fresh = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
                HeaderValue::from_str(fresh).unwrap_or(HeaderValue::from_static("unknown"))
            });
        request.extensions_mut().insert(RequestId(id.clone()));
        Ok(id)
    }

    fn after(id: HeaderValue, mut response: Response) -> Response {
        response.headers_mut().insert(X_REQUEST_ID.clone(), id);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_sane_ids() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
