//! The store seam: what the walk, the workers and the importer need from a database, as two
//! small interfaces every backend implements once (SQLite embedded, PostgreSQL for scale-out).
//!
//! Modelled on River's driver interface: the backends hold only their dialect's SQL, and the
//! logic above them (the walk in `producer/`, the budget's rules in `upstream/`) is written
//! once. `store/conformance.rs` runs one suite against every backend.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::error::StoreError;
use super::records::{
    AnimeSummary, ImportFilter, ImportProgress, ItemState, ProcessInfo, StoredAnime, StoredRelation,
};
use crate::anime::{Anime, AnimeId, RelationType};
use crate::ledger::{LedgerOp, LedgerOutcome, LedgerRules};
use crate::queue::FetchJob;

/// The bounds and filter of one import's walk, stored with the import so a restart walks on
/// by the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRules {
    pub max_depth: u32,
    pub max_items: u32,
    pub followed: Vec<RelationType>,
    pub force_refresh: bool,
}

/// An item waiting for a fetch job. `round` names the job that fetches it: it goes up each
/// time the item is queued again (retry, release at shutdown, a job lost by the queue), so
/// the new job never collides with the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueuedItem {
    pub import_id: i64,
    pub anime_id: AnimeId,
    pub depth: u32,
    pub round: u32,
}

/// An import item waiting for a fetch becomes the job that fetches it.
impl From<&QueuedItem> for FetchJob {
    fn from(item: &QueuedItem) -> Self {
        Self {
            import_id: Some(item.import_id),
            anime_id: item.anime_id,
            depth: item.depth,
            round: item.round,
        }
    }
}

/// How a fetch of one item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Done,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub import_id: i64,
    pub anime_id: AnimeId,
    pub outcome: ItemOutcome,
}

/// What a worker needs to know about one job's item before it spends a request on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemTriage {
    pub state: ItemState,
    pub round: u32,
    /// The anime was stored after the item was queued (another import fetched it
    /// meanwhile): the item can be settled from the store, without a request.
    pub stored_since_queued: bool,
    /// AniList was asked after the item was queued and did not have it.
    pub missing_since_queued: bool,
    /// Times the anime was sent to AniList for this item without its answer being stored.
    pub fetches: u32,
}

/// One new item of an import: (anime, depth, state, reason).
pub type NewItem<'a> = (AnimeId, u32, ItemState, Option<&'a str>);

