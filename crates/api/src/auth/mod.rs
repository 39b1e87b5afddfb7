//! API keys end to end: the pepper, issuing and checking keys, the client address, which
//! scope each operation needs, rate limits, the audit log and security alerts. The
//! middleware in `crate::middleware::{auth, rate_limit}` applies them to requests.

pub mod audit;
pub mod client_ip;
pub mod keyring;
pub mod pepper;
pub mod requirements;

use std::sync::Arc;
use std::time::Duration;

use marketd_domain::access::KeyRecord;
use marketd_storage::Store;
use tokio_util::sync::CancellationToken;

use crate::alerts::{AlertThresholds, SecurityAlerts, WebhookConfig};
use crate::limiter::{FailureLimiter, KeyRateLimiter, LocalRateLimiter};
pub use audit::AuditBuffer;
pub use client_ip::{ClientIp, TrustedProxies};
pub use keyring::{AuthFailure, IssuedKey, KEY_CACHE_TTL, Keyring, NewKey};
pub use pepper::{Pepper, PepperError};
pub use requirements::{Requirement, Requirements};

/// The authenticated caller, placed in request extensions by the auth layer.
#[derive(Debug, Clone)]
pub struct Principal(pub Arc<KeyRecord>);

/// Failed authentications one client address may make per minute before it gets 429s.
pub const AUTH_FAILURES_PER_MINUTE: u32 = 10;
const FAILURE_LIMITER_CAPACITY: usize = 200_000;
const KEY_LIMITER_CAPACITY: usize = 100_000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How the auth layer is set up.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub pepper: Pepper,
    pub trusted_proxies: TrustedProxies,
    pub failures_per_minute: u32,
    pub alert_thresholds: AlertThresholds,
    pub webhook: Option<WebhookConfig>,
}

impl AuthConfig {
    pub fn new(pepper: Pepper) -> Self {
        Self {
            pepper,
            trusted_proxies: TrustedProxies::default(),
            failures_per_minute: AUTH_FAILURES_PER_MINUTE,
            alert_thresholds: AlertThresholds::default(),
            webhook: None,
        }
    }
}

pub struct Auth {
    pub keyring: Keyring,
    pub audit: AuditBuffer,
    pub limiter: Arc<dyn KeyRateLimiter>,
    pub failures: FailureLimiter,
    pub alerts: SecurityAlerts,
    pub trusted_proxies: TrustedProxies,
    pub requirements: Requirements,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keyring", &self.keyring)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Must be called inside a tokio runtime (alert delivery runs as a task).
    pub fn new(store: Arc<dyn Store>, config: AuthConfig) -> Result<Self, String> {
        Ok(Self {
            keyring: Keyring::new(store, config.pepper),
            audit: AuditBuffer::default(),
            limiter: Arc::new(LocalRateLimiter::new(KEY_LIMITER_CAPACITY)),
            failures: FailureLimiter::new(config.failures_per_minute, FAILURE_LIMITER_CAPACITY),
            alerts: SecurityAlerts::new(config.alert_thresholds, config.webhook),
            trusted_proxies: config.trusted_proxies,
            requirements: Requirements::from_openapi(&crate::openapi())?,
        })
    }

    /// Writes buffered usage and audit entries (`all`: even the current minute's).
    pub async fn flush(&self, now: i64, all: bool) {
        self.keyring.flush_usage().await;
        self.audit
            .flush(self.keyring.store().as_ref(), now, all)
            .await;
    }

    /// Flushes every second and sweeps limiters and expiries every 30 s until
    /// `shutdown`, then flushes everything once more.
    pub async fn maintain(
        self: Arc<Self>,
        clock: crate::state::Clock,
        shutdown: CancellationToken,
    ) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = flush.tick() => self.flush(clock(), false).await,
                _ = sweep.tick() => {
                    self.limiter.sweep();
                    self.failures.sweep();
                    self.keyring.record_expiries(clock()).await;
                }
            }
        }
        self.flush(clock(), true).await;
        self.alerts.flush(Duration::from_secs(5)).await;
    }
}
