//! Fresh databases for tests: a temporary SQLite file, or a new Postgres database on the
//! server `MARKETD_TEST_POSTGRES_URL` names (default: the local server, user `postgres`).
//!
//! Without a reachable Postgres the Postgres suites are skipped with a notice, so
//! `cargo test` passes on a bare machine; with `CI=true` an unreachable Postgres fails.

#![expect(
    clippy::expect_used,
    reason = "test support: a failed set-up must fail the test loudly"
)]

use std::io::Write;
use std::sync::OnceLock;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which backend a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database created for one test and removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<(String, String)>,
}

fn admin_url() -> String {
    std::env::var("MARKETD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Writes straight to the process's stderr: libtest captures only the print macros, and a
/// skipped suite must be visible in a normal `cargo test` run.
fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

impl TestDb {
    /// A new, empty SQLite database file in its own temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("marketd.db").display());
        Self {
            url,
            kind: Kind::Sqlite,
            _dir: Some(dir),
            pg_name: None,
        }
    }

    /// A new, empty Postgres database, or `None` (with a notice) when no server answers
    /// outside CI.
    pub async fn postgres() -> Option<Self> {
        let admin = admin_url();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(err) => {
                if in_ci() {
                    panic!("CI=true but Postgres at {admin} is unreachable: {err}");
                }
                static ONCE: OnceLock<()> = OnceLock::new();
                ONCE.get_or_init(|| {
                    notice(&format!(
                        "note: Postgres suites SKIPPED: no server at {admin} ({err}). \
                         Start Postgres or set MARKETD_TEST_POSTGRES_URL to run them."
                    ));
                });
                return None;
            }
        };
        let name = format!("marketd_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let _ = conn.close().await;
        let (base, _) = admin
            .rsplit_once('/')
            .expect("an admin URL with a database name");
        let url = format!("{base}/{name}");
        Some(Self {
            url,
            kind: Kind::Postgres,
            _dir: None,
            pg_name: Some((admin, name)),
        })
    }

    /// The test database of `kind`, or `None` if that backend is unavailable here.
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite()),
            Kind::Postgres => Self::postgres().await,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // thread with its own runtime removes the database.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs each named `async fn(Arc<dyn Store>)` against a fresh, migrated SQLite database
/// and a fresh, migrated Postgres database (skipped, with a notice, when no Postgres
/// answers outside CI), as `sqlite::name` and `postgres::name` tests. The store paths
/// resolve in the calling crate, which depends on `marketd-storage`; testkit itself does
/// not, so storage's own tests can use it.
#[macro_export]
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        async fn run<F, Fut>(kind: $crate::Kind, test: F)
        where
            F: FnOnce(::std::sync::Arc<dyn ::marketd_storage::Store>) -> Fut,
            Fut: ::std::future::Future<Output = ()>,
        {
            let Some(db) = $crate::TestDb::new(kind).await else {
                return;
            };
            let store = ::marketd_storage::connect(
                &db.url,
                &::marketd_storage::ConnectOptions::default(),
            )
            .await
            .unwrap();
            store.migrate().await.unwrap();
            test(::std::sync::Arc::clone(&store)).await;
            store.close().await;
        }

        mod sqlite {
            $(#[tokio::test] async fn $name() { super::run($crate::Kind::Sqlite, super::$name).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::run($crate::Kind::Postgres, super::$name).await })*
        }
    };
}
