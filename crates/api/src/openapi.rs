//! The base OpenAPI document: info, tags and security schemes. Paths are added by the
//! routers themselves (utoipa-axum), so no route can exist without its description.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "marketd",
        description = "Crypto market data: assets, latest prices and candles (OHLCV), \
            validated and documented. Errors are RFC 9457 problem documents whose `type` \
            is a stable code. Timestamps are RFC 3339 UTC; inputs also accept Unix \
            milliseconds. Lists are cursor-paginated: follow `next_cursor` or the `Link: \
            rel=\"next\"` header.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "assets", description = "Tracked assets and the data stored for them"),
        (name = "prices", description = "Latest prices with 24-hour statistics"),
        (name = "ohlcv", description = "Candles at any supported interval"),
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
