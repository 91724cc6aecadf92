//! What differs between the two SQL backends, and nothing else: how a list of values is bound
//! (SQLite: a `VALUES`/`IN` list in chunks; PostgreSQL: whole columns as arrays), flags, the
//! write transaction's lock and the budget's clock.

use async_trait::async_trait;
use sqlx::{Database, Pool, QueryBuilder, Transaction};

use crate::anime::{Anime, AnimeId, RelationType};
use crate::queue::FetchJob;
use crate::store::{FranchiseItem, RewriteFeed, StoreError};

/// A franchise read as [`crate::store::StoreDriver::franchise_stream`] gives it.
pub(crate) type FranchiseStream =
    futures::stream::BoxStream<'static, Result<Vec<FranchiseItem>, StoreError>>;

/// One column of a row source bound as a whole (`push_rows`).
pub(crate) enum Column<'a> {
    Ints(Vec<i64>),
    Texts(Vec<&'a str>),
    OptTexts(Vec<Option<&'a str>>),
}

impl Column<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Ints(v) => v.len(),
            Self::Texts(v) => v.len(),
            Self::OptTexts(v) => v.len(),
        }
    }
}

/// A SQL backend's dialect: the few places where the shared statements differ.
#[async_trait]
pub(crate) trait Dialect: Database + sqlx::database::HasStatementCache {
    /// Rows of `width` bound values one statement may carry: SQLite allows 32,766 bound
    /// values; PostgreSQL binds whole columns as one array each.
    fn rows_per_statement(width: usize) -> usize;
    /// Whether a statement whose text grows with its list is kept prepared (not on SQLite:
    /// each list length would be a statement of its own in the cache).
    const PREPARE_LISTS: bool;

    /// ` IN (…)` (SQLite) or ` = ANY($n)` (PostgreSQL) after a column of integers.
    fn push_in_ints(q: &mut QueryBuilder<Self>, values: &[i64]);
    /// ` IN (…)` or ` = ANY($n)` after a text column; an empty list matches nothing.
    fn push_in_texts(q: &mut QueryBuilder<Self>, values: &[&str]);
    /// A row source named `v` with columns `column1…`: `(VALUES (…), …) AS v` on SQLite,
    /// `UNNEST($1::BIGINT[], …) AS v (column1, …)` on PostgreSQL.
    fn push_rows(q: &mut QueryBuilder<Self>, columns: &[Column<'_>]);
    /// A flag column (SQLite: an integer 0 or 1; PostgreSQL: a boolean).
    fn flag(row: &Self::Row, index: usize) -> Result<bool, sqlx::Error>;
    /// Binds a flag in the column's type.
    fn push_flag(q: &mut QueryBuilder<Self>, value: bool);
    /// `MAX(a, b)` of two integers (SQLite's scalar `MAX`, PostgreSQL's `GREATEST`).
    const GREATEST: &'static str;
    /// How many depths an import's queued items span, and the deepest (0 if none), for
    /// import `$1`: the ETA's levels still to walk.
    const QUEUED_LEVELS: &'static str;

    /// Rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// A write transaction. SQLite takes the write lock at once (`BEGIN IMMEDIATE`): a flush
    /// reads, then writes, and another process's commit in between must not fail the upgrade.
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, StoreError>;

    /// Upserts fetched anime and their relations (see `StoreTx::upsert_anime`): the
    /// statements that bind the most values, written per dialect for speed.
    async fn upsert_anime(
        conn: &mut Self::Connection,
        anime: &[Anime],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Remembers ids AniList left out of an answer, and forgets those it now returned.
    async fn record_missing(
        conn: &mut Self::Connection,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// What a write transaction needs to push jobs into a queue in the same database.
    type Push: Clone + std::fmt::Debug + Default + Send + Sync + 'static;
    /// Pushes fetch jobs inside the transaction when the queue shares the database
    /// (PostgreSQL); false when it cannot (SQLite: the queue is a file of its own).
    async fn enqueue(
        conn: &mut Self::Connection,
        push: &Self::Push,
        jobs: &[FetchJob],
    ) -> Result<bool, StoreError>;

    /// Takes the budget's lock inside a write transaction (SQLite's IMMEDIATE transaction
    /// already holds the database's; PostgreSQL locks the state row).
    async fn lock_budget(conn: &mut Self::Connection) -> Result<(), StoreError>;
    /// "Now" for the budget: the caller's clock (SQLite, one machine), or the server's, so
    /// machines whose clocks differ still share one window (PostgreSQL).
    async fn budget_now(conn: &mut Self::Connection, now_ms: i64) -> Result<i64, StoreError>;
    /// The hidden row id column (`rowid`, `ctid`), to delete one of equal rows.
    const ROW_ID: &'static str;

    /// Background housekeeping (SQLite: a passive WAL checkpoint).
    async fn maintain(pool: &Pool<Self>) -> Result<(), StoreError>;

    /// A streamed franchise read of the backend's own, where the shared one (rows through
    /// the pool) is too slow; `None` takes the shared one.
    fn franchise_reader(
        _pool: &Pool<Self>,
        _location: &str,
        _root: AnimeId,
        _followed: &[RelationType],
    ) -> Option<FranchiseStream> {
        None
    }

    /// Tells every process's read cache, when this transaction commits, which anime writing
    /// `anime` rewrote ([`crate::anime::rewritten_by`]; PostgreSQL: NOTIFY, dropped with a
    /// rollback; SQLite: nothing, see `StoreDriver::rewrite_feed`).
    async fn announce_rewrites(
        conn: &mut Self::Connection,
        anime: &[Anime],
    ) -> Result<(), StoreError>;
    /// A feed of the announced rewrites, or `None` where there is none.
    async fn rewrite_feed(pool: &Pool<Self>) -> Result<Option<Box<dyn RewriteFeed>>, StoreError>;
}
