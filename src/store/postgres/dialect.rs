//! PostgreSQL's dialect: whole columns bound as arrays (`= ANY($n)`, `UNNEST`), so each
//! statement is prepared once whatever its row count; booleans; the budget's row lock and the
//! server's clock; and the flush's next jobs pushed into apalis in the same transaction.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgQueryResult};
use sqlx::{PgConnection, Pool, Postgres, QueryBuilder, Row, Transaction};

use crate::anime::{Anime, AnimeId, rewritten_by};
use crate::failpoint::{FailAction, FailPoints};
use crate::queue::{FetchJob, Lane, QueueError};
use crate::store::sql::{Column, Dialect};
use crate::store::{RewriteFeed, StoreError};

/// What a PostgreSQL write transaction needs to push jobs into apalis.
#[derive(Debug, Clone, Default)]
pub(crate) struct PgPush {
    /// Attempts each job pushed from inside a transaction may run.
    pub(crate) max_attempts: usize,
    /// `store.enqueue` makes the flush's in-transaction push fail, for tests.
    pub(crate) failpoints: FailPoints,
}

#[async_trait]
impl Dialect for Postgres {
    fn rows_per_statement(_width: usize) -> usize {
        usize::MAX
    }
    const PREPARE_LISTS: bool = true;

    fn push_in_ints(q: &mut QueryBuilder<Self>, values: &[i64]) {
        q.push(" = ANY(").push_bind(values.to_vec()).push(")");
    }

    fn push_in_texts(q: &mut QueryBuilder<Self>, values: &[&str]) {
        q.push(" = ANY(").push_bind(values.to_vec()).push(")");
    }

    fn push_rows(q: &mut QueryBuilder<Self>, columns: &[Column<'_>]) {
        q.push("UNNEST(");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            match column {
                Column::Ints(v) => q.push_bind(v.clone()).push("::BIGINT[]"),
                Column::Texts(v) => q.push_bind(v.clone()).push("::TEXT[]"),
                Column::OptTexts(v) => q.push_bind(v.clone()).push("::TEXT[]"),
            };
        }
        q.push(") AS v (");
        let mut names = q.separated(", ");
        for i in 1..=columns.len() {
            names.push(format!("column{i}"));
        }
        q.push(")");
    }

    fn flag(row: &Self::Row, index: usize) -> Result<bool, sqlx::Error> {
        row.try_get(index)
    }

    fn push_flag(q: &mut QueryBuilder<Self>, value: bool) {
        q.push_bind(value);
    }
    const GREATEST: &'static str = "GREATEST";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, StoreError> {
        Ok(pool.begin().await?)
    }

    async fn upsert_anime(
        conn: &mut PgConnection,
        anime: &[Anime],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(super::write::upsert_anime(conn, anime, now_ms).await?)
    }

    async fn record_missing(
        conn: &mut PgConnection,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(super::write::record_missing(conn, missing, found, now_ms).await?)
    }

    type Push = PgPush;

    async fn enqueue(
        conn: &mut PgConnection,
        push: &PgPush,
        jobs: &[FetchJob],
    ) -> Result<bool, StoreError> {
        if let Some(FailAction::Error) = push.failpoints.hit("store.enqueue") {
            return Err(StoreError::Queue(QueueError::Backend {
                location: "in PostgreSQL (schema apalis)".to_string(),
                operation: "pushing jobs",
                reason: "failure point store.enqueue fired".to_string(),
            }));
        }
        // The queue lives in this database: the jobs commit with the data, or not at all. A
        // failure stays the queue's error (a lost connection under it still reads as one).
        crate::queue::postgres::push_in(conn, Lane::Background, jobs, push.max_attempts).await?;
        Ok(true)
    }

    async fn lock_budget(conn: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("SELECT id FROM budget_state WHERE id = 1 FOR UPDATE")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn budget_now(conn: &mut PgConnection, _now_ms: i64) -> Result<i64, StoreError> {
        // The server's clock, so machines whose clocks differ still share one window.
        Ok(
            sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
                .fetch_one(&mut *conn)
                .await?,
        )
    }

    const ROW_ID: &'static str = "ctid";

    async fn maintain(_pool: &Pool<Self>) -> Result<(), StoreError> {
        Ok(())
    }

    async fn announce_rewrites(conn: &mut PgConnection, anime: &[Anime]) -> Result<(), StoreError> {
        let ids: Vec<i64> = rewritten_by(anime)
            .map(i64::from)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        // A notification's payload must stay under 8,000 bytes: at most 11 bytes an id.
        for chunk in ids.chunks(IDS_PER_NOTIFICATION) {
            let payload = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REWRITES_CHANNEL)
                .bind(payload)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn rewrite_feed(pool: &Pool<Self>) -> Result<Option<Box<dyn RewriteFeed>>, StoreError> {
        let mut listener = PgListener::connect_with(pool).await?;
        // A lost connection ends the feed (`None`), so the caller knows rewrites were missed;
        // it connects again itself.
        listener.eager_reconnect(false);
        listener.listen(REWRITES_CHANNEL).await?;
        Ok(Some(Box::new(PgRewriteFeed { listener })))
    }
}

/// The channel the flush's rewrites are announced on.
const REWRITES_CHANNEL: &str = "franchise_rewrites";
/// Ids per notification, so a payload stays well under PostgreSQL's 8,000 bytes.
const IDS_PER_NOTIFICATION: usize = 500;

/// Rewrites announced by any process's committed flush, through one LISTEN connection of its
/// own (taken from the pool and detached from it).
struct PgRewriteFeed {
    listener: PgListener,
}

#[async_trait]
impl RewriteFeed for PgRewriteFeed {
    async fn next(&mut self) -> Option<Vec<AnimeId>> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    let ids: Vec<AnimeId> = notification
                        .payload()
                        .split(',')
                        .filter_map(|raw| raw.parse::<i64>().ok())
                        .filter_map(|raw| AnimeId::new(raw).ok())
                        .collect();
                    if !ids.is_empty() {
                        return Some(ids);
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::debug!(error = %e, "the rewrite feed ended");
                    return None;
                }
            }
        }
    }
}
