//! Key management: `/v1/admin/keys…` (scope `keys:admin`) and `/v1/keys/self` (any valid
//! key). A full key appears only in the response that creates it; every response here is
//! `Cache-Control: no-store` so no cache keeps one.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use marketd_domain::access::{IpNet, KeyRecord, KeyState, Scope, Scopes};
use marketd_domain::api_key::KeyEnvironment;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::cursor;
use crate::auth::{NewKey, Principal, keyring::DEFAULT_RATE_LIMIT_PER_MINUTE};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::wire::{DataEnvelope, Timestamp};

const MAX_GRACE_SECS: u32 = 7 * 24 * 3600;
const DEFAULT_GRACE_SECS: u32 = 24 * 3600;
const MAX_CIDRS: usize = 32;
const MAX_EXPIRY_MS: i64 = 10 * 365 * 24 * 3600 * 1000;

/// A key as the API shows it: everything but the secret, which is never stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Public key id: the 12 characters after `mkd_live_` in the key itself.
    #[schema(example = "4fT9kQ2mZx7B")]
    pub id: String,
    #[schema(example = "dashboard")]
    pub name: String,
    /// `live` or `test`.
    #[schema(example = "live")]
    pub environment: String,
    /// `active`, `expired` or `revoked`.
    #[schema(example = "active")]
    pub status: String,
    #[schema(example = json!(["prices:read", "signals:read"]))]
    pub scopes: Vec<String>,
    /// CIDRs the key may be used from; empty means anywhere.
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub allowed_cidrs: Vec<String>,
    /// Requests per minute (bursts up to the same number).
    #[schema(example = 600)]
    pub rate_limit_per_minute: u32,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The key this one replaced.
    pub rotated_from: Option<String>,
    /// The key that replaced this one.
    pub rotated_to: Option<String>,
    /// Last successful use (updated within a few seconds, not per request).
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    /// Successful requests made with this key.
    pub usage_count: u64,
}

impl KeyOut {
    pub fn new(key: &KeyRecord, now: i64) -> Self {
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            environment: key.environment.as_str().to_owned(),
            status: match key.state(now) {
                KeyState::Active => "active",
                KeyState::Expired => "expired",
                KeyState::Revoked => "revoked",
            }
            .to_owned(),
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            allowed_cidrs: key.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rate_limit_per_minute: key.rate_limit_per_minute,
            created_at: Timestamp(key.created_at),
            expires_at: key.expires_at.map(Timestamp),
            revoked_at: key.revoked_at.map(Timestamp),
            rotated_from: key.rotated_from.clone(),
            rotated_to: key.rotated_to.clone(),
            last_used_at: key.last_used_at.map(Timestamp),
            last_used_ip: key.last_used_ip.map(|ip| ip.to_string()),
            usage_count: key.usage_count,
        }
    }
}

/// A newly issued key. `key` is shown in this response only: store it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyOut {
    /// The full API key. It cannot be retrieved again.
    #[schema(example = "mkd_live_4fT9kQ2mZx7B_…")]
    pub key: String,
    #[serde(flatten)]
    pub details: KeyOut,
}

/// A rotation: the new key (shown once) and the old one with its end of grace.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationOut {
    pub new_key: IssuedKeyOut,
    /// The old key; it keeps working until its `expires_at`.
    pub old_key: KeyOut,
}

/// A page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyOut>,
    pub next_cursor: Option<String>,
}

/// A scope name, for the document: the body takes strings so an unknown scope is a 422
/// naming it, not a parse failure of the whole body.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum ScopeName {
    #[serde(rename = "prices:read")]
    PricesRead,
    #[serde(rename = "signals:read")]
    SignalsRead,
    #[serde(rename = "backtests:run")]
    BacktestsRun,
    #[serde(rename = "alerts:write")]
    AlertsWrite,
    #[serde(rename = "ingest:write")]
    IngestWrite,
    #[serde(rename = "keys:admin")]
    KeysAdmin,
}

/// `live` or `test`, for the document.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentName {
    Live,
    Test,
}

