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

    // A loose index scan of `import_item_queued_depth`: each step asks the index for the
    // next depth above the last, so the read costs one probe per level, not one row visit
    // per queued item.
    const QUEUED_LEVELS: &'static str = "WITH RECURSIVE level (depth) AS ( \
             SELECT MIN(depth) FROM import_item WHERE import_id = $1 AND state = 'queued' \
           UNION ALL \
             SELECT (SELECT MIN(i.depth) FROM import_item i \
                     WHERE i.import_id = $1 AND i.state = 'queued' AND i.depth > level.depth) \
             FROM level WHERE level.depth IS NOT NULL) \
         SELECT COUNT(depth), COALESCE(MAX(depth), 0) FROM level";

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

    async fn maintain(pool: &Pool<Self>) -> Result<(), StoreError> {
        refresh_statistics(pool).await
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

/// The tables an import grows by thousands of rows a second.
const GROWING_TABLES: &str = "'anime'::regclass, 'anime_relation'::regclass, \
     'anime_missing'::regclass, 'import_item'::regclass";

/// Analyzes a growing table once its changes since the last ANALYZE reach a fifth of its size
/// (and at least 1,000 rows). An import grows `anime` and `import_item` from nothing to 100k
/// rows in two minutes, faster than autovacuum analyzes them; on statistics from when they
/// were tiny the planner reads the whole table for each batch's 50 ids (a Seq Scan where the
/// primary key would do, up to a second a statement at 100k). A fifth keeps the ANALYZEs of a
/// growing table to a handful. One process analyzes at a time; the others skip.
async fn refresh_statistics(pool: &Pool<Postgres>) -> Result<(), StoreError> {
    let stale: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT format('%I', c.relname) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = \
         s.relid WHERE s.relid IN ({GROWING_TABLES}) AND s.n_mod_since_analyze >= 1000 \
         AND s.n_mod_since_analyze > 0.2 * GREATEST(c.reltuples, 0)"
    )))
    .fetch_all(pool)
    .await?;
    if stale.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('franchise.analyze'))")
            .fetch_one(&mut *tx)
            .await?;
    if ours {
        let started = std::time::Instant::now();
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {}", stale.join(", "))))
            .execute(&mut *tx)
            .await?;
        tracing::debug!(tables = %stale.join(", "), elapsed = ?started.elapsed(), "analyzed growing tables");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::store::testing::PgDatabase;

    /// A table an import grew is analyzed by housekeeping, so the planner stops treating it
    /// as the empty table it was; a table that did not grow is left alone.
    #[tokio::test]
    async fn a_table_an_import_grew_is_analyzed_and_a_quiet_one_is_not() {
        let db = PgDatabase::create().await;
        let store = super::super::PgStore::connect(&db.url, 5, 4).await.unwrap();
        drop(store);
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO anime (id, kind, fetched_at) SELECT g, 'ANIME', 0 \
             FROM generate_series(1, 5000) AS g",
        )
        .execute(&pool)
        .await
        .unwrap();
        let analyzed = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1",
                )
                .bind(table)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        // The server publishes table statistics about once a second: poll, within a bound.
        let started = Instant::now();
        while !analyzed("anime").await {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "anime was not analyzed within 20 s of growing by 5,000 rows"
            );
            super::refresh_statistics(&pool).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(!analyzed("import_item").await);
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT id FROM anime WHERE kind = 'ANIME' AND fetched_at >= 0 \
             AND id = ANY('{1,2,3}'::BIGINT[])",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            plan.iter().any(|line| line.contains("anime_pkey")),
            "{plan:?}"
        );
        pool.close().await;
    }
}
