//! Security alerts: a valid API key used from outside its IP allowlist, and bursts of
//! failed authentications from one client network or against one key id.
//!
//! Every alert is logged at WARN and handed back to the caller, which also writes it to
//! the audit log. When a webhook is configured the alert is POSTed there too, signed as
//! the Standard Webhooks specification describes (<https://www.standardwebhooks.com>) so
//! a receiver can verify it with any of that specification's libraries. Delivery happens
//! in the background: the request that raised an alert never waits for it.

use std::error::Error as _;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::state::system_clock;
use crate::wire::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Alerts waiting for delivery. Past this, new alerts are dropped (they are still logged
/// and returned) rather than letting a dead receiver hold memory or slow requests.
const QUEUE_CAPACITY: usize = 1024;

/// Messages delivered (or waiting between retries) at once, so one message in backoff
/// never holds up the next, yet an unreachable receiver cannot pile up tasks.
const MAX_CONCURRENT_DELIVERIES: usize = 16;

/// Entries per counting table. A flood of distinct addresses or invented key ids evicts
/// old entries instead of growing memory.
const MAX_TRACKED: u64 = 100_000;

/// Longer "key ids" cannot be real ones; counting them per key would only let a caller
/// fill the table with large strings. They still count against the client network.
const MAX_KEY_ID_LEN: usize = 64;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reference implementations decode the secret with or without padding; so do we, so a
/// secret copied from another tool is not rejected over a missing `=`.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key that signs webhook messages.
///
/// Written as `whsec_<base64 of the key bytes>`, the Standard Webhooks form, or as plain
/// text whose bytes are the key. Only the keyed HMAC state is kept, and `Debug` never
/// shows it.
#[derive(Clone)]
pub struct WebhookSecret {
    mac: HmacSha256,
}

/// Why a webhook secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("the webhook secret is empty")]
    Empty,
    /// Not read as plain text instead: that would silently sign with a different key
    /// from the one the receiver holds.
    #[error("the webhook secret starts with `whsec_` but the rest is not base64")]
    InvalidBase64,
}

impl WebhookSecret {
    /// Reads `whsec_<base64>` or, without that prefix, plain text.
    pub fn parse(text: &str) -> Result<Self, WebhookSecretError> {
        match text.strip_prefix("whsec_") {
            Some(encoded) => {
                let key = SECRET_BASE64
                    .decode(encoded)
                    .map_err(|_| WebhookSecretError::InvalidBase64)?;
                Self::from_bytes(&key)
            }
            None => Self::from_bytes(text.as_bytes()),
        }
    }

    /// A secret from the raw key bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self, WebhookSecretError> {
        if key.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        // HMAC takes keys of any length, so this arm is never taken in practice.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| WebhookSecretError::Empty)?;
        Ok(Self { mac })
    }
}

impl FromStr for WebhookSecret {
    type Err = WebhookSecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The Standard Webhooks signature of one delivery attempt: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// How often and how patiently a webhook message is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Longest wait before the first retry; it doubles for each later one.
    pub base: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl RetrySchedule {
    /// The longest wait before retry number `retry` (1 for the first retry).
    fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// "Full jitter": a uniform wait up to the ceiling, so many senders that failed
    /// together do not all come back at the same instant.
    fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        match getrandom::u64() {
            Ok(random) => Duration::from_nanos(random % ceiling_ns.saturating_add(1)),
            // Without randomness the plain exponential wait is still correct, only less spread.
            Err(_) => ceiling,
        }
    }
}

/// Where security alerts are POSTed.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: reqwest::Url,
    pub secret: WebhookSecret,
    pub retry: RetrySchedule,
}

impl WebhookConfig {
    /// A webhook with the default retry schedule (500 ms doubling to 30 s, 5 attempts).
    pub fn new(url: reqwest::Url, secret: WebhookSecret) -> Self {
        Self {
            url,
            secret,
            retry: RetrySchedule::default(),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Receivers often put a token in the path or query; only the origin is safe to show.
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.origin().ascii_serialization())
            .field("secret", &self.secret)
            .field("retry", &self.retry)
            .finish()
    }
}

