//! Per-key rate limiting (GCRA) for authenticated requests. Every such response carries
//! `RateLimit-Policy` and `RateLimit`; a refused one is a 429 problem with
//! `Retry-After` and `violated-policies`. Failed authentications never reach this layer,
//! so they cannot spend a key's quota.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use marketd_domain::access::AuditEvent;

use super::auth::Access;
use super::response_cache;
use crate::auth::{ClientIp, Principal};
use crate::error::{Problem, ProblemType};
use crate::limiter::rate_limit_headers;

/// The layer on its own, for routers that authenticate some other way.
pub async fn rate_limit(State(state): State<Access>, request: Request, next: Next) -> Response {
    limit(&state, request, next).await
}

/// Rate-limits the authenticated caller of `request`, then answers from the response
/// cache or runs the rest of the stack. The auth layer calls this directly after
/// authenticating, so a request passes one middleware boundary rather than three.
pub async fn limit(state: &Access, request: Request, next: Next) -> Response {
    let Some(Principal(key)) = request.extensions().get::<Principal>().cloned() else {
        return response_cache::respond(&state.cache, request, next).await;
    };
    let decision = state.auth.limiter.check(&key.id, key.rate_limit_per_minute);
    let headers = rate_limit_headers(&decision);
    if !decision.allowed {
        let ip = request.extensions().get::<ClientIp>().map(|c| c.0);
        state.auth.audit.record(
            AuditEvent::RateLimited,
            state.now(),
            Some(&key.id),
            ip,
            None,
        );
        let mut problem = Problem::new(
            ProblemType::RateLimited,
            format!(
                "this key may make {} requests per minute; retry in {} s",
                decision.limit, decision.retry_after_secs
            ),
        );
        problem.violated_policies = Some(vec!["minute".to_owned()]);
        let retry_after = (
            header::RETRY_AFTER,
            HeaderValue::from(decision.retry_after_secs.max(1)),
        );
        return problem.into_response_with(headers.into_iter().chain([retry_after]));
    }
    // The cache answers only after the quota is charged, so a hit never skips it.
    let mut response = response_cache::respond(&state.cache, request, next).await;
    response.headers_mut().extend(headers);
    response
}
