//! Stores for the crate's own tests: SQLite on a temp file, and PostgreSQL in a database of
//! its own on `TEST_DATABASE_URL`'s server, dropped afterwards.

use std::sync::Arc;

use super::Store;
use super::sqlite::SqliteStore;

/// A SQLite store in a fresh temp dir (dropped with the dir).
pub(crate) async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("franchise.sqlite"))
        .await
        .unwrap();
    (dir, Store::new(Arc::new(store)))
}

/// A pool on the test server that gives up within 4 s (sqlx waits 30 s by default), so a
/// missing server fails each test quickly, naming `TEST_DATABASE_URL`.
async fn admin_pool(url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(4))
        .connect(url)
        .await
}

/// A fresh PostgreSQL database for one test, dropped when the guard goes. The server comes
/// from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`; `.ci/run`
/// sets it and starts the server); a server that cannot be reached fails the test.
pub(crate) struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub(crate) async fn create() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("franchise_test_{:016x}", rand::random::<u64>());
        let admin = admin_pool(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL server at {admin_url} within 4 s ({e}): set \
                 TEST_DATABASE_URL to a server the tests may create databases on; .ci/run \
                 sets it and starts the local server"
            )
        });
        // The name is ours (hex digits), never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create a test database");
        admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            admin_url,
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = admin_pool(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL store in a fresh database.
pub(crate) async fn postgres_store() -> (PgDatabase, Store) {
    let db = PgDatabase::create().await;
    let store = super::postgres::PgStore::connect(&db.url, 5, 8)
        .await
        .unwrap();
    (db, Store::new(Arc::new(store)))
}
