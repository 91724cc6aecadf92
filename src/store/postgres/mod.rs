//! The scale-out store: PostgreSQL (13 or newer) through one `PgPool`, which the queue
//! (apalis-postgres, in schema `apalis`) shares. Any number of processes and machines use it
//! at once; the flush pushes its next jobs inside its own transaction.

mod budget;
mod process;
mod progress;
mod read;
mod tx;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use super::driver::{ItemTriage, QueuedItem, StoreDriver, StoreTx};
use super::error::StoreError;
use super::records::{
    AnimeSummary, ImportFilter, ImportProgress, ProcessInfo, StoredAnime, StoredRelation,
};
use crate::anime::{AnimeId, RelationType};
use crate::failpoint::FailPoints;
use crate::upstream::ledger::{LedgerOp, LedgerOutcome, LedgerRules};

pub(crate) use tx::PgTx;

/// Our tables' migrations; apalis-postgres runs its own (`apalis._sqlx_migrations`).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per process: the two lanes' workers and their LISTEN connections, the flusher,
/// the batcher's triage and budget decisions, housekeeping and reads.
const POOL_SIZE: u32 = 16;

#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    pool: PgPool,
    location: String,
    /// Attempts each job pushed from inside a transaction may run.
    max_attempts: usize,
    /// `store.enqueue` makes the flush's in-transaction push fail, for tests.
    failpoints: FailPoints,
}

impl PgStore {
    /// Connects, creates our tables (and apalis-postgres' schema) if needed, and refuses a
    /// database migrated by a newer franchise. Migrations take PostgreSQL's advisory lock, so
    /// processes starting at once take turns.
    pub(crate) async fn connect(url: &str, max_attempts: usize) -> Result<Self, StoreError> {
        let location = crate::config::redact_url(url);
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Open {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        let open_error = |e: sqlx::Error| StoreError::Open {
            location: location.clone(),
            reason: e.to_string(),
        };
        // Migrations on a connection of their own: a failed migration leaves its advisory lock
        // on that session, which must not go back to the pool.
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(open_error)?;
        if let Err(e) = MIGRATOR.run(&mut conn).await {
            let _ = conn.close().await;
            return Err(StoreError::from_migrate(
                &location,
                std::path::Path::new(&location),
                e,
            ));
        }
        if let Err(e) = apalis_postgres::PostgresStorage::migrations()
            .run(&mut conn)
            .await
        {
            let _ = conn.close().await;
            return Err(StoreError::Open {
                location: location.clone(),
                reason: format!("setting up the job queue's tables (schema apalis): {e}"),
            });
        }
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Ok(Self {
            pool,
            location,
            max_attempts: max_attempts.max(1),
            failpoints: FailPoints::default(),
        })
    }

    /// Arms this store's failure points from the importer's set.
    pub(crate) fn with_failpoints(mut self, failpoints: FailPoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl StoreDriver for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        let tx = self.pool.begin().await?;
        Ok(Box::new(PgTx {
            tx,
            max_attempts: self.max_attempts,
            failpoints: self.failpoints.clone(),
        }))
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
        self.delete_handoffs(up_to_seq).await
    }

    async fn triage(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError> {
        self.read_triage(items).await
    }

    async fn count_fetches(&self, items: &[(i64, AnimeId)], by: i32) -> Result<(), StoreError> {
        if items.is_empty() {
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
        if op == LedgerOp::Read {
            let mut conn = self.pool.acquire().await?;
            return budget::read_only(&mut conn, rules).await;
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
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
