//! Issuing and checking API keys.
//!
//! A presented key is parsed (prefix, length, checksum) before anything else, so a typo
//! costs no database work. The record is then looked up by its public id through a
//! short-lived cache, and the keyed hash compared in constant time. The cache's lifetime,
//! `KEY_CACHE_TTL`, is the documented bound on how long a revocation made through
//! another replica can take to reach this one; revocations through this one apply at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use marketd_domain::access::{
    AuditEntry, AuditEvent, IpNet, KeyRecord, KeyState, KeyUsage, Scopes,
};
use marketd_domain::api_key::{self, KeyEnvironment};
use marketd_storage::{Store, StoreError};
use subtle::ConstantTimeEq;

use super::pepper::Pepper;

/// How long a key lookup is reused: the bound on cross-replica revocation.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_CAPACITY: u64 = 50_000;
/// Keys whose usage is buffered between flushes; beyond it usage is flushed early.
const USAGE_BUFFER_CAPACITY: usize = 10_000;

/// The default policy of a new key.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// Why a presented key was not accepted. Only the variants after the secret verified
/// may be told to the caller; the rest answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Wrong prefix, length, alphabet or checksum.
    Malformed,
    /// No key has this id.
    Unknown {
        key_id: String,
    },
    /// The id exists but the secret does not match.
    WrongSecret {
        key_id: String,
    },
    Expired {
        key_id: String,
    },
    Revoked {
        key_id: String,
    },
}

impl AuthFailure {
    /// The short reason recorded in the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed",
            AuthFailure::Unknown { .. } => "unknown_key",
            AuthFailure::WrongSecret { .. } => "wrong_secret",
            AuthFailure::Expired { .. } => "expired",
            AuthFailure::Revoked { .. } => "revoked",
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            AuthFailure::Malformed => None,
            AuthFailure::Unknown { key_id }
            | AuthFailure::WrongSecret { key_id }
            | AuthFailure::Expired { key_id }
            | AuthFailure::Revoked { key_id } => Some(key_id),
        }
    }
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub environment: KeyEnvironment,
    pub scopes: Scopes,
    pub allowed_cidrs: Vec<IpNet>,
    pub expires_at: Option<i64>,
    pub rate_limit_per_minute: u32,
}

/// A key as just issued: the record, and the full key string, which exists only here
/// and in the response that shows it once.
pub struct IssuedKey {
    pub record: KeyRecord,
    pub key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("record", &self.record)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One key's uses since the last flush, updated with atomics by concurrent requests.
#[derive(Debug)]
struct UsageCell {
    count: AtomicU64,
    last_used_at: AtomicI64,
    last_used_ip: Mutex<Option<IpAddr>>,
}

impl Default for UsageCell {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            last_used_at: AtomicI64::new(i64::MIN),
            last_used_ip: Mutex::new(None),
        }
    }
}

impl UsageCell {
    fn record(&self, ip: IpAddr, now: i64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let previous = self.last_used_at.fetch_max(now, Ordering::Relaxed);
        // A contended lock means another request is recording its address at about the
        // same instant; either address is a truthful "last used from".
        if now >= previous
            && let Ok(mut last) = self.last_used_ip.try_lock()
        {
            *last = Some(ip);
        }
    }

    fn take(&self, id: &str) -> Option<KeyUsage> {
        let count = self.count.swap(0, Ordering::Relaxed);
        let ip = self.last_used_ip.lock().ok().and_then(|ip| *ip)?;
        (count > 0).then(|| KeyUsage {
            id: id.to_owned(),
            last_used_at: self.last_used_at.load(Ordering::Relaxed),
            last_used_ip: ip,
            count,
        })
    }

    fn restore(&self, used: &KeyUsage) {
        self.count.fetch_add(used.count, Ordering::Relaxed);
        self.last_used_at
            .fetch_max(used.last_used_at, Ordering::Relaxed);
        if let Ok(mut last) = self.last_used_ip.lock()
            && last.is_none()
        {
            *last = Some(used.last_used_ip);
        }
    }
}

