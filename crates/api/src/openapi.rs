//! The base OpenAPI document: info, tags and security schemes. Paths are added by the
//! routers themselves (utoipa-axum), so no route can exist without its description.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "marketd",
        description = "Crypto market data: assets, latest prices and candles (OHLCV), \
            validated and documented. Errors are RFC 9457 problem documents whose `type` \
            is a stable code. Timestamps are RFC 3339 UTC; inputs also accept Unix \
            milliseconds. Lists are cursor-paginated: follow `next_cursor` or the `Link: \
            rel=\"next\"` header. Every /v1 operation needs an API key with the scope \
            it names, sent as `Authorization: Bearer <key>` or `X-API-Key`; never in the \
            URL. Authenticated responses carry `RateLimit-Policy` and `RateLimit` headers. \
            A request whose line and headers exceed the server's limit is answered 431 by \
            the HTTP server itself, before routing and without a body.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "assets", description = "Tracked assets and the data stored for them"),
        (name = "prices", description = "Latest prices with 24-hour statistics"),
        (name = "ohlcv", description = "Candles at any supported interval"),
        (name = "signals", description = "Strategies and their trading signals, explainable and reproducible"),
        (name = "backtests", description = "Backtests of a strategy, run as jobs"),
        (name = "keys", description = "API keys and the audit log"),
        (name = "ops", description = "Health and readiness probes"),
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mkd_live_…")
                    .description(Some("An API key sent as `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same API key sent in the `X-API-Key` header.",
            ))),
        );
    }
}

/// Adds the answers every secured operation can give (401, 403, 429) to each operation
/// that declares security, so they are documented once and never forgotten.
pub fn document_auth_responses(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add_auth_responses(operation);
            }
        }
    }
}

/// Adds the answers the middleware can give to any operation: 503 `timeout` (except for
/// event streams), and 408 and 413 for a body that arrives too slowly or is too large. The 431 for oversized
/// headers comes from the HTTP server before any route is chosen, without a problem
/// body, so the document's description states it once.
pub fn document_transport_responses(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut doc.paths.paths {
        let timed = !crate::middleware::timeout::exempt(path);
        let cacheable =
            crate::middleware::response_cache::CACHEABLE_ROUTES.contains(&path.as_str());
        if let Some(get) = item.get.as_mut().filter(|_| cacheable) {
            let not_modified = utoipa::openapi::ResponseBuilder::new()
                .description(
                    "Not modified: `If-None-Match` holds the current `ETag` of this answer",
                )
                .build();
            get.responses
                .responses
                .insert("304".to_owned(), RefOr::T(not_modified));
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if timed {
                add_timeout_response(operation);
            }
            if operation.request_body.is_some() {
                add_problem_response(
                    operation,
                    "408",
                    "The request body did not arrive within the time limit (`body_timeout`)",
                );
                add_problem_response(
                    operation,
                    "413",
                    "The request body is larger than the server accepts (`payload_too_large`)",
                );
            }
        }
    }
}

/// A 503 may already be documented for an unavailable database; the timeout is another
/// cause of the same status.
fn add_timeout_response(operation: &mut Operation) {
    match operation.responses.responses.get_mut("503") {
        Some(RefOr::T(response)) => {
            response.description = format!(
                "{} (`service_unavailable`), or no answer within the time limit (`timeout`)",
                response.description
            );
        }
        Some(RefOr::Ref(_)) => {}
        None => add_problem_response(
            operation,
            "503",
            "No answer within the time limit (`timeout`)",
        ),
    }
}

fn add_problem_response(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            crate::error::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert(RefOr::T(response));
}

fn add_auth_responses(operation: &mut Operation) {
    let answers = [
        (
            "401",
            "No API key, or a malformed, unknown, expired or revoked one (`WWW-Authenticate` says which kind)",
        ),
        (
            "403",
            "The key lacks the required scope, or may not be used from this address",
        ),
        (
            "429",
            "Rate limited: this key's quota, or too many failed authentications from this address; see `Retry-After`",
        ),
    ];
    for (status, description) in answers {
        add_problem_response(operation, status, description);
    }
}