/// When failed authentications become an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertThresholds {
    /// Failures from one client network (an IPv4 address or an IPv6 /64) within `window`.
    /// Zero is read as one.
    pub failures_per_ip: u32,
    /// Failures presenting one key id within `window`. Zero is read as one.
    pub failures_per_key: u32,
    /// Counting starts at the first failure and lasts this long; an IP denial is alerted
    /// at most once per window too.
    pub window: Duration,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            failures_per_ip: 20,
            failures_per_key: 10,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A valid key was used from an address outside its allowlist.
    IpNotAllowed,
    /// Too many failed authentications from one client network.
    FailedAuthBurstIp,
    /// Too many failed authentications presenting one key id.
    FailedAuthBurstKey,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::IpNotAllowed => "ip_not_allowed",
            AlertKind::FailedAuthBurstIp => "failed_auth_burst_ip",
            AlertKind::FailedAuthBurstKey => "failed_auth_burst_key",
        }
    }
}

/// One security alert, as logged, returned to the caller and sent to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// The key concerned; `None` for a burst from one network, which may span many keys.
    pub key_id: Option<String>,
    /// The client address of the request that raised the alert (IPv4-mapped IPv6
    /// addresses are shown as IPv4). A burst is counted over its whole IPv6 /64.
    pub ip: IpAddr,
    /// Failures counted in the window; 1 for `ip_not_allowed`.
    pub count: u32,
    pub window_secs: u64,
    /// When the alert was raised, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// Counts failures, raises alerts and hands them to the webhook. Cheap to clone.
#[derive(Clone)]
pub struct SecurityAlerts {
    inner: Arc<Inner>,
}

struct Inner {
    thresholds: AlertThresholds,
    window_ms: i64,
    failures_by_network: Cache<IpAddr, Window>,
    failures_by_key: Cache<String, Window>,
    /// When each (key id, client network) pair was last alerted.
    denials: Cache<(String, IpAddr), i64>,
    queue: Option<mpsc::Sender<Queued>>,
    pending: Arc<Pending>,
}

/// A fixed counting window. The window itself runs on the caller's clock; the cache's
/// time-to-live only frees entries that have gone quiet for a whole window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    count: u32,
}

impl SecurityAlerts {
    /// Starts the webhook delivery task when `webhook` is given.
    ///
    /// # Panics
    /// With a webhook, when called outside a tokio runtime.
    pub fn new(thresholds: AlertThresholds, webhook: Option<WebhookConfig>) -> Self {
        let thresholds = AlertThresholds {
            failures_per_ip: thresholds.failures_per_ip.max(1),
            failures_per_key: thresholds.failures_per_key.max(1),
            window: thresholds.window.max(Duration::from_millis(1)),
        };
        let pending = Arc::new(Pending::default());
        let queue = webhook.and_then(start_delivery);
        Self {
            inner: Arc::new(Inner {
                thresholds,
                window_ms: i64::try_from(thresholds.window.as_millis()).unwrap_or(i64::MAX),
                failures_by_network: tracker(thresholds.window),
                failures_by_key: tracker(thresholds.window),
                denials: tracker(thresholds.window),
                queue,
                pending,
            }),
        }
    }

    /// A valid key presented from an address outside its allowlist. Alerts at most once
    /// per key and client network per window, so a misconfigured client does not flood.
    pub fn ip_denied(&self, key_id: &str, ip: IpAddr, now_ms: i64) -> Option<Alert> {
        let ip = ip.to_canonical();
        let window_ms = self.inner.window_ms;
        let outcome = self
            .inner
            .denials
            .entry((key_id.to_owned(), network(ip)))
            .and_compute_with(|last| match last {
                Some(last) if within(*last.value(), now_ms, window_ms) => Op::Nop,
                _ => Op::Put(now_ms),
            });
        match outcome {
            CompResult::Inserted(_) | CompResult::ReplacedWith(_) => {
                let alert = self
                    .inner
                    .alert(AlertKind::IpNotAllowed, Some(key_id), ip, 1, now_ms);
                self.inner.raise(&alert);
                Some(alert)
            }
            _ => None,
        }
    }