/// Body of `POST /v1/admin/keys`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, 1 to 64 characters.
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    #[schema(example = "dashboard", min_length = 1, max_length = 64)]
    pub name: String,
    /// Scopes to grant; each must be held by the key making this request.
    #[validate(length(min = 1, max = 6, message = "must list 1 to 6 scopes"))]
    #[schema(value_type = Vec<ScopeName>, example = json!(["prices:read"]), min_items = 1, max_items = 6)]
    pub scopes: Vec<String>,
    /// CIDRs (IPv4 or IPv6) the key may be used from; omit for anywhere.
    #[schema(example = json!(["203.0.113.0/24"]), max_items = 32)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// When the key stops working (RFC 3339 or Unix ms); must be in the future.
    #[schema(value_type = Option<super::params::TimestampInput>, inline)]
    pub expires_at: Option<String>,
    /// Alternatively, a lifetime such as `90d`, `12h`, `30m` (at most 3650 days).
    #[schema(example = "90d", pattern = "^[1-9][0-9]{0,7}[smhd]$")]
    pub expires_in: Option<String>,
    /// Requests per minute, 1 to 10000000 (default 600).
    #[validate(range(min = 1, max = 10_000_000, message = "must be between 1 and 10000000"))]
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub rate_limit_per_minute: Option<u32>,
    /// `live` (default) or `test`.
    #[schema(value_type = Option<EnvironmentName>, example = "live")]
    pub environment: Option<String>,
}

/// Body of `POST /v1/admin/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working, 0 to 604800 (7 days); default 86400.
    #[validate(range(max = 604_800, message = "must be between 0 and 604800"))]
    #[schema(minimum = 0, maximum = 604_800, example = 3600)]
    pub grace_period_seconds: Option<u32>,
}

/// Query of `GET /v1/admin/keys`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// Keys per page, 1 to 1000 (default 100).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// A key id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyIdPath {
    /// The public key id.
    #[param(example = "4fT9kQ2mZx7B")]
    pub id: String,
}

/// Parses `90d`, `12h`, `30m`, `45s` into milliseconds.
pub fn parse_lifetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number = &text[..text.len() - unit.len_utf8()];
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms <= MAX_EXPIRY_MS)
}

fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Turns a request body into a key spec, collecting every problem at once.
pub fn key_spec(body: &CreateKey, now: i64) -> Result<NewKey, ApiError> {
    let mut errors = Vec::new();
    let mut scopes = Scopes::NONE;
    for (i, scope) in body.scopes.iter().enumerate() {
        match scope.parse::<Scope>() {
            Ok(scope) => scopes = scopes.iter().chain([scope]).collect(),
            Err(e) => errors.push(field(&format!("scopes[{i}]"), e.to_string())),
        }
    }
    let mut allowed_cidrs = Vec::new();
    let cidrs = body.allowed_cidrs.as_deref().unwrap_or_default();
    if cidrs.len() > MAX_CIDRS {
        errors.push(field(
            "allowed_cidrs",
            format!("at most {MAX_CIDRS} entries"),
        ));
    }
    for (i, cidr) in cidrs.iter().enumerate() {
        match cidr
            .parse::<IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => allowed_cidrs.push(net.trunc()),
            Err(_) => errors.push(field(
                &format!("allowed_cidrs[{i}]"),
                "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32",
            )),
        }
    }
    let expires_at = match (&body.expires_at, &body.expires_in) {
        (Some(_), Some(_)) => {
            errors.push(field(
                "expires_in",
                "give expires_at or expires_in, not both",
            ));
            None
        }
        (Some(at), None) => match super::params::timestamp_input(at) {
            Ok(at) if at > now && at - now <= MAX_EXPIRY_MS => Some(at),
            Ok(_) => {
                errors.push(field(
                    "expires_at",
                    "must be in the future, within 10 years",
                ));
                None
            }
            Err(_) => {
                errors.push(field("expires_at", "must be RFC 3339 or Unix milliseconds"));
                None
            }
        },
        (None, Some(lifetime)) => match parse_lifetime(lifetime) {
            Some(ms) => Some(now + ms),
            None => {
                errors.push(field(
                    "expires_in",
                    "must be a positive number of s, m, h or d (such as 90d), at most 3650d",
                ));
                None
            }
        },
        (None, None) => None,
    };
    let environment = match body.environment.as_deref() {
        None => KeyEnvironment::Live,
        Some(text) => KeyEnvironment::parse(text).unwrap_or_else(|| {
            errors.push(field("environment", "must be `live` or `test`"));
            KeyEnvironment::Live
        }),
    };
    let name = body.name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        errors.push(field("name", "must be 1 to 64 printable characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(NewKey {
        name: name.to_owned(),
        environment,
        scopes,
        allowed_cidrs,
        expires_at,
        rate_limit_per_minute: body
            .rate_limit_per_minute
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
    })
}

