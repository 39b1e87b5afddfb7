//! The HTTP client every exchange source goes through, and the defences it carries:
//! timeouts, a response size cap, outbound rate limits and upstream-ordered pauses,
//! bounded retries with jittered backoff, a circuit breaker, and counters.
//!
//! One [`Upstream`] per source, so a misbehaving exchange is paused, retried and cut off
//! on its own while the others carry on.
//!
//! Each attempt runs in a client span named by source and route (`GET binance
//! /api/v3/klines`), a child of whatever asked (an ingest poll), and carries that span's
//! W3C `traceparent` so the exchange's side of the call can join the trace. The span is
//! at DEBUG: with trace export off it is disabled and no header is added.

mod backoff;
mod breaker;
mod stats;
mod throttle;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use backoff::RetryPolicy;
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permit};
pub use stats::{RequestCounts, SourceStats};
pub use throttle::{RateLimit, WeightLimit};

use crate::source::SourceError;
use throttle::Throttle;

pub(crate) const SPAN_TARGET: &str = module_path!();

/// Binance answers 418 to clients that kept going after a 429: a ban, not a hint.
const IM_A_TEAPOT: u16 = 418;
/// How much of an error body is kept for the message; enough for any JSON envelope.
const ERROR_EXCERPT_BYTES: usize = 512;
/// How much of an error body is read at all.
const ERROR_BODY_BYTES: usize = 4096;

/// How one source's client behaves. [`UpstreamConfig::new`] gives conservative general
/// defaults; each source adjusts them to its upstream's published limits.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Scheme, host and optional path prefix every request starts from.
    pub base_url: String,
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from sending it to the last body byte.
    pub timeout: Duration,
    /// Largest (decompressed) body accepted; larger ones are refused while streaming.
    pub max_body_bytes: usize,
    /// Outbound budget; `None` sends as fast as callers ask.
    pub rate_limit: Option<RateLimit>,
    /// A used-weight header to watch, for upstreams that report one.
    pub weight_limit: Option<WeightLimit>,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// The longest upstream-ordered pause a call waits out; a longer one fails the call
    /// at once with [`SourceError::Paused`] or [`SourceError::RateLimited`].
    pub max_pause: Duration,
    /// The pause after a 429 or 418 whose `Retry-After` is missing or unreadable.
    pub default_pause: Duration,
    pub user_agent: String,
}

impl UpstreamConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_body_bytes: 8 * 1024 * 1024,
            rate_limit: None,
            weight_limit: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_pause: Duration::from_secs(60),
            default_pause: Duration::from_secs(5),
            user_agent: concat!("marketd/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// One GET request: path segments under the base URL, the query, and what it costs
/// against the rate limit.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub path: &'a [&'a str],
    /// The path with its variable segments as `{name}`, for span names: a symbol in a
    /// span name would make one operation look like many.
    pub route: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub cost: u32,
}

/// The resilient client of one source.
#[derive(Debug)]
pub struct Upstream {
    name: &'static str,
    client: reqwest::Client,
    base: Url,
    config: UpstreamConfig,
    throttle: Throttle,
    breaker: CircuitBreaker,
    stats: Mutex<SourceStats>,
}

/// Whether an attempt's outcome says anything about the upstream's health.
enum Health {
    Good,
    Bad,
    Neutral,
}

