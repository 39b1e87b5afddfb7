//! Leadership: the one process among replicas sharing a database that does a job (the
//! exchange ingest). On Postgres it is a session advisory lock held on a connection of
//! its own, so it ends when that process exits, dies or loses its connection, and another
//! replica can take it at its next try. A SQLite database belongs to one process, which
//! always leads.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{PgStore, Result};

/// How long a liveness check of the lock's connection may take before the lease counts
/// as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A held leadership. Dropping it releases it too (the connection closes).
#[async_trait]
pub trait Lease: Send {
    /// Whether leadership still holds; false once the lock's connection is gone, after
    /// which the lease is worthless and a new one must be sought.
    async fn still_held(&mut self) -> bool;

    /// Gives leadership up at once.
    async fn release(self: Box<Self>);
}

/// A stable advisory-lock key for a job name (FNV-1a), so every replica asks for the
/// same lock.
pub fn lock_key(job: &str) -> i64 {
    let hash = job.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

pub(crate) struct SoleLease;

#[async_trait]
impl Lease for SoleLease {
    async fn still_held(&mut self) -> bool {
        true
    }

    async fn release(self: Box<Self>) {}
}

struct AdvisoryLease {
    connection: Option<PgConnection>,
}

#[async_trait]
impl Lease for AdvisoryLease {
    async fn still_held(&mut self) -> bool {
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        let alive = tokio::time::timeout(CHECK_TIMEOUT, connection.ping()).await;
        if matches!(alive, Ok(Ok(()))) {
            return true;
        }
        // The session, and with it the lock, may already be gone on the server.
        self.connection = None;
        false
    }

    async fn release(self: Box<Self>) {
        if let Some(connection) = self.connection {
            let _ = connection.close().await;
        }
    }
}

impl PgStore {
    pub(crate) async fn try_lead_pg(&self, job: &str) -> Result<Option<Box<dyn Lease>>> {
        let options = self.pool.connect_options();
        let mut connection = PgConnection::connect_with(&options).await?;
        let (won,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(job))
            .fetch_one(&mut connection)
            .await?;
        if won {
            Ok(Some(Box::new(AdvisoryLease {
                connection: Some(connection),
            })))
        } else {
            let _ = connection.close().await;
            Ok(None)
        }
    }
}
