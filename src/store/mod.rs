//! The SQL store: anime, their relations (observed and derived) and import progress, written
//! in multi-row upserts on the natural keys and read back as franchises and progress.
//!
//! SQLite is the embedded default (WAL, `synchronous=NORMAL`, a busy timeout). Every SQL text
//! lives in this folder so the PostgreSQL store shares one place to change.

mod error;
pub(crate) mod imports;
mod read;
mod records;
mod runtime;
pub(crate) mod write;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use error::StoreError;
pub use imports::{ImportRules, ItemOutcome, ItemResult, QueuedItem};
pub use records::{
    AnimeSummary, ImportProgress, ItemState, StoredAnime, StoredRelation, fresh_since, unix_ms_now,
};
pub use runtime::RuntimeSnapshot;
pub use write::FlushBatch;

/// The migrations, compiled in: a binary carries the schema it expects.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another writer's lock before the store reports it busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle to the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

/// A write transaction on the store; the flusher and the producer share one per flush.
pub type StoreTx = Transaction<'static, Sqlite>;

impl Store {
    /// Opens (creating if missing) the SQLite store at `path` and brings its schema up to date.
    /// A store written by a newer `franchise` is refused rather than touched.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Checkpoints run in the background (see `checkpoint`), not inside whichever commit
            // crosses SQLite's default 1,000 pages: at 100,000 anime those inline checkpoints
            // took a quarter of the flusher's time. This is only the backstop.
            .pragma("wal_autocheckpoint", "16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::from_open(path, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::from_migrate(path, e))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Copies committed WAL pages into the database file without waiting for readers or
    /// writers (a PASSIVE checkpoint); the worker process calls it every second.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool, checkpointing the WAL so the file is complete on its own.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
