//! One store over a SQL pool, for either backend: the driver's reads, heartbeats and the
//! budget, each statement written once. Opening is the backend's (`sqlite/`, `postgres/`).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Pool, QueryBuilder, Row};

use super::{Dialect, Sql, shared, to_id};
use crate::anime::{AnimeId, RelationType};
use crate::ledger::{LedgerOp, LedgerOutcome, LedgerRules};
use crate::store::driver::{ItemTriage, QueuedItem, RewriteFeed, StoreDriver, StoreTx};
use crate::store::error::StoreError;
use crate::store::records::{
    AnimeSummary, FranchiseItem, ImportFilter, ImportProgress, ProcessInfo, StoredAnime,
    StoredRelation,
};

/// Batches a streamed read keeps ready ahead of its reader.
pub(crate) const STREAM_BUFFER: usize = 4;

/// How the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    /// The file or its folder cannot be written: reads only (`status`, `show`).
    ReadOnly,
}

/// A store on a pool of `DB` connections.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Dialect> {
    pub(crate) pool: Pool<DB>,
    /// Where write transactions and writes take their connection. SQLite: one connection of
    /// its own, so this process's writers (a flush, a request's fetch count, a heartbeat) wait
    /// for each other in turn; on the file's lock they waited in SQLite's busy handler, which
    /// sleeps 1, 2, 5, 10 ms… between tries, and a flush stalled that way stalled the whole
    /// pipeline (measured: the fetch count cost 11 to 20 % of the throughput at 100,000
    /// anime). PostgreSQL: the store's pool, whose row locks queue writers already.
    pub(crate) writer: Pool<DB>,
    /// Where the shared AniList budget lives. PostgreSQL: the store's own pool. SQLite: a
    /// file of its own beside the store, because taking a slot is a write transaction, and
    /// in the store's file it waited behind every flush's write lock (measured: 21% of the
    /// throughput at 10,000 anime).
    pub(crate) budget_pool: Pool<DB>,
    /// Where the data lives, for messages: a file path or a redacted database URL.
    pub(crate) location: String,
    pub(crate) access: Access,
    /// What write transactions need to push jobs in the same database.
    pub(crate) push: DB::Push,
}

impl<DB: Dialect> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            budget_pool: self.budget_pool.clone(),
            location: self.location.clone(),
            access: self.access,
            push: self.push.clone(),
        }
    }
}

impl<DB: Dialect> SqlStore<DB> {
    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn writable(&self) -> bool {
        self.access == Access::ReadWrite
    }
}

shared! {
#[async_trait]
impl<DB> StoreDriver for SqlStore<DB> {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        if !self.writable() {
            return Err(StoreError::ReadOnly {
                location: self.location(),
                reason: "it was opened read-only".into(),
            });
        }
        let tx = DB::begin_write(&self.writer).await?;
        Ok(Box::new(super::tx::SqlTx::<DB> {
            tx,
            push: self.push.clone(),
        }))
    }

    async fn anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, StoreError> {
        Sql::<DB>::anime(&self.pool, id).await
    }

    async fn missing_since(&self, id: AnimeId) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query::<DB>("SELECT checked_at FROM anime_missing WHERE id = $1")
            .bind(i64::from(id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    async fn relations_from(&self, ids: &[AnimeId]) -> Result<Vec<StoredRelation>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Sql::<DB>::relations_from(&mut conn, ids).await
    }

    async fn franchise(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Result<Vec<AnimeSummary>, StoreError> {
        Sql::<DB>::franchise(&self.pool, root, followed).await
    }

    fn franchise_stream(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> futures::stream::BoxStream<'static, Result<Vec<FranchiseItem>, StoreError>> {
        if let Some(direct) = DB::franchise_reader(&self.pool, &self.location, root, followed) {
            return direct;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let pool = self.pool.clone();
        let followed = followed.to_vec();
        tokio::spawn(async move {
            if let Err(e) = Sql::<DB>::franchise_into(&pool, root, &followed, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    async fn imports(&self, filter: &ImportFilter) -> Result<Vec<ImportProgress>, StoreError> {
        Sql::<DB>::imports(&self.pool, filter).await
    }

    async fn failed_items(
        &self,
        import_id: i64,
        limit: u32,
    ) -> Result<Vec<(AnimeId, String)>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT anime_id, COALESCE(reason, 'unknown') FROM import_item \
             WHERE import_id = $1 AND state = 'failed' ORDER BY anime_id LIMIT $2",
        )
        .bind(import_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((to_id(row.try_get(0)?)?, row.try_get(1)?)))
            .collect()
    }

    async fn queued_items(&self, after_import: i64) -> Result<Vec<QueuedItem>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT import_id, anime_id, depth, round FROM import_item WHERE state = 'queued' \
             AND import_id > $1 ORDER BY import_id, depth, anime_id",
        )
        .bind(after_import)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Sql::<DB>::queued_item).collect()
    }

    async fn queued_items_of(&self, import_ids: &[i64]) -> Result<Vec<QueuedItem>, StoreError> {
        let mut out = Vec::new();
        for chunk in import_ids.chunks(DB::rows_per_statement(1)) {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT import_id, anime_id, depth, round FROM import_item \
                 WHERE state = 'queued' AND import_id",
            );
            DB::push_in_ints(&mut q, chunk);
            q.push(" ORDER BY import_id, depth, anime_id");
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&self.pool)
                .await?
            {
                out.push(Sql::<DB>::queued_item(&row)?);
            }
        }
        Ok(out)
    }

    async fn handoffs(&self, after_seq: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows =
            sqlx::query::<DB>("SELECT seq, import_id FROM handoff WHERE seq > $1 ORDER BY seq")
                .bind(after_seq)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn clear_handoffs(&self, up_to_seq: i64) -> Result<(), StoreError> {
        if !self.writable() {
            return Ok(());
        }
        sqlx::query::<DB>("DELETE FROM handoff WHERE seq <= $1")
            .bind(up_to_seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn triage(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError> {
        Sql::<DB>::triage(&self.pool, items).await
    }

    async fn count_fetches(&self, items: &[(i64, AnimeId)], by: i32) -> Result<(), StoreError> {
        if items.is_empty() || !self.writable() {
            return Ok(());
        }
        Sql::<DB>::count_fetches(&self.writer, items, by).await
    }

    async fn budget(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        if !self.writable() || op == LedgerOp::Read {
            // Reading needs no lock (and a read-only store cannot take one).
            let mut conn = self.budget_pool.acquire().await?;
            return Sql::<DB>::read_budget(&mut conn, rules, now_ms).await;
        }
        Sql::<DB>::apply_budget(&self.budget_pool, op, rules, now_ms).await
    }

    async fn heartbeat(&self, process: &ProcessInfo) -> Result<(), StoreError> {
        Sql::<DB>::write_heartbeat(&self.writer, process).await
    }

    async fn retire(&self, process_id: &str) -> Result<(), StoreError> {
        sqlx::query::<DB>("DELETE FROM worker_process WHERE id = $1")
            .bind(process_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn processes(&self, fresh_since_ms: i64) -> Result<Vec<ProcessInfo>, StoreError> {
        Sql::<DB>::read_processes(&self.pool, fresh_since_ms).await
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        if !self.writable() {
            return Ok(());
        }
        DB::maintain(&self.pool).await
    }

    fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    async fn rewrite_feed(&self) -> Result<Option<Box<dyn RewriteFeed>>, StoreError> {
        DB::rewrite_feed(&self.pool).await
    }

    async fn close(&self) {
        self.budget_pool.close().await;
        self.writer.close().await;
        self.pool.close().await;
    }
}
}
