//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//!
//! Handlers return `ApiError`; its response carries the `Problem` in the response
//! extensions so the problem middleware can add the request id and `instance`, which
//! only it knows. Internal causes are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marketd_storage::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying while the database is unavailable.
const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 5;

/// Stable machine-readable problem codes; clients branch on these, never on `title`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// The query string could not be parsed (wrong type, unknown parameter, bad encoding).
    MalformedQuery,
    /// One or more parameters are well-formed but not allowed; see `errors`.
    ValidationFailed,
    /// The pagination cursor is not one this endpoint issued for this query.
    InvalidCursor,
    /// Each parameter is valid alone but together they are not (`start` after `end`).
    InvalidRange,
    /// The requested range holds more rows than one response may carry.
    RangeTooLarge,
    /// The request body is not valid JSON of the documented shape.
    MalformedBody,
    /// The request body's media type is not one this endpoint accepts.
    UnsupportedMediaType,
    /// An API key (or something shaped like one) was sent in the URL, where proxies and
    /// logs keep it; send it in `Authorization: Bearer` or `X-API-Key` instead. Rotate it.
    CredentialsInUrl,
    /// No API key was sent; see `WWW-Authenticate`.
    AuthenticationRequired,
    /// The API key is malformed, unknown, expired or revoked.
    InvalidCredentials,
    /// The key is valid but lacks the scope this operation requires.
    InsufficientScope,
    /// The key is valid but may not be used from this client address.
    IpNotAllowed,
    /// Too many requests; retry after `Retry-After` seconds. `violated-policies` names
    /// the limits that were exceeded.
    RateLimited,
    /// The request conflicts with the resource's current state.
    Conflict,
    /// No tracked asset has this symbol.
    UnknownSymbol,
    /// No route matches the path.
    NotFound,
    /// The route exists but not with this method; see the `Allow` header.
    MethodNotAllowed,
    /// A dependency (the database) is unavailable; retry after `Retry-After` seconds.
    ServiceUnavailable,
    /// The server did not produce an answer within its time limit; retry later, or ask
    /// for less (a narrower range, fewer symbols).
    Timeout,
    /// The request body did not arrive within the time limit after the headers.
    BodyTimeout,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request line and headers are larger than the server accepts.
    HeadersTooLarge,
    /// An unexpected error; the `request_id` lets operators find its cause.
    InternalError,
}

impl ProblemType {
    fn status(self) -> StatusCode {
        match self {
            ProblemType::MalformedQuery
            | ProblemType::InvalidCursor
            | ProblemType::InvalidRange
            | ProblemType::MalformedBody
            | ProblemType::CredentialsInUrl => StatusCode::BAD_REQUEST,
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::AuthenticationRequired | ProblemType::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ProblemType::InsufficientScope | ProblemType::IpNotAllowed => StatusCode::FORBIDDEN,
            ProblemType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::Conflict => StatusCode::CONFLICT,
            ProblemType::ValidationFailed | ProblemType::RangeTooLarge => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ProblemType::UnknownSymbol | ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemType::ServiceUnavailable | ProblemType::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProblemType::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProblemType::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ProblemType::MalformedQuery => "Malformed query string",
            ProblemType::ValidationFailed => "Invalid parameters",
            ProblemType::InvalidCursor => "Invalid cursor",
            ProblemType::InvalidRange => "Invalid range",
            ProblemType::RangeTooLarge => "Range too large",
            ProblemType::MalformedBody => "Malformed request body",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::CredentialsInUrl => "Credentials in URL",
            ProblemType::AuthenticationRequired => "Authentication required",
            ProblemType::InvalidCredentials => "Invalid credentials",
            ProblemType::InsufficientScope => "Insufficient scope",
            ProblemType::IpNotAllowed => "Address not allowed",
            ProblemType::RateLimited => "Too many requests",
            ProblemType::Conflict => "Conflict",
            ProblemType::UnknownSymbol => "Unknown symbol",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::ServiceUnavailable => "Service unavailable",
            ProblemType::Timeout => "Timed out",
            ProblemType::BodyTimeout => "Request body timed out",
            ProblemType::PayloadTooLarge => "Request body too large",
            ProblemType::HeadersTooLarge => "Request headers too large",
            ProblemType::InternalError => "Internal error",
        }
    }
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The parameter, as named in the request (`start`, `limit`, `symbols[2]`).
    #[schema(example = "limit")]
    pub field: String,
    /// What is wrong and what is allowed.
    #[schema(example = "must be between 1 and 1000")]
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "validation_failed",
    "title": "Invalid parameters",
    "status": 422,
    "detail": "1 parameter is invalid",
    "instance": "/v1/ohlcv/BTC?limit=5000",
    "request_id": "01937d3e-8f5a-7c3b-9a1e-2b4c6d8e0f12",
    "errors": [{"field": "limit", "message": "must be between 1 and 1000"}]
}))]
pub struct Problem {
    /// Stable problem code; a relative URI reference per RFC 9457.
    #[serde(rename = "type")]
    pub problem_type: ProblemType,
    /// Short human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 404)]
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// The request path and query that caused the problem.
    pub instance: String,
    /// The request id, also in the `x-request-id` response header.
    pub request_id: String,
    /// Per-field validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// For `rate_limited`: the names of the policies that were exceeded.
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["minute"]))]
    pub violated_policies: Option<Vec<String>>,
}