pub struct Keyring {
    store: Arc<dyn Store>,
    pepper: Pepper,
    cache: moka::sync::Cache<String, Option<Arc<KeyRecord>>>,
    usage: RwLock<HashMap<String, Arc<UsageCell>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("pepper", &self.pepper)
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Random bytes from the OS CSPRNG, refilled as needed.
fn os_random_bytes() -> Result<impl FnMut() -> u8, StoreError> {
    let mut buffer = [0u8; 256];
    getrandom::fill(&mut buffer)
        .map_err(|_| StoreError::Corrupt("the OS random generator failed".into()))?;
    let mut next = 0usize;
    Ok(move || {
        if next == buffer.len() {
            // A failed refill keeps old bytes; getrandom only fails when the OS cannot
            // supply randomness at all, which the first fill already ruled out.
            let _ = getrandom::fill(&mut buffer);
            next = 0;
        }
        next += 1;
        buffer[next - 1]
    })
}

impl Keyring {
    pub fn new(store: Arc<dyn Store>, pepper: Pepper) -> Self {
        Self {
            store,
            pepper,
            cache: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            usage: RwLock::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn lookup(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(hit);
        }
        let found = self.store.key(id).await?.map(Arc::new);
        self.cache.insert(id.to_owned(), found.clone());
        Ok(found)
    }

    /// Checks a presented key. `Err(Ok(failure))` is the client's fault; `Err(Err(_))`
    /// is the database's.
    pub async fn authenticate(
        &self,
        presented: &str,
        now: i64,
    ) -> Result<Arc<KeyRecord>, Result<AuthFailure, StoreError>> {
        let parsed = api_key::parse(presented).map_err(|_| Ok(AuthFailure::Malformed))?;
        let key_id = parsed.id.to_owned();
        let Some(record) = self.lookup(&key_id).await.map_err(Err)? else {
            // Spend the same hashing work as for a real key, so timing does not tell
            // which ids exist.
            let _ = self.pepper.hash_current(presented);
            return Err(Ok(AuthFailure::Unknown { key_id }));
        };
        let expected = self
            .pepper
            .hash(record.pepper_version, presented)
            .unwrap_or_else(|| self.pepper.hash_current(presented));
        let matches: bool =
            expected.ct_eq(&record.secret_hash).into() && record.environment == parsed.environment;
        if !matches {
            return Err(Ok(AuthFailure::WrongSecret { key_id }));
        }
        match record.state(now) {
            KeyState::Active => {}
            KeyState::Expired => return Err(Ok(AuthFailure::Expired { key_id })),
            KeyState::Revoked => return Err(Ok(AuthFailure::Revoked { key_id })),
        }
        if record.pepper_version != self.pepper.current_version() {
            self.upgrade_hash(&record, presented).await;
        }
        Ok(record)
    }

    async fn upgrade_hash(&self, record: &KeyRecord, presented: &str) {
        let version = self.pepper.current_version();
        let hash = self.pepper.hash_current(presented);
        match self.store.rehash_key(&record.id, version, &hash).await {
            Ok(()) => self.cache.invalidate(&record.id),
            Err(err) => {
                tracing::warn!(key_id = %record.id, error = %err, "re-hashing a key under the current pepper failed")
            }
        }
    }

    fn new_record(&self, spec: &NewKey, now: i64) -> Result<IssuedKey, StoreError> {
        let (id, key) = api_key::generate(spec.environment, os_random_bytes()?);
        let record = KeyRecord {
            secret_hash: self.pepper.hash_current(&key),
            pepper_version: self.pepper.current_version(),
            id,
            environment: spec.environment,
            name: spec.name.clone(),
            scopes: spec.scopes,
            allowed_cidrs: spec.allowed_cidrs.clone(),
            rate_limit_per_minute: spec.rate_limit_per_minute,
            created_at: now,
            expires_at: spec.expires_at,
            revoked_at: None,
            rotated_from: None,
            rotated_to: None,
            last_used_at: None,
            last_used_ip: None,
            usage_count: 0,
        };
        Ok(IssuedKey { record, key })
    }

    /// Issues a key; `actor` is the key that asked for it (None from the CLI or at
    /// first start).
    pub async fn issue(
        &self,
        spec: &NewKey,
        actor: Option<&str>,
        now: i64,
    ) -> Result<IssuedKey, StoreError> {
        let issued = self.new_record(spec, now)?;
        let mut audit = AuditEntry::new(AuditEvent::KeyCreated, now);
        audit.key_id = Some(issued.record.id.clone());
        audit.actor_key_id = actor.map(str::to_owned);
        audit.reason = Some(format!("scopes={}", spec.scopes.to_csv()));
        self.store.insert_key(&issued.record, &audit).await?;
        Ok(issued)
    }

    /// Issues a successor with the same settings; the old key keeps working for
    /// `grace_ms`. Returns None when the old key is missing, revoked or already rotated.
    pub async fn rotate(
        &self,
        old: &KeyRecord,
        grace_ms: i64,
        actor: Option<&str>,
        now: i64,
    ) -> Result<Option<(IssuedKey, KeyRecord)>, StoreError> {
        let spec = NewKey {
            name: old.name.clone(),
            environment: old.environment,
            scopes: old.scopes,
            allowed_cidrs: old.allowed_cidrs.clone(),
            expires_at: old.expires_at,
            rate_limit_per_minute: old.rate_limit_per_minute,
        };
        let mut issued = self.new_record(&spec, now)?;
        issued.record.rotated_from = Some(old.id.clone());
        let mut audit = AuditEntry::new(AuditEvent::KeyRotated, now);
        audit.key_id = Some(old.id.clone());
        audit.actor_key_id = actor.map(str::to_owned);
        audit.reason = Some(format!(
            "successor={} grace_s={}",
            issued.record.id,
            grace_ms / 1000
        ));
        let old_after = self
            .store
            .rotate_key(
                &old.id,
                now.saturating_add(grace_ms),
                &issued.record,
                &audit,
            )
            .await?;
        self.cache.invalidate(&old.id);
        Ok(old_after.map(|old| (issued, old)))
    }

    /// Revokes at once (on this replica; others within `KEY_CACHE_TTL`).
    pub async fn revoke(
        &self,
        id: &str,
        actor: Option<&str>,
        now: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let mut audit = AuditEntry::new(AuditEvent::KeyRevoked, now);
        audit.key_id = Some(id.to_owned());
        audit.actor_key_id = actor.map(str::to_owned);
        let revoked = self.store.revoke_key(id, now, &audit).await?;
        self.cache.invalidate(id);
        Ok(revoked)
    }

    /// Counts a successful use in memory; `flush_usage` writes the totals. Called on
    /// every authenticated request, so it takes no exclusive lock once a key is known.
    pub fn note_use(&self, id: &str, ip: IpAddr, now: i64) {
        let known = self
            .usage
            .read()
            .ok()
            .and_then(|usage| usage.get(id).cloned());
        let cell = match known {
            Some(cell) => cell,
            None => {
                let Ok(mut usage) = self.usage.write() else {
                    return;
                };
                if usage.len() >= USAGE_BUFFER_CAPACITY && !usage.contains_key(id) {
                    // Dropping one key's count is better than growing without bound; the
                    // flush task empties idle entries every second.
                    return;
                }
                Arc::clone(usage.entry(id.to_owned()).or_default())
            }
        };
        cell.record(ip, now);
    }

    /// Writes buffered usage; on failure the counts are put back for the next attempt.
    pub async fn flush_usage(&self) {
        let pending: Vec<KeyUsage> = match self.usage.write() {
            Ok(mut usage) => {
                let taken: Vec<KeyUsage> = usage
                    .iter()
                    .filter_map(|(id, cell)| cell.take(id))
                    .collect();
                // Keys not used since the last flush leave the table; they come back on use.
                usage.retain(|id, _| taken.iter().any(|t| &t.id == id));
                taken
            }
            Err(_) => return,
        };
        if pending.is_empty() {
            return;
        }
        if let Err(err) = self.store.record_key_usage(&pending).await {
            tracing::warn!(error = %err, keys = pending.len(), "could not record key usage; will retry");
            if let Ok(mut usage) = self.usage.write() {
                for used in pending {
                    usage.entry(used.id.clone()).or_default().restore(&used);
                }
            }
        }
    }

    /// Records the expiry of keys that have expired since the last sweep.
    pub async fn record_expiries(&self, now: i64) {
        match self.store.record_expired_keys(now).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(key_id = %id, "API key expired");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not record key expiries"),
        }
    }
}
