//! `GET /v1/stream/prices`: latest prices as Server-Sent Events.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;
use validator::Validate;

use super::params;
use super::prices::price_out;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::price_stream::{PriceEvent, STREAMS_PER_KEY, StreamSlot};
use crate::state::AppState;

const MAX_SYMBOLS: usize = 20;
/// A comment line this often keeps proxies from closing a quiet stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Query of `GET /v1/stream/prices`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated symbols (at most 20), e.g. `BTC,ETH`.
    #[param(
        pattern = "^[A-Za-z0-9]{1,15}(,[A-Za-z0-9]{1,15}){0,19}$",
        example = "BTC,ETH"
    )]
    pub symbols: String,
}

/// Live prices.
///
/// Server-Sent Events: first the latest known price of each requested symbol, then an
/// event per change, each `event: price` with an increasing `id` and the price as JSON
/// data (the shape of a `/v1/prices` entry). A `: heartbeat` comment comes every 15 s.
/// Reconnect with `Last-Event-ID` to receive the changes since that event (the newest
/// 1024 are kept; from further back you get the latest prices again). A client that
/// falls too far behind gets `event: lagged` and the stream ends; at server shutdown,
/// `event: shutdown` ends it. At most 5 open streams per key. Requires scope
/// `prices:read`.
#[utoipa::path(get, path = "/v1/stream/prices", tag = "prices", operation_id = "stream_prices",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received, to resume after it"),
    ),
    security(("bearer" = ["prices:read"]), ("api_key" = ["prices:read"])),
    responses(
        (status = 200, description = "An event stream of price changes", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad symbols", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream_prices(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let symbols: BTreeSet<String> = params::symbol_list(&query.symbols, MAX_SYMBOLS)?
        .into_iter()
        .collect();
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let key_id = principal.map_or_else(String::new, |Extension(p)| p.0.id.clone());
    let slot = state.streams.open(&key_id).ok_or_else(|| {
        ApiError::TooManyStreams(format!(
            "at most {STREAMS_PER_KEY} open streams per key; close one first"
        ))
    })?;
    let (replay, receiver) = state.price_hub.subscribe(after);
    let feed = Feed {
        replay: replay.into(),
        receiver,
        symbols,
        shutdown: state.shutdown.clone(),
        ended: false,
        stale_after_ms: state.stale_after_ms,
        clock: state.clock,
        _slot: slot,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<Event, Infallible>(event), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// One client's stream: the replayed events, then live ones, until it ends.
struct Feed {
    replay: VecDeque<PriceEvent>,
    receiver: broadcast::Receiver<PriceEvent>,
    symbols: BTreeSet<String>,
    shutdown: CancellationToken,
    ended: bool,
    stale_after_ms: i64,
    clock: crate::state::Clock,
    _slot: StreamSlot,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        while let Some(event) = self.replay.pop_front() {
            if self.symbols.contains(&event.price.symbol) {
                return Some(self.price(event));
            }
        }
        loop {
            let received = tokio::select! {
                () = self.shutdown.cancelled() => {
                    self.ended = true;
                    return Some(Event::default().event("shutdown").data(r#"{"reason":"the server is shutting down; reconnect with Last-Event-ID"}"#));
                }
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) if self.symbols.contains(&event.price.symbol) => {
                    return Some(self.price(event));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    self.ended = true;
                    return Some(Event::default().event("lagged").data(format!(
                        r#"{{"reason":"this client fell behind and missed {missed} events; reconnect with Last-Event-ID"}}"#
                    )));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn price(&self, event: PriceEvent) -> Event {
        let out = price_out(event.price, (self.clock)(), self.stale_after_ms);
        let data = serde_json::to_string(&out).unwrap_or_default();
        Event::default()
            .event("price")
            .id(event.id.to_string())
            .data(data)
    }
}
