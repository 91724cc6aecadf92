//! SQLite's dialect: lists bound as `VALUES`/`IN` lists in chunks under its 32,766 bound
//! values, flags as integers, write transactions that take the lock at once, and the
//! embedded queue outside the database.

use async_trait::async_trait;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Pool, QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};

use crate::anime::{Anime, AnimeId, RelationType};
use crate::queue::FetchJob;
use crate::store::sql::{Column, Dialect, FranchiseStream};
use crate::store::{RewriteFeed, StoreError};

#[async_trait]
impl Dialect for Sqlite {
    fn rows_per_statement(width: usize) -> usize {
        (5_000 / width.max(1)).max(1)
    }
    const PREPARE_LISTS: bool = false;

    fn push_in_ints(q: &mut QueryBuilder<Self>, values: &[i64]) {
        q.push(" IN (");
        let mut list = q.separated(", ");
        for v in values {
            list.push_bind(*v);
        }
        if values.is_empty() {
            list.push("NULL");
        }
        q.push(")");
    }

    fn push_in_texts(q: &mut QueryBuilder<Self>, values: &[&str]) {
        q.push(" IN (");
        let mut list = q.separated(", ");
        for v in values {
            list.push_bind(*v);
        }
        if values.is_empty() {
            list.push("NULL");
        }
        q.push(")");
    }

    fn push_rows(q: &mut QueryBuilder<Self>, columns: &[Column<'_>]) {
        let rows = columns.first().map_or(0, Column::len);
        q.push("(VALUES ");
        for row in 0..rows {
            if row > 0 {
                q.push(", ");
            }
            q.push("(");
            let mut values = q.separated(", ");
            for column in columns {
                match column {
                    Column::Ints(v) => values.push_bind(v[row]),
                    Column::Texts(v) => values.push_bind(v[row]),
                    Column::OptTexts(v) => values.push_bind(v[row]),
                };
            }
            q.push(")");
        }
        q.push(") AS v");
    }

    fn flag(row: &Self::Row, index: usize) -> Result<bool, sqlx::Error> {
        Ok(row.try_get::<i64, _>(index)? != 0)
    }

    fn franchise_reader(
        pool: &Pool<Self>,
        location: &str,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Option<FranchiseStream> {
        let options = pool.connect_options();
        let path = options.get_filename();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return None;
        }
        Some(super::franchise::franchise_stream(
            path.to_path_buf(),
            location.to_string(),
            root,
            followed,
        ))
    }

    fn push_flag(q: &mut QueryBuilder<Self>, value: bool) {
        q.push_bind(i64::from(value));
    }
    const GREATEST: &'static str = "MAX";

    // Counted over the import's queued items in process: an index on (import, depth) would
    // cost the single writer on every item it queues.
    const QUEUED_LEVELS: &'static str = "SELECT COUNT(DISTINCT depth), COALESCE(MAX(depth), 0) \
         FROM import_item WHERE state = 'queued' AND import_id = $1";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn upsert_anime(
        conn: &mut SqliteConnection,
        anime: &[Anime],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(super::write::upsert_anime(conn, anime, now_ms).await?)
    }

    async fn record_missing(
        conn: &mut SqliteConnection,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(super::write::record_missing(conn, missing, found, now_ms).await?)
    }

    type Push = ();

    async fn enqueue(
        _conn: &mut SqliteConnection,
        _push: &(),
        _jobs: &[FetchJob],
    ) -> Result<bool, StoreError> {
        // The embedded queue is a file of its own: the caller pushes after the commit.
        Ok(false)
    }

    async fn lock_budget(_conn: &mut SqliteConnection) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        Ok(())
    }

    async fn budget_now(_conn: &mut SqliteConnection, now_ms: i64) -> Result<i64, StoreError> {
        Ok(now_ms)
    }

    const ROW_ID: &'static str = "rowid";

    async fn maintain(pool: &Pool<Self>) -> Result<(), StoreError> {
        // Copies committed WAL pages into the database file without waiting for readers or
        // writers (a PASSIVE checkpoint).
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn announce_rewrites(
        _conn: &mut SqliteConnection,
        _anime: &[Anime],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn rewrite_feed(_pool: &Pool<Self>) -> Result<Option<Box<dyn RewriteFeed>>, StoreError> {
        Ok(None)
    }
}