impl Problem {
    pub fn new(problem_type: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            problem_type,
            title: problem_type.title().to_owned(),
            status: problem_type.status().as_u16(),
            detail: detail.into(),
            instance: String::new(),
            request_id: String::new(),
            errors: None,
            violated_policies: None,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Renders the problem; the problem middleware re-renders it with request context.
    pub fn into_response_with(
        self,
        extra: impl IntoIterator<Item = (header::HeaderName, HeaderValue)>,
    ) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status_code(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in extra {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedQuery(String),
    #[error("{} parameter(s) invalid", .0.len())]
    Validation(Vec<FieldError>),
    #[error("the cursor is invalid for this query")]
    InvalidCursor,
    #[error("`{field}` {message}")]
    InvalidRange {
        field: &'static str,
        message: &'static str,
    },
    #[error("{0}")]
    RangeTooLarge(String),
    #[error("no tracked asset has the symbol {0}")]
    UnknownSymbol(String),
    #[error("no route matches this path")]
    NotFound,
    #[error("{0}")]
    MalformedBody(String),
    #[error("send the body as `application/json`")]
    UnsupportedMediaType,
    #[error("{0}")]
    Conflict(String),
    /// Too many queued or running jobs for this key.
    #[error("{0}")]
    TooManyJobs(String),
    /// Too many open streams for this key.
    #[error("{0}")]
    TooManyStreams(String),
    /// The caller's key lacks a scope the request needs (e.g. to grant it to a new key).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure that is neither the client's nor the database's; the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A single-field validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let (problem, extra) = match self {
            ApiError::MalformedQuery(_) => {
                (Problem::new(ProblemType::MalformedQuery, detail), None)
            }
            ApiError::Validation(errors) => {
                let detail = match errors.as_slice() {
                    [only] => format!("`{}` {}", only.field, only.message),
                    _ => format!("{} parameters are invalid", errors.len()),
                };
                let mut problem = Problem::new(ProblemType::ValidationFailed, detail);
                problem.errors = Some(errors);
                (problem, None)
            }
            ApiError::InvalidCursor => (
                Problem::new(
                    ProblemType::InvalidCursor,
                    "the cursor was not issued for this query; restart from the first page",
                ),
                None,
            ),
            ApiError::InvalidRange { field, message } => {
                let mut problem = Problem::new(ProblemType::InvalidRange, detail);
                problem.errors = Some(vec![FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                }]);
                (problem, None)
            }
            ApiError::RangeTooLarge(_) => (Problem::new(ProblemType::RangeTooLarge, detail), None),
            ApiError::UnknownSymbol(_) => (Problem::new(ProblemType::UnknownSymbol, detail), None),
            ApiError::NotFound => (Problem::new(ProblemType::NotFound, detail), None),
            ApiError::MalformedBody(_) => (Problem::new(ProblemType::MalformedBody, detail), None),
            ApiError::UnsupportedMediaType => (
                Problem::new(ProblemType::UnsupportedMediaType, detail),
                None,
            ),
            ApiError::Conflict(_) => (Problem::new(ProblemType::Conflict, detail), None),
            ApiError::TooManyJobs(_) => {
                let mut problem = Problem::new(ProblemType::RateLimited, detail);
                problem.violated_policies = Some(vec!["backtests".to_owned()]);
                (
                    problem,
                    Some((
                        header::RETRY_AFTER,
                        HeaderValue::from(RETRY_AFTER_UNAVAILABLE_SECS),
                    )),
                )
            }
            ApiError::TooManyStreams(_) => {
                let mut problem = Problem::new(ProblemType::RateLimited, detail);
                problem.violated_policies = Some(vec!["streams".to_owned()]);
                (problem, None)
            }
            ApiError::Forbidden(_) => (Problem::new(ProblemType::InsufficientScope, detail), None),
            ApiError::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "database unavailable");
                (
                    Problem::new(
                        ProblemType::ServiceUnavailable,
                        "the database is unavailable; retry shortly",
                    ),
                    Some((
                        header::RETRY_AFTER,
                        HeaderValue::from(RETRY_AFTER_UNAVAILABLE_SECS),
                    )),
                )
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (
                    Problem::new(ProblemType::InternalError, "an unexpected error occurred"),
                    None,
                )
            }
            ApiError::Store(err) => {
                tracing::error!(error = %err, "store error");
                (
                    Problem::new(ProblemType::InternalError, "an unexpected error occurred"),
                    None,
                )
            }
        };
        problem.into_response_with(extra)
    }
}
