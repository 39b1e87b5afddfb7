//! API keys and the audit log on SQLite.

use async_trait::async_trait;
use marketd_domain::access::{AuditEntry, AuditEvent, AuditFilter, KeyRecord, KeyUsage};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::keys::{
    AuditRow, KEY_COLUMNS, KeyRow, audit_from_rows, join_cidrs, keys_from_rows, push_audit_query,
};
use crate::{KeyStore, Result, SqliteStore};

async fn insert_audit(conn: &mut SqliteConnection, entry: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, event, key_id, actor_key_id, ip, reason, count)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.at)
    .bind(entry.event.as_str())
    .bind(entry.key_id.as_deref())
    .bind(entry.actor_key_id.as_deref())
    .bind(entry.ip.map(|ip| ip.to_string()))
    .bind(entry.reason.as_deref())
    .bind(i64::try_from(entry.count).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_key_row(conn: &mut SqliteConnection, key: &KeyRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, environment, name, scopes, allowed_cidrs,
             rate_limit_per_minute, created_at, expires_at, revoked_at, rotated_from,
             rotated_to, pepper_version, secret_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.id)
    .bind(key.environment.as_str())
    .bind(&key.name)
    .bind(key.scopes.to_csv())
    .bind(join_cidrs(&key.allowed_cidrs))
    .bind(i64::from(key.rate_limit_per_minute))
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(key.rotated_from.as_deref())
    .bind(key.rotated_to.as_deref())
    .bind(i64::from(key.pepper_version))
    .bind(key.secret_hash.as_slice())
    .execute(conn)
    .await?;
    Ok(())
}

async fn fetch_key(conn: &mut SqliteConnection, id: &str) -> Result<Option<KeyRecord>> {
    let row: Option<KeyRow> =
        sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(KeyRecord::try_from).transpose()
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_key_row(&mut tx, key).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let mut conn = self.conn().await?;
        fetch_key(&mut conn, id).await
    }

    async fn keys(&self, after_id: Option<&str>, limit: u32) -> Result<Vec<KeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after_id.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        keys_from_rows(rows)
    }

    async fn count_keys(&self) -> Result<u64> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn revoke_key(&self, id: &str, at: i64, audit: &AuditEntry) -> Result<Option<KeyRecord>> {
        let mut tx = self.begin_write().await?;
        let changed =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed > 0 {
            insert_audit(&mut tx, audit).await?;
        }
        let key = fetch_key(&mut tx, id).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn rotate_key(
        &self,
        old_id: &str,
        old_expires_at: i64,
        new_key: &KeyRecord,
        audit: &AuditEntry,
    ) -> Result<Option<KeyRecord>> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE api_keys
             SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > ?1
                                   THEN ?1 ELSE expires_at END,
                 rotated_to = ?2
             WHERE id = ?3 AND revoked_at IS NULL AND rotated_to IS NULL",
        )
        .bind(old_expires_at)
        .bind(&new_key.id)
        .bind(old_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        insert_key_row(&mut tx, new_key).await?;
        insert_audit(&mut tx, audit).await?;
        let old = fetch_key(&mut tx, old_id).await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn record_key_usage(&self, usage: &[KeyUsage]) -> Result<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for used in usage {
            sqlx::query(
                "UPDATE api_keys
                 SET usage_count = usage_count + ?1,
                     last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at <= ?2
                                         THEN ?3 ELSE last_used_ip END,
                     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at <= ?2
                                         THEN ?2 ELSE last_used_at END
                 WHERE id = ?4",
            )
            .bind(i64::try_from(used.count).unwrap_or(i64::MAX))
            .bind(used.last_used_at)
            .bind(used.last_used_ip.to_string())
            .bind(&used.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rehash_key(
        &self,
        id: &str,
        pepper_version: u32,
        secret_hash: &[u8; 32],
    ) -> Result<()> {
        sqlx::query("UPDATE api_keys SET pepper_version = ?, secret_hash = ? WHERE id = ?")
            .bind(i64::from(pepper_version))
            .bind(secret_hash.as_slice())
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn record_expired_keys(&self, now: i64) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let expired: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE api_keys SET expiry_recorded = 1
             WHERE expires_at IS NOT NULL AND expires_at <= ? AND expiry_recorded = 0
               AND revoked_at IS NULL
             RETURNING id, expires_at",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (id, at) in &expired {
            let mut entry = AuditEntry::new(AuditEvent::KeyExpired, *at);
            entry.key_id = Some(id.clone());
            insert_audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(expired.into_iter().map(|(id, _)| id).collect())
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for entry in entries {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut query = QueryBuilder::<Sqlite>::new("");
        push_audit_query(&mut query, filter, limit);
        let rows: Vec<AuditRow> = query
            .build_query_as()
            .fetch_all(&mut *self.conn().await?)
            .await?;
        audit_from_rows(rows)
    }
}