/// A key may only hand out scopes it holds itself.
fn check_grant(caller: &KeyRecord, scopes: Scopes) -> Result<(), ApiError> {
    if caller.scopes.covers(scopes) {
        return Ok(());
    }
    let missing: Vec<&str> = scopes
        .iter()
        .filter(|s| !caller.scopes.contains(*s))
        .map(Scope::as_str)
        .collect();
    Err(ApiError::Forbidden(format!(
        "a key cannot grant scopes it does not hold: {}",
        missing.join(", ")
    )))
}

fn valid_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn existing_key(state: &AppState, id: &str) -> Result<KeyRecord, ApiError> {
    if !valid_id(id) {
        return Err(ApiError::NotFound);
    }
    state.store.key(id).await?.ok_or(ApiError::NotFound)
}

/// Create a key.
///
/// Issues a key with the given scopes, allowlist, expiry and rate limit. The full key is
/// in this response only. A key can grant only scopes it holds. Requires scope
/// `keys:admin`.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "keys", operation_id = "keys_create",
    request_body = CreateKey,
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 201, description = "The new key, shown once", body = DataEnvelope<IssuedKeyOut>),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_create(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let spec = key_spec(&body, now)?;
    check_grant(&caller, spec.scopes)?;
    let issued = state
        .auth
        .keyring
        .issue(&spec, Some(&caller.id), now)
        .await?;
    tracing::info!(key_id = %issued.record.id, actor = %caller.id, "API key created");
    let out = IssuedKeyOut {
        details: KeyOut::new(&issued.record, now),
        key: issued.key,
    };
    Ok(no_store((
        StatusCode::CREATED,
        Json(DataEnvelope { data: out }),
    )))
}

/// List keys.
///
/// Every key, active or not, ordered by id, without secrets. Requires scope `keys:admin`.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "keys", operation_id = "keys_list",
    params(KeyListQuery),
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 200, description = "A page of keys", body = KeyList),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<KeyListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    let after = match query.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let fields = cursor::decode(raw, 1).ok_or(ApiError::InvalidCursor)?;
            let id = fields.into_iter().next().ok_or(ApiError::InvalidCursor)?;
            if !valid_id(&id) {
                return Err(ApiError::InvalidCursor);
            }
            Some(id)
        }
    };
    let mut keys = state.store.keys(after.as_deref(), limit + 1).await?;
    let next_cursor = if keys.len() > limit as usize {
        keys.truncate(limit as usize);
        keys.last().map(|k| cursor::encode(&[&k.id]))
    } else {
        None
    };
    let now = state.now();
    let data = keys.iter().map(|k| KeyOut::new(k, now)).collect();
    Ok(no_store(Json(KeyList { data, next_cursor })))
}

/// Show a key.
///
/// One key without its secret. A revoked key answers 404: `DELETE` removed it, and only
/// the key list (as `revoked`) and the audit log still record it. Requires scope
/// `keys:admin`.
#[utoipa::path(get, path = "/v1/admin/keys/{id}", tag = "keys", operation_id = "keys_get",
    params(KeyIdPath),
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 200, description = "The key", body = DataEnvelope<KeyOut>),
        (status = 404, description = "No such key, or a revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = existing_key(&state, &id).await?;
    let now = state.now();
    if key.state(now) == KeyState::Revoked {
        return Err(ApiError::NotFound);
    }
    Ok(no_store(Json(DataEnvelope {
        data: KeyOut::new(&key, now),
    })))
}

