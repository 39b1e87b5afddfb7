//! `GET /v1/admin/audit`: the audit log of key lifecycle events, failed and denied
//! requests and rate limiting, newest first.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use marketd_domain::access::{AuditEntry, AuditEvent, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::{cursor, params};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::wire::Timestamp;

/// Query of `GET /v1/admin/audit`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this key id.
    #[param(pattern = "^[0-9A-Za-z]{12}$", example = "4fT9kQ2mZx7B")]
    pub key_id: Option<String>,
    /// Only this event: key_created, key_rotated, key_revoked, key_expired, auth_failed,
    /// ip_denied, scope_denied, rate_limited or security_alert.
    #[param(example = "auth_failed")]
    pub event: Option<String>,
    /// Entries at or after this instant (RFC 3339 or Unix ms).
    #[param(value_type = Option<super::params::TimestampInput>, inline)]
    pub start: Option<String>,
    /// Entries before this instant (RFC 3339 or Unix ms).
    #[param(value_type = Option<super::params::TimestampInput>, inline)]
    pub end: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// One audit entry. Repeated failures, denials and rate limiting are grouped per minute:
/// `at` is then the minute and `count` how many times it happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub id: i64,
    pub at: Timestamp,
    #[schema(example = "auth_failed")]
    pub event: String,
    /// The key the entry is about (for a failed authentication, the id in the presented
    /// key, which may not exist).
    pub key_id: Option<String>,
    /// The key that performed a lifecycle action; null for the CLI and first start.
    pub actor_key_id: Option<String>,
    pub ip: Option<String>,
    #[schema(example = "wrong_secret")]
    pub reason: Option<String>,
    pub count: u64,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: Timestamp(e.at),
            event: e.event.as_str().to_owned(),
            key_id: e.key_id,
            actor_key_id: e.actor_key_id,
            ip: e.ip.map(|ip| ip.to_string()),
            reason: e.reason,
            count: e.count,
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEntryOut>,
    pub next_cursor: Option<String>,
}

fn filter_of(query: &AuditQuery) -> Result<AuditFilter, ApiError> {
    let mut errors = Vec::new();
    let key_id = query.key_id.clone();
    if key_id
        .as_deref()
        .is_some_and(|id| id.len() != 12 || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        errors.push(crate::error::FieldError {
            field: "key_id".into(),
            message: "must be 12 letters and digits".into(),
        });
    }
    let event = match query.event.as_deref().map(AuditEvent::from_str) {
        None => None,
        Some(Ok(event)) => Some(event),
        Some(Err(message)) => {
            errors.push(crate::error::FieldError {
                field: "event".into(),
                message,
            });
            None
        }
    };
    let start = query
        .start
        .as_deref()
        .map(|s| params::timestamp("start", s));
    let end = query.end.as_deref().map(|s| params::timestamp("end", s));
    let start = match start.transpose() {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let end = match end.transpose() {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::InvalidRange {
            field: "start",
            message: "must not be after `end`",
        });
    }
    Ok(AuditFilter {
        key_id,
        event,
        start,
        end,
        before_id: None,
    })
}

/// The audit log.
///
/// Key lifecycle events (created, rotated, revoked, expired), failed authentications,
/// denied addresses and scopes, rate limiting and security alerts, newest first.
/// Requires scope `keys:admin`.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "keys", operation_id = "audit_list",
    params(AuditQuery),
    security(("bearer" = ["keys:admin"]), ("api_key" = ["keys:admin"])),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditList),
        (status = 400, description = "Malformed query, cursor or range", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut filter = filter_of(&query)?;
    // The cursor carries the filter it was issued for, so it cannot page another query.
    let fingerprint = format!(
        "{:?}",
        (&filter.key_id, filter.event, filter.start, filter.end)
    );
    if let Some(raw) = query.cursor.as_deref() {
        let fields = cursor::decode(raw, 2).ok_or(ApiError::InvalidCursor)?;
        let before: i64 = fields[0].parse().map_err(|_| ApiError::InvalidCursor)?;
        if fields[1] != fingerprint {
            return Err(ApiError::InvalidCursor);
        }
        filter.before_id = Some(before);
    }
    let limit = query.limit.unwrap_or(100);
    let mut entries = state.store.audit(&filter, limit + 1).await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries
            .last()
            .map(|e| cursor::encode(&[&e.id.to_string(), &fingerprint]))
    } else {
        None
    };
    let data = entries.into_iter().map(AuditEntryOut::from).collect();
    let mut response = Json(AuditList { data, next_cursor }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