    /// A failed authentication; `key_id` is the id parsed from the presented key, when it
    /// had one. Returns the alerts this failure raised: only the failure that reaches a
    /// threshold raises one, later failures in the same window do not.
    pub fn auth_failed(&self, ip: IpAddr, key_id: Option<&str>, now_ms: i64) -> Vec<Alert> {
        let ip = ip.to_canonical();
        let inner = &*self.inner;
        let mut alerts = Vec::new();

        let count = inner.count(&inner.failures_by_network, network(ip), now_ms);
        if count == inner.thresholds.failures_per_ip {
            alerts.push(inner.alert(AlertKind::FailedAuthBurstIp, None, ip, count, now_ms));
        }

        if let Some(key_id) = key_id.filter(|id| id.len() <= MAX_KEY_ID_LEN) {
            let count = inner.count(&inner.failures_by_key, key_id.to_owned(), now_ms);
            if count == inner.thresholds.failures_per_key {
                let kind = AlertKind::FailedAuthBurstKey;
                alerts.push(inner.alert(kind, Some(key_id), ip, count, now_ms));
            }
        }

        for alert in &alerts {
            inner.raise(alert);
        }
        alerts
    }

    /// Waits, at most `timeout`, for queued and in-flight deliveries to finish. For
    /// graceful shutdown: alerts raised just before it still reach the receiver.
    pub async fn flush(&self, timeout: Duration) {
        let pending = &self.inner.pending;
        let drained = tokio::time::timeout(timeout, async {
            loop {
                // Registered before reading the count, so a delivery finishing in between
                // still wakes us.
                let mut idle = std::pin::pin!(pending.idle.notified());
                idle.as_mut().enable();
                if pending.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                undelivered = pending.count.load(Ordering::SeqCst),
                "security alert webhook deliveries still pending after {timeout:?}"
            );
        }
    }
}

impl fmt::Debug for SecurityAlerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityAlerts")
            .field("thresholds", &self.inner.thresholds)
            .field("webhook", &self.inner.queue.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Counts one failure for `key` and returns the count in the current window.
    fn count<K>(&self, table: &Cache<K, Window>, key: K, now_ms: i64) -> u32
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
    {
        table
            .entry(key)
            .and_upsert_with(|current| match current.map(|entry| entry.into_value()) {
                Some(window) if within(window.start_ms, now_ms, self.window_ms) => Window {
                    start_ms: window.start_ms,
                    count: window.count.saturating_add(1),
                },
                _ => Window {
                    start_ms: now_ms,
                    count: 1,
                },
            })
            .into_value()
            .count
    }

    fn alert(
        &self,
        kind: AlertKind,
        key_id: Option<&str>,
        ip: IpAddr,
        count: u32,
        now_ms: i64,
    ) -> Alert {
        Alert {
            kind,
            key_id: key_id.map(str::to_owned),
            ip,
            count,
            window_secs: self.thresholds.window.as_secs(),
            at: now_ms,
        }
    }

    fn raise(&self, alert: &Alert) {
        tracing::warn!(
            kind = alert.kind.as_str(),
            key_id = alert.key_id.as_deref(),
            ip = %alert.ip,
            count = alert.count,
            window = ?self.thresholds.window,
            "security alert"
        );
        let Some(queue) = &self.queue else { return };
        let queued = Queued {
            alert: alert.clone(),
            _pending: PendingGuard::new(&self.pending),
        };
        match queue.try_send(queued) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::warn!(
                kind = alert.kind.as_str(),
                "security alert webhook queue is full; this alert is logged but not sent"
            ),
            Err(TrySendError::Closed(_)) => tracing::warn!(
                kind = alert.kind.as_str(),
                "security alert webhook delivery has stopped; this alert is logged but not sent"
            ),
        }
    }
}

fn tracker<K, V>(window: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_TRACKED)
        .time_to_live(window)
        .build()
}

/// Whether `now_ms` is still inside the window opened at `start_ms`. A clock that stepped
/// back counts as inside, so it cannot be used to reset a count.
fn within(start_ms: i64, now_ms: i64, window_ms: i64) -> bool {
    now_ms.saturating_sub(start_ms) < window_ms
}

/// The unit failures are counted over. One IPv6 subscriber usually holds a whole /64, so
/// counting single addresses there would let one attacker rotate past any threshold.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// Deliveries not yet finished, for `flush`.
#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

/// One pending delivery. It travels with the alert and is dropped when delivery ends in
/// any way (sent, given up, dropped from a full queue, task cancelled), so the count
/// cannot leak.
struct PendingGuard(Arc<Pending>);

impl PendingGuard {
    fn new(pending: &Arc<Pending>) -> Self {
        pending.count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(pending))
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

struct Queued {
    alert: Alert,
    _pending: PendingGuard,
}

fn start_delivery(config: WebhookConfig) -> Option<mpsc::Sender<Queued>> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // A redirect would send the signed alert somewhere the operator did not configure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("marketd/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(
                error = %error.without_url(),
                "cannot build the webhook HTTP client; security alerts will only be logged"
            );
            return None;
        }
    };
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(Arc::new(Webhook { client, config }).run(receiver));
    Some(sender)
}