impl Upstream {
    pub fn new(name: &'static str, config: UpstreamConfig) -> Result<Self, SourceError> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| SourceError::Config(format!("{name} base URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(SourceError::Config(format!(
                "{name} base URL {base} is not an http(s) URL"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // A market-data endpoint that redirects has moved or been hijacked; either way a
            // person should look rather than the client follow.
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| SourceError::Config(format!("{name} HTTP client: {e}")))?;
        let throttle = Throttle::new(
            config.rate_limit,
            config.weight_limit.clone(),
            config.max_pause,
        )
        .map_err(|e| SourceError::Config(format!("{name} rate limit: {e}")))?;
        Ok(Self {
            name,
            client,
            base,
            throttle,
            breaker: CircuitBreaker::new(config.breaker),
            stats: Mutex::new(SourceStats::default()),
            config,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn stats(&self) -> SourceStats {
        let mut stats = self.lock_stats().clone();
        stats.breaker = self.breaker.state();
        stats
    }

    /// Counts rows the caller accepted and refused after parsing.
    pub fn record_rows(&self, accepted: usize, rejected: usize) {
        let mut stats = self.lock_stats();
        stats.rows_accepted += accepted as u64;
        stats.rows_rejected += rejected as u64;
    }

    /// Sends `call`, retrying what is worth retrying, and hands the body of a 2xx answer to
    /// `parse`. A parse error is final (the same bytes would come back), except
    /// [`SourceError::Unavailable`] and [`SourceError::RateLimited`], which upstreams that
    /// answer 200 to everything use to say "busy".
    pub async fn get<T>(
        &self,
        call: &Call<'_>,
        parse: impl Fn(&[u8]) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let url = self.url(call)?;
        let mut attempt: u32 = 1;
        loop {
            if let Err(remaining) = self.throttle.acquire(call.cost).await {
                self.lock_stats().paused += 1;
                return Err(SourceError::Paused { remaining });
            }
            let permit = match self.breaker.admit() {
                Ok(permit) => permit,
                Err(retry_in) => {
                    self.lock_stats().short_circuited += 1;
                    return Err(SourceError::CircuitOpen { retry_in });
                }
            };
            let started = Instant::now();
            let span = tracing::debug_span!(
                "upstream",
                otel.name = %format_args!("GET {} {}", self.name, call.route),
                otel.kind = "client",
                otel.status_code = Empty,
                source = self.name,
                http.request.method = "GET",
                server.address = self.base.host_str().unwrap_or_default(),
                http.response.status_code = Empty,
                attempt,
            );
            let result = self
                .attempt(&url, &parse, &span)
                .instrument(span.clone())
                .await;
            if result.is_err() {
                span.record("otel.status_code", "error");
            }
            self.lock_stats().record(&result, started.elapsed());
            match health(&result) {
                Health::Good => {
                    if permit.success() {
                        tracing::info!(
                            source = self.name,
                            "circuit closed: the upstream answers again"
                        );
                    }
                }
                Health::Bad => {
                    if permit.failure() {
                        tracing::warn!(
                            source = self.name,
                            cool_down = ?self.config.breaker.cool_down,
                            "circuit opened after repeated failures"
                        );
                    }
                }
                Health::Neutral => drop(permit),
            }
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= self.config.retry.max_attempts {
                return Err(error);
            }
            match &error {
                // The pause is the wait: the throttle holds the next attempt until it ends.
                SourceError::RateLimited { retry_after, .. } => {
                    if *retry_after > self.config.max_pause {
                        return Err(error);
                    }
                }
                _ => tokio::time::sleep(self.config.retry.delay(attempt)).await,
            }
            attempt += 1;
            self.lock_stats().retries += 1;
            tracing::debug!(source = self.name, attempt, %error, "retrying");
        }
    }

    async fn attempt<T>(
        &self,
        url: &Url,
        parse: &impl Fn(&[u8]) -> Result<T, SourceError>,
        span: &tracing::Span,
    ) -> Result<T, SourceError> {
        let response = self
            .client
            .get(url.clone())
            .headers(trace_context(span))
            .send()
            .await
            .map_err(|e| from_reqwest(&e))?;
        span.record("http.response.status_code", response.status().as_u16());
        if let Some(pause) = self.throttle.observe(response.headers()) {
            tracing::info!(
                source = self.name,
                ?pause,
                "near the upstream's weight limit; pausing"
            );
        }
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == IM_A_TEAPOT {
            let retry_after = retry_after(response.headers(), SystemTime::now())
                .unwrap_or(self.config.default_pause);
            self.throttle.pause(retry_after);
            tracing::warn!(
                source = self.name,
                status = status.as_u16(),
                ?retry_after,
                "rate limited"
            );
            return Err(SourceError::RateLimited {
                status: status.as_u16(),
                retry_after,
            });
        }
        if !status.is_success() {
            let body = read_capped(response, ERROR_BODY_BYTES, false).await?;
            return Err(SourceError::Status {
                status: status.as_u16(),
                message: excerpt(&body),
            });
        }
        let body = read_capped(response, self.config.max_body_bytes, true).await?;
        let parsed = parse(&body);
        if let Err(SourceError::RateLimited { retry_after, .. }) = &parsed {
            self.throttle.pause(*retry_after);
        }
        parsed
    }

    fn url(&self, call: &Call<'_>) -> Result<Url, SourceError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SourceError::Config(format!("{} base URL has no path", self.name)))?
            .pop_if_empty()
            .extend(call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, SourceStats> {
        // Counters stay meaningful after a panic elsewhere.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The W3C trace context of `span`, as request headers; none while the span is disabled
/// (trace export off) or no propagator is installed.
fn trace_context(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if !span.is_disabled() {
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(&mut headers),
            );
        });
    }
    headers
}

fn health<T>(result: &Result<T, SourceError>) -> Health {
    match result {
        Ok(_) => Health::Good,
        Err(SourceError::RateLimited { .. }) => Health::Neutral,
        // The upstream is up and answered; the request was at fault.
        Err(SourceError::Status { status, .. }) if *status < 500 => Health::Good,
        Err(SourceError::Payload(crate::exchange::PayloadError::Upstream(_))) => Health::Good,
        Err(_) => Health::Bad,
    }
}

fn from_reqwest(error: &reqwest::Error) -> SourceError {
    // reqwest's own message is terse ("error sending request"); the cause is in the chain.
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    if error.is_timeout() {
        SourceError::Timeout
    } else if error.is_connect() {
        SourceError::Connect(message)
    } else {
        SourceError::Transport(message)
    }
}

/// Reads a body of at most `cap` bytes. When `strict`, a longer body is an error, found
/// out from Content-Length or while streaming, so an endless or enormous body never sits
/// in memory. Otherwise the rest is dropped unread (error bodies are only excerpted).
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    strict: bool,
) -> Result<Vec<u8>, SourceError> {
    let declared = response.content_length();
    if strict && declared.is_some_and(|len| len > cap as u64) {
        return Err(SourceError::TooLarge { limit: cap });
    }
    let mut body = Vec::with_capacity(declared.map_or(8 * 1024, |len| len as usize).min(cap));
    while let Some(chunk) = response.chunk().await.map_err(|e| from_reqwest(&e))? {
        if body.len() + chunk.len() > cap {
            if strict {
                return Err(SourceError::TooLarge { limit: cap });
            }
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_EXCERPT_BYTES)]);
    text.trim().to_owned()
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, retry_after.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers("Wed, 21 Oct 2015 07:28:00 GMT"),
                now + Duration::from_secs(60)
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn urls_keep_a_base_path_and_escape_segments() {
        let upstream =
            Upstream::new("test", UpstreamConfig::new("http://127.0.0.1:9/prefix/")).unwrap();
        let url = upstream
            .url(&Call {
                path: &["products", "BTC USD", "candles"],
                route: "/products/{product}/candles",
                query: vec![("granularity", "60".to_owned())],
                cost: 1,
            })
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/products/BTC%20USD/candles?granularity=60"
        );
    }

    #[test]
    fn bad_base_urls_are_configuration_errors() {
        for base in ["not a url", "mailto:x@example.com", "ftp://example.com"] {
            assert!(matches!(
                Upstream::new("test", UpstreamConfig::new(base)),
                Err(SourceError::Config(_))
            ));
        }
    }
}
