//! The embedded store: one SQLite file in WAL mode (`synchronous=NORMAL`, a busy timeout),
//! created and migrated under a file lock so processes started at once take turns, and the
//! shared AniList budget in a small file of its own beside it.

mod dialect;
mod franchise;
#[cfg(test)]
mod tests;
mod write;

use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::error::{Failure, StoreError};
use super::sql::{Access, SqlStore};

/// The embedded store: the shared SQL on a SQLite pool.
pub(crate) type SqliteStore = SqlStore<Sqlite>;

/// The migrations, compiled in: a binary carries the schema it expects.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The budget file's schema, migrated on its own.
static BUDGET_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite-budget");

/// Where the budget of the store at `path` lives: `franchise.sqlite.budget` beside it.
pub(crate) fn budget_path(path: &Path) -> std::path::PathBuf {
    crate::fs_lock::sidecar(path, ".budget")
}

/// How long a writer waits for another writer's lock before the store reports it busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn base_options(path: &Path) -> SqliteConnectOptions {
    // Built from the path, never from a URL string: a folder named `a%20b` or `x?y` is a folder.
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // Checkpoints run in the background (see `maintain`), not inside whichever commit
        // crosses SQLite's default 1,000 pages: at 100,000 anime those inline checkpoints took
        // a quarter of the flusher's time. This is only the backstop.
        .pragma("wal_autocheckpoint", "16384")
}

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) the store at `path` for reading and writing, and brings its
    /// schema up to date. A store written by a newer `franchise` is refused rather than
    /// touched; one that cannot be written is refused as read-only.
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self::open_writable(path).await?;
        // Writing is what importing needs: find out now, not on the first flush.
        if let Err(e) = store.probe_write().await {
            store.pool.close().await;
            return Err(match e.failure() {
                Failure::ReadOnly | Failure::Io => StoreError::ReadOnly {
                    location: path.display().to_string(),
                    reason: e.to_string(),
                },
                _ => e,
            });
        }
        Ok(store)
    }

    /// Opens the store for reading: writable if possible (so an old schema is upgraded), else
    /// read-only, so `status` and `show` work on a read-only data dir.
    pub(crate) async fn open_for_reading(path: &Path) -> Result<Self, StoreError> {
        match Self::open_writable(path).await {
            Ok(store) => Ok(store),
            Err(e) if path.exists() && matches!(e.failure(), Failure::ReadOnly | Failure::Io) => {
                Self::open_read_only(path).await
            }
            Err(StoreError::Open { .. }) if path.exists() => Self::open_read_only(path).await,
            Err(e) => Err(e),
        }
    }

    async fn open_writable(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                location: path.display().to_string(),
                reason: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        // Creation and migration under an exclusive lock: two processes on a fresh data dir
        // would otherwise both create the tables, and one would fail.
        let lock_path = crate::fs_lock::sidecar(path, ".lock");
        let _lock = crate::fs_lock::lock_exclusive(&lock_path)
            .await
            .map_err(|e| {
                let failure = if e.kind() == std::io::ErrorKind::PermissionDenied
                    || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                {
                    "read-only"
                } else {
                    "unusable"
                };
                let reason = format!("cannot lock {}: {e}", lock_path.display());
                if failure == "read-only" {
                    StoreError::ReadOnly {
                        location: path.display().to_string(),
                        reason,
                    }
                } else {
                    StoreError::Open {
                        location: path.display().to_string(),
                        reason,
                    }
                }
            })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base_options(path).create_if_missing(true))
            .await
            .map_err(|e| StoreError::from_open(path, e))?;
        let location = path.display().to_string();
        if let Err(e) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(StoreError::from_migrate(&location, path, e));
        }
        // One writer connection: see `SqlStore::writer`.
        let writer = match SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base_options(path))
            .await
        {
            Ok(writer) => writer,
            Err(e) => {
                pool.close().await;
                return Err(StoreError::from_open(path, e));
            }
        };
        let budget = budget_path(path);
        // One connection here too: a take (in the batcher's path) no longer sleeps in the busy
        // handler behind an answer's record, nor the other way round.
        let budget_pool = match SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base_options(&budget).create_if_missing(true))
            .await
        {
            Ok(budget_pool) => budget_pool,
            Err(e) => {
                pool.close().await;
                writer.close().await;
                return Err(StoreError::from_open(&budget, e));
            }
        };
        if let Err(e) = BUDGET_MIGRATOR.run(&budget_pool).await {
            pool.close().await;
            writer.close().await;
            budget_pool.close().await;
            return Err(StoreError::from_migrate(
                &budget.display().to_string(),
                &budget,
                e,
            ));
        }
        Ok(Self {
            pool,
            writer,
            budget_pool,
            location,
            access: Access::ReadWrite,
            push: (),
        })
    }

    async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let pool = read_only_pool(path).await?;
        let budget = budget_path(path);
        let budget_pool = match read_only_pool(&budget).await {
            Ok(budget_pool) if budget.exists() => budget_pool,
            // A data dir written only by an older `franchise` has no budget file (or one that
            // cannot be read): its budget reads as fresh.
            _ => fresh_budget(&budget).await?,
        };
        let store = Self {
            writer: pool.clone(),
            pool,
            budget_pool,
            location: path.display().to_string(),
            access: Access::ReadOnly,
            push: (),
        };
        if let Err(e) = store.check_schema(path).await {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// A read-only store cannot be migrated: it must be at exactly this binary's schema.
    async fn check_schema(&self, path: &Path) -> Result<(), StoreError> {
        let location = self.location.clone();
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_open(path, e))?;
        let ours = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        match applied {
            Some(v) if v > ours => Err(StoreError::NewerSchema {
                location,
                version: v,
            }),
            Some(v) if v == ours => Ok(()),
            _ => Err(StoreError::NeedsUpgrade { location }),
        }
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE store_probe SET id = 1 WHERE id = 1")
            .execute(&self.writer)
            .await?;
        sqlx::query("UPDATE budget_state SET id = 1 WHERE id = 1")
            .execute(&self.budget_pool)
            .await?;
        Ok(())
    }
}

/// An empty budget in memory, for reading a data dir without a budget file.
async fn fresh_budget(budget: &Path) -> Result<sqlx::SqlitePool, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().in_memory(true))
        .await
        .map_err(|e| StoreError::from_open(budget, e))?;
    BUDGET_MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::from_migrate(&budget.display().to_string(), budget, e))?;
    Ok(pool)
}

/// A read-only pool on the SQLite file at `path`.
async fn read_only_pool(path: &Path) -> Result<sqlx::SqlitePool, StoreError> {
    let options = base_options(path).read_only(true);
    match SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
    {
        Ok(pool) => Ok(pool),
        // WAL needs a -shm file next to the database; in a read-only folder without one,
        // read the file as immutable (nobody can be writing it there).
        Err(_) => SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.immutable(true))
            .await
            .map_err(|e| StoreError::from_open(path, e)),
    }
}
