//! Who may do what: scopes, the stored form of an API key, and the audit log's entries.
//!
//! The key *format* lives in `api_key`; this module is the record behind a key id. It
//! never holds a secret, only its keyed hash.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use ipnet::IpNet;

use crate::api_key::KeyEnvironment;

/// One permission. Each route requires exactly one (or none, for public routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    PricesRead,
    SignalsRead,
    BacktestsRun,
    AlertsWrite,
    IngestWrite,
    KeysAdmin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::PricesRead,
        Scope::SignalsRead,
        Scope::BacktestsRun,
        Scope::AlertsWrite,
        Scope::IngestWrite,
        Scope::KeysAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PricesRead => "prices:read",
            Scope::SignalsRead => "signals:read",
            Scope::BacktestsRun => "backtests:run",
            Scope::AlertsWrite => "alerts:write",
            Scope::IngestWrite => "ingest:write",
            Scope::KeysAdmin => "keys:admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope `{0}`; known scopes: prices:read, signals:read, backtests:run, alerts:write, ingest:write, keys:admin"
)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes, as a bit set: checked on every request, so it must be cheap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `other` is also in `self`.
    pub fn covers(self, other: Scopes) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The canonical comma-separated form, in a fixed order (`prices:read,keys:admin`).
    pub fn to_csv(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    /// Parses a comma-separated list; blanks are ignored, duplicates are harmless.
    pub fn parse_csv(csv: &str) -> Result<Self, UnknownScope> {
        csv.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scope::from_str)
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

/// Everything stored about one API key. The secret itself is never stored: only its
/// HMAC-SHA-256 under the server's pepper of version `pepper_version`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The public key id (12 base62 characters), safe to log.
    pub id: String,
    pub environment: KeyEnvironment,
    pub name: String,
    pub scopes: Scopes,
    /// Where the key may be used from; empty means anywhere.
    pub allowed_cidrs: Vec<IpNet>,
    /// Requests per minute this key may make (GCRA, bursts up to the same number).
    pub rate_limit_per_minute: u32,
    pub created_at: i64,
    /// Milliseconds; the key stops working at this instant. Rotation sets it to the end
    /// of the grace period.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key this one replaced, when it was issued by a rotation.
    pub rotated_from: Option<String>,
    /// The key that replaced this one.
    pub rotated_to: Option<String>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<IpAddr>,
    /// Successful authentications, flushed in batches.
    pub usage_count: u64,
    pub pepper_version: u32,
    pub secret_hash: [u8; 32],
}

/// Why a key that exists cannot be used at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyRecord {
    pub fn state(&self, now: i64) -> KeyState {
        if self.revoked_at.is_some_and(|at| at <= now) {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    /// Whether `ip` may use this key; an empty allowlist allows every address.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allowed_cidrs.is_empty() || self.allowed_cidrs.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Successful uses of one key since the last flush, so a request never writes to the
/// database just to say it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub id: String,
    pub last_used_at: i64,
    pub last_used_ip: IpAddr,
    pub count: u64,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    KeyExpired,
    AuthFailed,
    IpDenied,
    ScopeDenied,
    RateLimited,
    SecurityAlert,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 9] = [
        AuditEvent::KeyCreated,
        AuditEvent::KeyRotated,
        AuditEvent::KeyRevoked,
        AuditEvent::KeyExpired,
        AuditEvent::AuthFailed,
        AuditEvent::IpDenied,
        AuditEvent::ScopeDenied,
        AuditEvent::RateLimited,
        AuditEvent::SecurityAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::KeyCreated => "key_created",
            AuditEvent::KeyRotated => "key_rotated",
            AuditEvent::KeyRevoked => "key_revoked",
            AuditEvent::KeyExpired => "key_expired",
            AuditEvent::AuthFailed => "auth_failed",
            AuditEvent::IpDenied => "ip_denied",
            AuditEvent::ScopeDenied => "scope_denied",
            AuditEvent::RateLimited => "rate_limited",
            AuditEvent::SecurityAlert => "security_alert",
        }
    }
}

impl FromStr for AuditEvent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown audit event `{s}`"))
    }
}

/// One row of the audit log. Floods (failures, denials, rate limiting) are aggregated:
/// `at` is then the start of the minute and `count` how many times it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 before insertion.
    pub id: i64,
    pub at: i64,
    pub event: AuditEvent,
    /// The key the event is about, when known (for a failed authentication, the id parsed
    /// from the presented key, which may not exist).
    pub key_id: Option<String>,
    /// The key that performed a lifecycle action.
    pub actor_key_id: Option<String>,
    pub ip: Option<IpAddr>,
    /// A short machine-readable reason (`unknown_key`, `expired`, `missing_scope:…`).
    pub reason: Option<String>,
    pub count: u64,
}

impl AuditEntry {
    pub fn new(event: AuditEvent, at: i64) -> Self {
        Self {
            id: 0,
            at,
            event,
            key_id: None,
            actor_key_id: None,
            ip: None,
            reason: None,
            count: 1,
        }
    }
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub key_id: Option<String>,
    pub event: Option<AuditEvent>,
    /// Inclusive lower bound on `at`.
    pub start: Option<i64>,
    /// Exclusive upper bound on `at`.
    pub end: Option<i64>,
    /// Only entries with an id below this one (the cursor).
    pub before_id: Option<i64>,
}

/// The canonical form of an address: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4,
/// so allowlists and limits treat one client as one client.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_cover() {
        let read = Scopes::parse_csv("signals:read, prices:read").unwrap();
        assert_eq!(read.to_csv(), "prices:read,signals:read");
        assert!(Scopes::all().covers(read));
        assert!(!read.covers(Scopes::all()));
        assert!(read.covers(Scopes::NONE));
        assert_eq!(
            Scopes::parse_csv("prices:write").unwrap_err().0,
            "prices:write"
        );
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn allowlist_checks_both_families() {
        let mut key = KeyRecord {
            id: "abcdefghijkl".into(),
            environment: KeyEnvironment::Test,
            name: "t".into(),
            scopes: Scopes::all(),
            allowed_cidrs: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            rate_limit_per_minute: 60,
            created_at: 0,
            expires_at: Some(100),
            revoked_at: None,
            rotated_from: None,
            rotated_to: None,
            last_used_at: None,
            last_used_ip: None,
            usage_count: 0,
            pepper_version: 1,
            secret_hash: [0; 32],
        };
        assert!(key.allows_ip("10.9.9.9".parse().unwrap()));
        assert!(key.allows_ip("2001:db8:1::5".parse().unwrap()));
        assert!(!key.allows_ip("11.0.0.1".parse().unwrap()));
        assert_eq!(key.state(99), KeyState::Active);
        assert_eq!(key.state(100), KeyState::Expired);
        key.revoked_at = Some(50);
        assert_eq!(key.state(60), KeyState::Revoked);
    }
}