/// Revoke a key.
///
/// The key stops working at once on this server and within 2 seconds on every other
/// replica sharing the database. The answer is the key's last view: afterwards
/// `GET /v1/admin/keys/{id}` answers 404. Revoking a revoked key changes nothing.
/// Requires scope `keys:admin`.
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", tag = "keys", operation_id = "keys_revoke",
    params(KeyIdPath),
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 200, description = "The revoked key", body = DataEnvelope<KeyOut>),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_revoke(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::NotFound);
    }
    let now = state.now();
    let key = state
        .auth
        .keyring
        .revoke(&id, Some(&caller.id), now)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(key_id = %key.id, actor = %caller.id, "API key revoked");
    Ok(no_store(Json(DataEnvelope {
        data: KeyOut::new(&key, now),
    })))
}

/// Rotate a key.
///
/// Issues a successor with the same name, scopes, allowlist, expiry and rate limit; the
/// old key keeps working for the grace period (0 to 7 days, default 1 day), then answers
/// 401. The new key is in this response only. A key can rotate only keys whose scopes it
/// holds. Requires scope `keys:admin`.
#[utoipa::path(post, path = "/v1/admin/keys/{id}/rotate", tag = "keys", operation_id = "keys_rotate",
    params(KeyIdPath),
    request_body(content = Option<RotateKey>, description = "Optional: an empty body rotates with the default grace period"),
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 201, description = "The new key (shown once) and the old one", body = DataEnvelope<RotationOut>),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked, expired or already rotated", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid grace period", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_rotate(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<RotateKey>,
) -> Result<Response, ApiError> {
    let old = existing_key(&state, &id).await?;
    check_grant(&caller, old.scopes)?;
    let now = state.now();
    if old.state(now) != KeyState::Active || old.rotated_to.is_some() {
        return Err(ApiError::Conflict(
            "only an active key that has not been rotated yet can be rotated".into(),
        ));
    }
    let grace_secs = body
        .grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECS)
        .min(MAX_GRACE_SECS);
    let (issued, old) = state
        .auth
        .keyring
        .rotate(&old, i64::from(grace_secs) * 1000, Some(&caller.id), now)
        .await?
        .ok_or_else(|| ApiError::Conflict("the key was revoked or rotated meanwhile".into()))?;
    tracing::info!(key_id = %old.id, successor = %issued.record.id, actor = %caller.id, "API key rotated");
    let out = RotationOut {
        new_key: IssuedKeyOut {
            details: KeyOut::new(&issued.record, now),
            key: issued.key,
        },
        old_key: KeyOut::new(&old, now),
    };
    Ok(no_store((
        StatusCode::CREATED,
        Json(DataEnvelope { data: out }),
    )))
}

/// The calling key.
///
/// The key this request was made with: scopes, allowlist, rate limit, expiry and usage.
/// Any valid key may call it.
#[utoipa::path(get, path = "/v1/keys/self", tag = "keys", operation_id = "keys_self",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The calling key", body = DataEnvelope<KeyOut>),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn keys_self(
    State(state): State<AppState>,
    Extension(Principal(caller)): Extension<Principal>,
) -> Result<Response, ApiError> {
    // Fresh from the store: the cached record lags on usage.
    let key = state.store.key(&caller.id).await?;
    let key = key.as_ref().unwrap_or(&caller);
    Ok(no_store(Json(DataEnvelope {
        data: KeyOut::new(key, state.now()),
    })))
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes_parse_and_odd_text_is_refused() {
        assert_eq!(parse_lifetime("90d"), Some(90 * 86_400_000));
        assert_eq!(parse_lifetime(" 30m "), Some(30 * 60_000));
        for bad in [
            "", "d", "0d", "-1d", "10y", "\u{80}", "1\u{80}", "é", "99999d",
        ] {
            assert_eq!(parse_lifetime(bad), None, "{bad:?}");
        }
    }
}
