//! Authentication and authorisation of every operation that declares security in the
//! OpenAPI document: 401 when no valid key is presented, 403 when the key lacks the
//! scope or is used from outside its allowlist, 429 for a client address that keeps
//! failing. Runs after routing (as a route layer) so it knows the route template.

use std::net::IpAddr;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use marketd_domain::access::{AuditEvent, Scope};

use super::response_cache::{self, ResponseCache};
use crate::auth::Auth;
use crate::auth::{AuthFailure, ClientIp, Principal, Requirement};
use crate::error::{ApiError, Problem, ProblemType};
use crate::state::{AppState, Clock};

/// What the auth, rate-limit and response-cache steps need: less than `AppState`, so
/// each request clones a few reference counts rather than all of them.
#[derive(Clone, Debug)]
pub struct Access {
    pub auth: std::sync::Arc<Auth>,
    pub clock: Clock,
    pub cache: std::sync::Arc<ResponseCache>,
}

impl Access {
    pub fn of(state: &AppState) -> Self {
        Self {
            auth: std::sync::Arc::clone(&state.auth),
            clock: state.clock,
            cache: std::sync::Arc::clone(&state.response_cache),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The presented key, if any; Err when the headers are present but unusable.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| ())?;
            let (scheme, token) = value.split_once(' ').ok_or(())?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(());
            }
            Some(token.trim())
        }
    };
    let api_key = match headers.get(&X_API_KEY) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| ())?.trim()),
    };
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => Err(()),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

fn unauthorized(problem_type: ProblemType, detail: &str, challenge: &'static str) -> Response {
    Problem::new(problem_type, detail).into_response_with([(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )])
}

fn too_many_failures(retry_after: u64) -> Response {
    let mut problem = Problem::new(
        ProblemType::RateLimited,
        "too many failed authentications from this address; retry later",
    );
    problem.violated_policies = Some(vec!["auth_failures".to_owned()]);
    problem.into_response_with([(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)))])
}

fn insufficient_scope(scope: Scope) -> Response {
    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
    Problem::new(
        ProblemType::InsufficientScope,
        format!("this operation requires scope `{scope}`"),
    )
    .into_response_with(
        HeaderValue::from_str(&challenge)
            .ok()
            .map(|v| (header::WWW_AUTHENTICATE, v)),
    )
}

pub async fn authenticate(
    State(state): State<Access>,
    mut request: Request,
    next: Next,
) -> Response {
    let requirement = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| state.auth.requirements.get(request.method(), path.as_str()))
        // A route missing from the document is refused rather than left open.
        .unwrap_or(Requirement::Scope(Scope::KeysAdmin));
    if requirement == Requirement::Public {
        return response_cache::respond(&state.cache, request, next).await;
    }
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0);
    let now = state.now();
    let auth = &state.auth;

    let presented = match presented_key(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return unauthorized(
                ProblemType::AuthenticationRequired,
                "send an API key in `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                "Bearer realm=\"marketd\"",
            );
        }
        Err(()) => return failed(&state, ip, &AuthFailure::Malformed, now),
    };
    let key = match auth.keyring.authenticate(presented, now).await {
        Ok(key) => key,
        Err(Ok(failure)) => return failed(&state, ip, &failure, now),
        Err(Err(store)) => {
            return axum::response::IntoResponse::into_response(ApiError::Store(store));
        }
    };

    if !key.allows_ip(ip) {
        auth.audit
            .record(AuditEvent::IpDenied, now, Some(&key.id), Some(ip), None);
        if let Some(alert) = auth.alerts.ip_denied(&key.id, ip, now) {
            auth.audit.record(
                AuditEvent::SecurityAlert,
                now,
                alert.key_id.as_deref(),
                Some(ip),
                Some(alert.kind.as_str()),
            );
        }
        return Problem::new(
            ProblemType::IpNotAllowed,
            "this key may not be used from this address",
        )
        .into_response_with(None);
    }
    if let Requirement::Scope(scope) = requirement
        && !key.scopes.contains(scope)
    {
        auth.audit.record(
            AuditEvent::ScopeDenied,
            now,
            Some(&key.id),
            Some(ip),
            Some(scope.as_str()),
        );
        return insufficient_scope(scope);
    }
    auth.keyring.note_use(&key.id, ip, now);
    tracing::Span::current().record("key_id", key.id.as_str());
    request.extensions_mut().insert(Principal(key));
    super::rate_limit::limit(&state, request, next).await
}

/// Records a failed authentication and answers it: 401, or 429 once this address has
/// failed too often.
fn failed(state: &Access, ip: IpAddr, failure: &AuthFailure, now: i64) -> Response {
    let auth = &state.auth;
    auth.audit.record(
        AuditEvent::AuthFailed,
        now,
        failure.key_id(),
        Some(ip),
        Some(failure.reason()),
    );
    for alert in auth.alerts.auth_failed(ip, failure.key_id(), now) {
        auth.audit.record(
            AuditEvent::SecurityAlert,
            now,
            alert.key_id.as_deref(),
            Some(ip),
            Some(alert.kind.as_str()),
        );
    }
    // A blocked address still gets through with a valid key: the block stops guessing,
    // not a legitimate client sharing the address.
    let blocked = auth.failures.blocked(ip);
    if let Some(retry_after) = auth.failures.record_failure(ip).or(blocked) {
        return too_many_failures(retry_after);
    }
    // Only a caller who proved the secret learns that the key expired or was revoked.
    let detail = match failure {
        AuthFailure::Expired { .. } => "the API key has expired",
        AuthFailure::Revoked { .. } => "the API key has been revoked",
        _ => "the API key is not valid",
    };
    unauthorized(
        ProblemType::InvalidCredentials,
        detail,
        "Bearer realm=\"marketd\", error=\"invalid_token\"",
    )
}
