//! Store errors, split by what a caller can do about them.

/// A failed store operation. `Unavailable` means "try again later" (the database is
/// unreachable or saturated); everything else is a defect or bad data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A row with this key already exists.
    #[error("conflict: the row already exists")]
    Conflict,
    /// A stored value no longer parses; a defect or a hand-edited database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A streamed write whose sender went away before committing; nothing was written.
    #[error("the write was abandoned before it was complete; nothing was written")]
    Aborted,
    #[error("database URL must start with sqlite:// or postgres://")]
    UnsupportedUrl,
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return StoreError::Conflict;
        }
        let unavailable = match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // Postgres classes 08 (connection), 53 (resources), 57P (operator intervention)
            // and SQLite's BUSY/LOCKED all pass with time.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "5"
                    || code == "6"
                    || code == "517"
            }),
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(err)
        } else {
            StoreError::Database(err)
        }
    }
}
