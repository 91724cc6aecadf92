//! The embedded store: one SQLite file in WAL mode (`synchronous=NORMAL`, a busy timeout),
//! created and migrated under a file lock so processes started at once take turns.

mod budget;
mod process;
mod progress;
mod read;
#[cfg(test)]
mod tests;
mod tx;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::driver::{ItemTriage, QueuedItem, StoreDriver, StoreTx};
use super::error::{Failure, StoreError};
use super::records::{
    AnimeSummary, ImportFilter, ImportProgress, ProcessInfo, StoredAnime, StoredRelation,
};
use crate::anime::{AnimeId, RelationType};
use crate::upstream::ledger::{LedgerOp, LedgerOutcome, LedgerRules};

pub(crate) use tx::SqliteTx;

/// The migrations, compiled in: a binary carries the schema it expects.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another writer's lock before the store reports it busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    /// The file or its folder cannot be written: reads only (`status`, `show`).
    ReadOnly,
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    access: Access,
}

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

impl SqliteStore {
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
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            access: Access::ReadWrite,
        })
    }

    async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let options = base_options(path).read_only(true);
        let pool = match SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            // WAL needs a -shm file next to the database; in a read-only folder without one,
            // read the file as immutable (nobody can be writing it there).
            Err(_) => SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options.immutable(true))
                .await
                .map_err(|e| StoreError::from_open(path, e))?,
        };
        let store = Self {
            pool,
            path: path.to_path_buf(),
            access: Access::ReadOnly,
        };
        if let Err(e) = store.check_schema().await {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// A read-only store cannot be migrated: it must be at exactly this binary's schema.
    async fn check_schema(&self) -> Result<(), StoreError> {
        let location = self.path.display().to_string();
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_open(&self.path, e))?;
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
        sqlx::query("UPDATE budget_state SET id = 1 WHERE id = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl StoreDriver for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        if self.access == Access::ReadOnly {
            return Err(StoreError::ReadOnly {
                location: self.location(),
                reason: "it was opened read-only".into(),
            });
        }
        // IMMEDIATE: a flush reads, then writes; taking the write lock first means another
        // process's commit in between cannot make the upgrade fail.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, StoreError> {
        self.read_anime(id).await
    }

    async fn missing_since(&self, id: AnimeId) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT checked_at FROM anime_missing WHERE id = $1")
                .bind(i64::from(id))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn relations_from(&self, ids: &[AnimeId]) -> Result<Vec<StoredRelation>, StoreError> {
        self.read_relations_from(ids).await
    }

    async fn franchise(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Result<Vec<AnimeSummary>, StoreError> {
        self.read_franchise(root, followed).await
    }

    async fn imports(&self, filter: &ImportFilter) -> Result<Vec<ImportProgress>, StoreError> {
        self.read_imports(filter).await
    }

    async fn failed_items(
        &self,
        import_id: i64,
        limit: u32,
    ) -> Result<Vec<(AnimeId, String)>, StoreError> {
        self.read_failed_items(import_id, limit).await
    }

    async fn queued_items(&self, after_import: i64) -> Result<Vec<QueuedItem>, StoreError> {
        self.read_queued_items(after_import).await
    }

    async fn queued_items_of(&self, import_ids: &[i64]) -> Result<Vec<QueuedItem>, StoreError> {
        self.read_queued_items_of(import_ids).await
    }

    async fn handoffs(&self, after_seq: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.read_handoffs(after_seq).await
    }

    async fn clear_handoffs(&self, up_to_seq: i64) -> Result<(), StoreError> {
        if self.access == Access::ReadOnly {
            return Ok(());
        }
        self.delete_handoffs(up_to_seq).await
    }

    async fn triage(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError> {
        self.read_triage(items).await
    }

    async fn count_fetches(&self, items: &[(i64, AnimeId)], by: i32) -> Result<(), StoreError> {
        if items.is_empty() || self.access == Access::ReadOnly {
            return Ok(());
        }
        self.add_fetches(items, by).await
    }

    async fn budget(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        if self.access == Access::ReadOnly || op == LedgerOp::Read {
            // Reading needs no write lock (and a read-only store cannot take one).
            let mut conn = self.pool.acquire().await?;
            return budget::read_only(&mut conn, rules, now_ms).await;
        }
        self.apply_budget(op, rules, now_ms).await
    }

    async fn heartbeat(&self, process: &ProcessInfo) -> Result<(), StoreError> {
        self.write_heartbeat(process).await
    }

    async fn retire(&self, process_id: &str) -> Result<(), StoreError> {
        self.delete_process(process_id).await
    }

    async fn processes(&self, fresh_since_ms: i64) -> Result<Vec<ProcessInfo>, StoreError> {
        self.read_processes(fresh_since_ms).await
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        if self.access == Access::ReadOnly {
            return Ok(());
        }
        // Copies committed WAL pages into the database file without waiting for readers or
        // writers (a PASSIVE checkpoint).
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