/// A write transaction. Every method works inside it; nothing is visible to others until
/// `commit`, and dropping it uncommitted rolls everything back.
#[async_trait]
pub(crate) trait StoreTx: Send {
    /// Upserts fetched anime and their relations: observed edges as observed, their inverses
    /// as derived (never over an observed row), and drops the rows a refetch no longer has.
    async fn upsert_anime(&mut self, anime: &[Anime], now_ms: i64) -> Result<(), StoreError>;
    /// Remembers ids AniList left out of an answer, and forgets those it now returned.
    async fn record_missing(
        &mut self,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError>;

    async fn insert_import(
        &mut self,
        root: AnimeId,
        rules: &ImportRules,
        now_ms: i64,
    ) -> Result<i64, StoreError>;
    async fn import_rules(&mut self, import_id: i64) -> Result<Option<ImportRules>, StoreError>;
    /// Moves queued items to their outcome; returns those that moved to `done`. Items no
    /// longer queued (a re-delivered job, a cancelled import) are left as they are.
    async fn record_outcomes(
        &mut self,
        results: &[ItemResult],
        now_ms: i64,
    ) -> Result<Vec<QueuedItem>, StoreError>;
    /// Stored edges out of `parents` of a followed type to an ANIME, as (parent, child).
    async fn followed_edges(
        &mut self,
        parents: &[AnimeId],
        followed: &[RelationType],
    ) -> Result<Vec<(AnimeId, AnimeId)>, StoreError>;
    async fn existing_items(
        &mut self,
        import_id: i64,
        ids: &[AnimeId],
    ) -> Result<HashMap<AnimeId, (u32, ItemState)>, StoreError>;
    async fn item_count(&mut self, import_id: i64) -> Result<u64, StoreError>;
    async fn fresh_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError>;
    async fn missing_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError>;
    async fn insert_items(
        &mut self,
        import_id: i64,
        items: &[NewItem<'_>],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    async fn lower_depth(
        &mut self,
        import_id: i64,
        anime_id: AnimeId,
        depth: u32,
    ) -> Result<(), StoreError>;
    /// Stamps the import finished once nothing is queued, counting the followed relations a
    /// depth or size cap left unwalked (edges from its done items to anime it did not take);
    /// true if it just finished.
    async fn finish_if_complete(&mut self, import_id: i64, now_ms: i64)
    -> Result<bool, StoreError>;

    /// Queues these items again under a new round (their old job is gone or finished).
    /// Only items still queued at the round given move; returns them with their new round.
    async fn requeue(
        &mut self,
        items: &[QueuedItem],
        now_ms: i64,
    ) -> Result<Vec<QueuedItem>, StoreError>;
    /// Cancels an import: its queued items become `cancelled`. None if there is no such import.
    async fn cancel_import(
        &mut self,
        import_id: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError>;
    /// Queues an import's failed items again (new round each). None if there is no such import.
    async fn retry_import(
        &mut self,
        import_id: i64,
        now_ms: i64,
    ) -> Result<Option<Vec<QueuedItem>>, StoreError>;

    /// Records that this import has queued items no queue job carries yet, for the process
    /// that owns the queue to push (embedded: a process that does not own the queue file).
    async fn hand_off(&mut self, import_id: i64) -> Result<(), StoreError>;

    /// Pushes fetch jobs inside this transaction when the backend's queue shares its
    /// database (PostgreSQL); returns false when it cannot, and the caller pushes them to the
    /// queue after the commit.
    async fn enqueue(&mut self, jobs: &[FetchJob]) -> Result<bool, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A database holding the anime, their relations, the imports and the shared rate budget.
#[async_trait]
pub(crate) trait StoreDriver: Send + Sync + std::fmt::Debug {
    /// Where the data lives, for messages: a file path or a database name.
    fn location(&self) -> String;

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    async fn anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, StoreError>;
    /// When AniList last said it does not have this id, if it did.
    async fn missing_since(&self, id: AnimeId) -> Result<Option<i64>, StoreError>;
    /// Every stored relation whose `from` is one of `ids`, ordered by (from, to).
    async fn relations_from(&self, ids: &[AnimeId]) -> Result<Vec<StoredRelation>, StoreError>;
    /// Every stored anime reachable from `root` over `followed`, root included, by id.
    async fn franchise(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Result<Vec<AnimeSummary>, StoreError>;
    /// [`StoreDriver::franchise`]'s members, then every relation that starts at one (what
    /// `relations_from` gives for them), read as the stream is taken, in batches, through a
    /// small bounded channel: a franchise of 100k anime is never held whole. Dropping the
    /// stream stops the read.
    fn franchise_stream(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> futures::stream::BoxStream<'static, Result<Vec<super::FranchiseItem>, StoreError>>;
    /// Progress of the imports the filter selects, newest first.
    async fn imports(&self, filter: &ImportFilter) -> Result<Vec<ImportProgress>, StoreError>;
    /// Failed items of one import: (anime, reason), for a status view.
    async fn failed_items(
        &self,
        import_id: i64,
        limit: u32,
    ) -> Result<Vec<(AnimeId, String)>, StoreError>;
    /// Items waiting for a fetch in imports newer than `after_import`.
    async fn queued_items(&self, after_import: i64) -> Result<Vec<QueuedItem>, StoreError>;
    /// Queued items of these imports.
    async fn queued_items_of(&self, import_ids: &[i64]) -> Result<Vec<QueuedItem>, StoreError>;
    /// Hand-offs recorded after `after_seq`: (seq, import).
    async fn handoffs(&self, after_seq: i64) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Forgets hand-offs up to `seq` once their items are pushed.
    async fn clear_handoffs(&self, up_to_seq: i64) -> Result<(), StoreError>;
    /// What workers need to know about these (import, anime) items, for those that exist.
    async fn triage(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError>;

    /// Counts one more request sent for each of these items (a job that keeps killing its
    /// worker is failed once the count passes a bound); `by` -1 takes one back, for a request
    /// that found AniList down and so proves nothing about the job.
    async fn count_fetches(&self, items: &[(i64, AnimeId)], by: i32) -> Result<(), StoreError>;

    /// One operation on the shared AniList budget, in one transaction.
    async fn budget(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError>;

    /// Records (or refreshes) this process's heartbeat row.
    async fn heartbeat(&self, process: &ProcessInfo) -> Result<(), StoreError>;
    /// Removes a process's row on a clean stop.
    async fn retire(&self, process_id: &str) -> Result<(), StoreError>;
    /// Processes whose heartbeat is younger than `fresh_since_ms`.
    async fn processes(&self, fresh_since_ms: i64) -> Result<Vec<ProcessInfo>, StoreError>;

    /// Background housekeeping (SQLite: a passive WAL checkpoint). Cheap, called often.
    async fn maintain(&self) -> Result<(), StoreError>;
    /// Closes the connections; SQLite folds its WAL into the database file.
    async fn close(&self);
    /// Whether `close` was called: nothing more will be read or written.
    fn is_closed(&self) -> bool;

    /// A feed of the anime every process's transactions rewrite, as they commit, for a read
    /// cache beside other writers (PostgreSQL: LISTEN/NOTIFY). `Ok(None)` where the backend
    /// has none: on SQLite only the queue's owner writes anime, and only it caches.
    async fn rewrite_feed(&self) -> Result<Option<Box<dyn RewriteFeed>>, StoreError>;
}

/// Anime ids rewritten by committed transactions (this process's too), in commit order.
#[async_trait]
pub(crate) trait RewriteFeed: Send {
    /// The ids of the next committed rewrite. `None` once the feed's connection is lost (or
    /// the store closed): rewrites since then may have been missed.
    async fn next(&mut self) -> Option<Vec<AnimeId>>;
}