struct Webhook {
    client: reqwest::Client,
    config: WebhookConfig,
}

/// The `{"type", "timestamp", "data"}` payload shape the specification recommends.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: Timestamp,
    data: &'a Alert,
}

enum Attempt {
    Delivered,
    /// Retrying cannot help: the receiver refused the message.
    Refused(String),
    /// Worth another try: the receiver was unreachable, slow, failing or throttling.
    Failed(String),
}

impl Webhook {
    async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<Queued>) {
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
        while let Some(queued) = queue.recv().await {
            // Waiting for a slot leaves new alerts in the queue, where a full queue drops
            // them; the request path only ever does a `try_send`.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let webhook = Arc::clone(&self);
            tokio::spawn(async move {
                webhook.deliver(&queued.alert).await;
                drop(slot);
                drop(queued);
            });
        }
    }

    async fn deliver(&self, alert: &Alert) {
        let envelope = Envelope {
            kind: "security.alert",
            timestamp: Timestamp(alert.at),
            data: alert,
        };
        let body = match serde_json::to_vec(&envelope) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(%error, "cannot encode a security alert for the webhook");
                return;
            }
        };
        // One id for every attempt, so the receiver can discard duplicates.
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let retry = self.config.retry;
        let attempts = retry.max_attempts.max(1);
        for attempt in 1..=attempts {
            let reason = match self.attempt(&id, body.clone()).await {
                Attempt::Delivered => {
                    tracing::debug!(webhook_id = %id, attempt, "security alert delivered");
                    return;
                }
                Attempt::Refused(reason) => {
                    tracing::warn!(
                        webhook_id = %id,
                        kind = alert.kind.as_str(),
                        reason,
                        "the webhook receiver refused a security alert; not retrying"
                    );
                    return;
                }
                Attempt::Failed(reason) => reason,
            };
            if attempt == attempts {
                tracing::warn!(
                    webhook_id = %id,
                    kind = alert.kind.as_str(),
                    attempts,
                    reason,
                    "giving up delivering a security alert"
                );
                return;
            }
            let delay = retry.delay(attempt);
            tracing::debug!(webhook_id = %id, attempt, reason, ?delay, "retrying security alert");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, id: &str, body: Bytes) -> Attempt {
        // Signed afresh for every attempt: receivers reject stale timestamps.
        let timestamp = system_clock().div_euclid(1000);
        let signature = sign(&self.config.secret, id, timestamp, &body);
        let sent = self
            .client
            .post(self.config.url.clone())
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    Attempt::Failed(format!("status {status}"))
                } else {
                    Attempt::Refused(format!("status {status}"))
                }
            }
            Err(error) if error.is_builder() => Attempt::Refused(describe(error)),
            Err(error) => Attempt::Failed(describe(error)),
        }
    }
}

