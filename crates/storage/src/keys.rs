//! API keys and the audit log. Split from `Store` only to keep each trait readable; every
//! store implements both, and `Store` requires this one.

use std::net::IpAddr;

use async_trait::async_trait;
use marketd_domain::access::{AuditEntry, AuditFilter, IpNet, KeyRecord, KeyUsage, Scopes};
use marketd_domain::api_key::KeyEnvironment;

use crate::{Result, StoreError};

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key and its `key_created` audit entry in one transaction. A duplicate
    /// id is an error (`StoreError::Conflict`).
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> Result<()>;

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>>;

    /// Keys ordered by id ascending, after `after_id` when given, at most `limit`.
    async fn keys(&self, after_id: Option<&str>, limit: u32) -> Result<Vec<KeyRecord>>;

    /// How many keys exist, in any state.
    async fn count_keys(&self) -> Result<u64>;

    /// Sets `revoked_at` unless the key is already revoked, writing `audit` only when it
    /// changed anything; returns the key as it now is, or None when it does not exist.
    async fn revoke_key(&self, id: &str, at: i64, audit: &AuditEntry) -> Result<Option<KeyRecord>>;

    /// In one transaction: caps the old key's `expires_at` at `old_expires_at` (an earlier
    /// expiry stays), sets its `rotated_to`, inserts `new_key` (whose `rotated_from` names
    /// the old one) and writes `audit`. Returns the old key as it now is, or None (and
    /// changes nothing) when the old key does not exist or is revoked.
    async fn rotate_key(
        &self,
        old_id: &str,
        old_expires_at: i64,
        new_key: &KeyRecord,
        audit: &AuditEntry,
    ) -> Result<Option<KeyRecord>>;

    /// Adds each usage's count to the key's `usage_count` and moves `last_used_at` /
    /// `last_used_ip` forward (never backward). Unknown ids are ignored.
    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<()>;

    /// Replaces a key's hash with one under a newer pepper version.
    async fn rehash_key(&self, id: &str, pepper_version: u32, secret_hash: &[u8; 32])
    -> Result<()>;

    /// Finds keys whose `expires_at <= now` that have not been recorded as expired yet,
    /// marks them and writes one `key_expired` audit entry each (at = their expires_at),
    /// atomically so that two replicas never record the same expiry twice. Returns the ids.
    async fn record_expired_keys(&self, now: i64) -> Result<Vec<String>>;

    /// Appends entries (ids are assigned by the store).
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;

    /// Entries matching the filter, newest (highest id) first, at most `limit`.
    async fn audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>>;
}

/// An `api_keys` row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    environment: String,
    name: String,
    scopes: String,
    allowed_cidrs: String,
    rate_limit_per_minute: i64,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rotated_from: Option<String>,
    rotated_to: Option<String>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    usage_count: i64,
    pepper_version: i64,
    secret_hash: Vec<u8>,
}

pub(crate) const KEY_COLUMNS: &str = "id, environment, name, scopes, allowed_cidrs, \
    rate_limit_per_minute, created_at, expires_at, revoked_at, rotated_from, rotated_to, \
    last_used_at, last_used_ip, usage_count, pepper_version, secret_hash";

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} of key {id}"))
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self> {
        let environment = KeyEnvironment::parse(&row.environment)
            .ok_or_else(|| corrupt("environment", &row.id))?;
        let scopes = Scopes::parse_csv(&row.scopes).map_err(|_| corrupt("scopes", &row.id))?;
        let allowed_cidrs = split_csv(&row.allowed_cidrs)
            .map(|cidr| cidr.parse::<IpNet>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| corrupt("allowed_cidrs", &row.id))?;
        let last_used_ip = row
            .last_used_ip
            .as_deref()
            .map(str::parse::<IpAddr>)
            .transpose()
            .map_err(|_| corrupt("last_used_ip", &row.id))?;
        let secret_hash: [u8; 32] = row
            .secret_hash
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("secret_hash", &row.id))?;
        Ok(KeyRecord {
            environment,
            name: row.name,
            scopes,
            allowed_cidrs,
            rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute)
                .map_err(|_| corrupt("rate_limit_per_minute", &row.id))?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            rotated_from: row.rotated_from,
            rotated_to: row.rotated_to,
            last_used_at: row.last_used_at,
            last_used_ip,
            usage_count: u64::try_from(row.usage_count).unwrap_or(0),
            pepper_version: u32::try_from(row.pepper_version)
                .map_err(|_| corrupt("pepper_version", &row.id))?,
            secret_hash,
            id: row.id,
        })
    }
}

pub(crate) fn keys_from_rows(rows: Vec<KeyRow>) -> Result<Vec<KeyRecord>> {
    rows.into_iter().map(KeyRecord::try_from).collect()
}

pub(crate) fn join_cidrs(cidrs: &[IpNet]) -> String {
    cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn split_csv(csv: &str) -> impl Iterator<Item = &str> {
    csv.split(',').filter(|s| !s.is_empty())
}

/// An `audit_log` row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: i64,
    event: String,
    key_id: Option<String>,
    actor_key_id: Option<String>,
    ip: Option<String>,
    reason: Option<String>,
    count: i64,
}

pub(crate) const AUDIT_COLUMNS: &str = "id, at, event, key_id, actor_key_id, ip, reason, count";

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self> {
        let bad = || StoreError::Corrupt(format!("audit entry {}", row.id));
        Ok(AuditEntry {
            id: row.id,
            at: row.at,
            event: row.event.parse().map_err(|_| bad())?,
            key_id: row.key_id.clone(),
            actor_key_id: row.actor_key_id.clone(),
            ip: row
                .ip
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| bad())?,
            reason: row.reason.clone(),
            count: u64::try_from(row.count).map_err(|_| bad())?,
        })
    }
}

pub(crate) fn audit_from_rows(rows: Vec<AuditRow>) -> Result<Vec<AuditEntry>> {
    rows.into_iter().map(AuditEntry::try_from).collect()
}

/// The WHERE clause and ordering of an audit read, shared by both backends (the query
/// builder supplies each backend's placeholders).
pub(crate) fn push_audit_query<'a, DB>(
    query: &mut sqlx::QueryBuilder<'a, DB>,
    filter: &'a AuditFilter,
    limit: u32,
) where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    query.push("SELECT ");
    query.push(AUDIT_COLUMNS);
    query.push(" FROM audit_log WHERE 1 = 1");
    if let Some(key_id) = &filter.key_id {
        query.push(" AND key_id = ").push_bind(key_id.as_str());
    }
    if let Some(event) = filter.event {
        query.push(" AND event = ").push_bind(event.as_str());
    }
    if let Some(start) = filter.start {
        query.push(" AND at >= ").push_bind(start);
    }
    if let Some(end) = filter.end {
        query.push(" AND at < ").push_bind(end);
    }
    if let Some(before) = filter.before_id {
        query.push(" AND id < ").push_bind(before);
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
}