/// The error and its causes on one line, without the URL, which may carry a token.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
        alerts.iter().map(|a| a.kind).collect()
    }

    fn logged_only() -> SecurityAlerts {
        SecurityAlerts::new(AlertThresholds::default(), None)
    }

    #[test]
    fn the_failure_that_reaches_the_ip_threshold_raises_one_alert() {
        let alerts = logged_only();
        for i in 0..19 {
            assert!(alerts.auth_failed(v4(7), None, NOW + i).is_empty());
        }
        let raised = alerts.auth_failed(v4(7), None, NOW + 19);
        assert_eq!(
            raised,
            vec![Alert {
                kind: AlertKind::FailedAuthBurstIp,
                key_id: None,
                ip: v4(7),
                count: 20,
                window_secs: 60,
                at: NOW + 19,
            }]
        );
        assert!(alerts.auth_failed(v4(7), None, NOW + 20).is_empty());
        // Another address has its own count.
        assert!(alerts.auth_failed(v4(8), None, NOW + 20).is_empty());
    }

    #[test]
    fn the_failure_that_reaches_the_key_threshold_raises_one_alert() {
        let alerts = logged_only();
        // A different address each time, so only the key's count can cross.
        for i in 0..9u8 {
            assert!(alerts.auth_failed(v4(i), Some("k1"), NOW).is_empty());
        }
        let raised = alerts.auth_failed(v4(9), Some("k1"), NOW);
        assert_eq!(kinds(&raised), [AlertKind::FailedAuthBurstKey]);
        assert_eq!(raised[0].key_id.as_deref(), Some("k1"));
        assert_eq!(raised[0].ip, v4(9));
        assert_eq!(raised[0].count, 10);
        assert!(alerts.auth_failed(v4(10), Some("k1"), NOW).is_empty());
        assert!(alerts.auth_failed(v4(11), Some("k2"), NOW).is_empty());
    }

    #[test]
    fn one_failure_can_raise_both_bursts() {
        let thresholds = AlertThresholds {
            failures_per_ip: 1,
            failures_per_key: 1,
            ..AlertThresholds::default()
        };
        let alerts = SecurityAlerts::new(thresholds, None);
        let raised = alerts.auth_failed(v4(1), Some("k1"), NOW);
        assert_eq!(
            kinds(&raised),
            [AlertKind::FailedAuthBurstIp, AlertKind::FailedAuthBurstKey]
        );
    }

    #[test]
    fn counting_starts_again_once_the_window_has_passed() {
        let alerts = logged_only();
        for _ in 0..20 {
            alerts.auth_failed(v4(7), None, NOW);
        }
        // Still the same window: the count goes on past the threshold, silently.
        for _ in 0..20 {
            assert!(alerts.auth_failed(v4(7), None, NOW + 59_999).is_empty());
        }
        for _ in 0..19 {
            assert!(alerts.auth_failed(v4(7), None, NOW + 60_000).is_empty());
        }
        assert_eq!(alerts.auth_failed(v4(7), None, NOW + 60_000).len(), 1);
    }

    #[test]
    fn ipv6_failures_count_per_64_and_mapped_ipv4_as_ipv4() {
        let alerts = logged_only();
        for i in 0..19u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
            assert!(alerts.auth_failed(ip, None, NOW).is_empty());
        }
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(alerts.auth_failed(other_64, None, NOW).is_empty());
        let last = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 99));
        let raised = alerts.auth_failed(last, None, NOW);
        assert_eq!(kinds(&raised), [AlertKind::FailedAuthBurstIp]);
        assert_eq!(raised[0].ip, last);

        for _ in 0..10 {
            alerts.auth_failed(v4(1), None, NOW);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped());
        for _ in 0..9 {
            assert!(alerts.auth_failed(mapped, None, NOW).is_empty());
        }
        let raised = alerts.auth_failed(mapped, None, NOW);
        assert_eq!(raised[0].ip, v4(1));
    }

    #[test]
    fn oversized_key_ids_count_only_against_the_network() {
        let thresholds = AlertThresholds {
            failures_per_key: 1,
            ..AlertThresholds::default()
        };
        let alerts = SecurityAlerts::new(thresholds, None);
        let long = "x".repeat(MAX_KEY_ID_LEN + 1);
        assert!(alerts.auth_failed(v4(1), Some(&long), NOW).is_empty());
    }

    #[test]
    fn ip_denied_alerts_once_per_key_and_network_per_window() {
        let alerts = logged_only();
        let first = alerts
            .ip_denied("k1", v4(1), NOW)
            .expect("first denial alerts");
        assert_eq!(
            first,
            Alert {
                kind: AlertKind::IpNotAllowed,
                key_id: Some("k1".into()),
                ip: v4(1),
                count: 1,
                window_secs: 60,
                at: NOW,
            }
        );
        assert_eq!(alerts.ip_denied("k1", v4(1), NOW + 1), None);
        assert_eq!(alerts.ip_denied("k1", v4(1), NOW + 59_999), None);
        assert!(alerts.ip_denied("k1", v4(2), NOW + 1).is_some());
        assert!(alerts.ip_denied("k2", v4(1), NOW + 1).is_some());
        assert!(alerts.ip_denied("k1", v4(1), NOW + 60_000).is_some());
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped());
        assert_eq!(alerts.ip_denied("k1", mapped, NOW + 60_001), None);
    }

    #[test]
    fn alerts_serialise_with_snake_case_kinds() {
        let alert = Alert {
            kind: AlertKind::FailedAuthBurstKey,
            key_id: Some("abc".into()),
            ip: v4(5),
            count: 10,
            window_secs: 60,
            at: NOW,
        };
        assert_eq!(
            serde_json::to_value(&alert).unwrap(),
            serde_json::json!({
                "kind": "failed_auth_burst_key",
                "key_id": "abc",
                "ip": "203.0.113.5",
                "count": 10,
                "window_secs": 60,
                "at": NOW,
            })
        );
    }

    #[test]
    fn sign_reproduces_the_standard_webhooks_test_vector() {
        // The vector the reference libraries test against: matching it means any of them
        // will accept what we send.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_base64_after_the_prefix_and_raw_bytes_otherwise() {
        let raw = WebhookSecret::parse("plain text key").unwrap();
        assert_eq!(
            sign(&raw, "msg_1", 1, b"{}"),
            expected_signature(b"plain text key", "msg_1", "1", b"{}")
        );
        // Padding is optional, as in the reference implementations.
        let unpadded = WebhookSecret::parse("whsec_a2V5").unwrap();
        let padded = WebhookSecret::parse("whsec_a2V5eQ").unwrap();
        assert_eq!(
            sign(&unpadded, "m", 1, b""),
            expected_signature(b"key", "m", "1", b"")
        );
        assert_eq!(
            sign(&padded, "m", 1, b""),
            expected_signature(b"keyy", "m", "1", b"")
        );
        assert_eq!(
            WebhookSecret::parse("").unwrap_err(),
            WebhookSecretError::Empty
        );
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            WebhookSecretError::Empty
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            WebhookSecretError::InvalidBase64
        );
    }

    #[test]
    fn debug_output_hides_the_secret_and_the_url_path() {
        let config = WebhookConfig::new(
            "https://hooks.example.com/T0KEN/path?sig=abc"
                .parse()
                .unwrap(),
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        );
        let shown = format!("{config:?}");
        assert!(shown.contains("https://hooks.example.com"), "{shown}");
        for hidden in ["MfKQ9r8", "T0KEN", "sig=abc"] {
            assert!(!shown.contains(hidden), "{shown}");
        }
    }

    #[test]
    fn retry_waits_double_up_to_the_cap_with_full_jitter() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.ceiling(1), Duration::from_millis(500));
        assert_eq!(schedule.ceiling(2), Duration::from_secs(1));
        assert_eq!(schedule.ceiling(4), Duration::from_secs(4));
        assert_eq!(schedule.ceiling(7), Duration::from_secs(30));
        assert_eq!(schedule.ceiling(u32::MAX), Duration::from_secs(30));
        for retry in 1..10 {
            assert!(schedule.delay(retry) <= schedule.ceiling(retry));
        }
    }

    // --- delivery, against a real local receiver ---

    fn expected_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    const KEY: &[u8] = b"a receiver's shared webhook key!";

    #[derive(Debug, Clone, Copy)]
    enum Behaviour {
        /// Answer with these statuses in turn, then 200.
        Statuses(&'static [u16]),
        /// Never answer within the test.
        Hang,
    }

    #[derive(Debug)]
    struct Received {
        headers: HeaderMap,
        body: Bytes,
        at_secs: i64,
    }

    #[derive(Clone)]
    struct Receiver {
        behaviour: Behaviour,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl Receiver {
        fn received(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
            self.received.lock().unwrap()
        }
    }

    async fn receive(
        State(receiver): State<Receiver>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let nth = {
            let mut received = receiver.received();
            received.push(Received {
                headers,
                body,
                at_secs: system_clock() / 1000,
            });
            received.len()
        };
        match receiver.behaviour {
            Behaviour::Statuses(statuses) => statuses
                .get(nth - 1)
                .map_or(StatusCode::OK, |s| StatusCode::from_u16(*s).unwrap()),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK
            }
        }
    }

    async fn spawn_receiver(behaviour: Behaviour) -> (reqwest::Url, Receiver) {
        let receiver = Receiver {
            behaviour,
            received: Arc::default(),
        };
        let app = Router::new()
            .route("/hooks/security", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/hooks/security", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url.parse().unwrap(), receiver)
    }

    /// Alerts on every failure, delivered to `url` with millisecond retries.
    fn alerting_to(url: reqwest::Url) -> SecurityAlerts {
        let thresholds = AlertThresholds {
            failures_per_ip: 1,
            ..AlertThresholds::default()
        };
        let mut webhook = WebhookConfig::new(url, WebhookSecret::from_bytes(KEY).unwrap());
        webhook.retry = RetrySchedule {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(10),
            max_attempts: 5,
        };
        SecurityAlerts::new(thresholds, Some(webhook))
    }

    fn header<'a>(received: &'a Received, name: &str) -> &'a str {
        received.headers.get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn a_delivered_alert_carries_a_verifiable_standard_webhooks_signature() {
        let (url, receiver) = spawn_receiver(Behaviour::Statuses(&[])).await;
        let alerts = alerting_to(url);
        let now = system_clock();
        let raised = alerts.auth_failed(v4(7), None, now);
        alerts.flush(Duration::from_secs(10)).await;

        let received = receiver.received();
        assert_eq!(received.len(), 1);
        let hit = &received[0];
        assert_eq!(header(hit, "content-type"), "application/json");
        let id = header(hit, "webhook-id");
        assert!(id.starts_with("msg_") && id.len() > 4, "{id}");
        let timestamp = header(hit, "webhook-timestamp");
        let seconds: i64 = timestamp.parse().unwrap();
        assert!(
            (seconds - hit.at_secs).abs() <= 5,
            "{seconds} vs {}",
            hit.at_secs
        );
        assert_eq!(
            header(hit, "webhook-signature"),
            expected_signature(KEY, id, timestamp, &hit.body)
        );

        let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
        assert_eq!(body["type"], "security.alert");
        assert_eq!(
            body["timestamp"],
            serde_json::to_value(Timestamp(now)).unwrap()
        );
        assert_eq!(body["data"], serde_json::to_value(&raised[0]).unwrap());
    }

    #[tokio::test]
    async fn server_errors_are_retried_with_the_same_webhook_id() {
        let (url, receiver) = spawn_receiver(Behaviour::Statuses(&[500, 500])).await;
        let alerts = alerting_to(url);
        alerts.auth_failed(v4(7), None, system_clock());
        alerts.flush(Duration::from_secs(10)).await;

        let received = receiver.received();
        assert_eq!(received.len(), 3);
        let id = header(&received[0], "webhook-id");
        for hit in received.iter() {
            assert_eq!(header(hit, "webhook-id"), id);
            assert_eq!(hit.body, received[0].body);
            // Every attempt is signed for its own timestamp.
            let timestamp = header(hit, "webhook-timestamp");
            assert_eq!(
                header(hit, "webhook-signature"),
                expected_signature(KEY, id, timestamp, &hit.body)
            );
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_and_retries_stop_at_the_attempt_limit() {
        let (url, receiver) =
            spawn_receiver(Behaviour::Statuses(&[429, 503, 503, 503, 503, 503])).await;
        let alerts = alerting_to(url);
        alerts.auth_failed(v4(7), None, system_clock());
        alerts.flush(Duration::from_secs(10)).await;
        assert_eq!(receiver.received().len(), 5);
    }

    #[tokio::test]
    async fn a_client_error_is_not_retried() {
        let (url, receiver) = spawn_receiver(Behaviour::Statuses(&[400])).await;
        let alerts = alerting_to(url);
        alerts.auth_failed(v4(7), None, system_clock());
        alerts.flush(Duration::from_secs(10)).await;
        assert_eq!(receiver.received().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried_then_given_up() {
        // Bound then closed: nothing listens there any more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let alerts = alerting_to(url.parse().unwrap());
        alerts.auth_failed(v4(7), None, system_clock());
        tokio::time::timeout(
            Duration::from_secs(20),
            alerts.flush(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert_eq!(alerts.inner.pending.count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_hanging_receiver_never_delays_the_request_path() {
        let (url, receiver) = spawn_receiver(Behaviour::Hang).await;
        let alerts = alerting_to(url);
        alerts.auth_failed(v4(0), None, system_clock());
        // Wait until a delivery is really stuck in the receiver.
        tokio::time::timeout(Duration::from_secs(10), async {
            while receiver.received().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();

        // Far more alerts than the queue and the delivery slots hold. Run off the async
        // threads so a blocking call would show up as a timeout rather than a hang.
        let flood = alerts.clone();
        let raised = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || {
                let now = system_clock();
                (0..3_000u32)
                    .map(|i| {
                        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
                        flood.auth_failed(ip, None, now).len()
                    })
                    .sum::<usize>()
            }),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(raised, 3_000);

        // Shutdown does not hang on it either.
        tokio::time::timeout(
            Duration::from_secs(20),
            alerts.flush(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    }
}
