//! PostgreSQL's write transaction: imports and their items (with the counters progress reads),
//! the look-ups the walk needs, cancel, retry and re-queue, all inside one transaction.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};

use super::write::{raw_ids, record_missing, upsert_anime};
use crate::anime::{Anime, AnimeId, RelationType};
use crate::failpoint::{FailAction, FailPoints};
use crate::queue::{FetchJob, Lane, QueueError};
use crate::store::StoreError;
use crate::store::driver::{ImportRules, ItemOutcome, ItemResult, NewItem, QueuedItem, StoreTx};
use crate::store::records::ItemState;

/// Bound values per statement stay far below PostgreSQL's 65,535.
/// Relation type names, for an array parameter (`relation_type = ANY($n)`).
pub(super) fn type_names(types: &[RelationType]) -> Vec<&str> {
    types.iter().map(|t| t.as_str()).collect()
}

pub(crate) fn to_id(raw: i64) -> Result<AnimeId, sqlx::Error> {
    AnimeId::new(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A stored depth, cap or round (never negative, and small) as a `u32`.
pub(crate) fn to_u32(raw: i64) -> u32 {
    raw.clamp(0, i64::from(u32::MAX)) as u32
}

pub(crate) fn followed_list(followed: &[RelationType]) -> String {
    followed
        .iter()
        .map(RelationType::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_followed(raw: &str) -> Vec<RelationType> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(RelationType::parse)
        .collect()
}

pub(crate) struct PgTx {
    pub(super) tx: Transaction<'static, Postgres>,
    /// Attempts each job pushed from this transaction may run.
    pub(super) max_attempts: usize,
    pub(super) failpoints: FailPoints,
}

/// How many items of each state a statement added or moved.
#[derive(Default)]
struct StateCounts {
    all: i64,
    done: i64,
    failed: i64,
    cancelled: i64,
}

impl StateCounts {
    fn add(&mut self, state: ItemState) {
        self.all += 1;
        match state {
            ItemState::Done => self.done += 1,
            ItemState::Failed => self.failed += 1,
            ItemState::Cancelled => self.cancelled += 1,
            ItemState::Queued => {}
        }
    }
}

impl PgTx {
    /// Adds to an import's counters (negative to take away).
    async fn bump_counts(&mut self, import_id: i64, c: &StateCounts) -> Result<(), sqlx::Error> {
        if c.all == 0 && c.done == 0 && c.failed == 0 && c.cancelled == 0 {
            return Ok(());
        }
        sqlx::query(
            "UPDATE import SET item_count = item_count + $1, done_count = done_count + $2, \
             failed_count = failed_count + $3, cancelled_count = cancelled_count + $4 \
             WHERE id = $5",
        )
        .bind(c.all)
        .bind(c.done)
        .bind(c.failed)
        .bind(c.cancelled)
        .bind(import_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Those of `ids` (`$2`) that `select` finds at or after `since_ms` (`$1`).
    async fn ids_since(
        &mut self,
        select: &'static str,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, sqlx::Error> {
        let mut found = HashSet::new();
        if ids.is_empty() {
            return Ok(found);
        }
        for row in sqlx::query(select)
            .bind(since_ms)
            .bind(raw_ids(ids))
            .fetch_all(&mut *self.tx)
            .await?
        {
            found.insert(to_id(row.try_get(0)?)?);
        }
        Ok(found)
    }

    async fn import_exists(&mut self, import_id: i64) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM import WHERE id = $1")
            .bind(import_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl StoreTx for PgTx {
    async fn upsert_anime(&mut self, anime: &[Anime], now_ms: i64) -> Result<(), StoreError> {
        Ok(upsert_anime(&mut self.tx, anime, now_ms).await?)
    }

    async fn record_missing(
        &mut self,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(record_missing(&mut self.tx, missing, found, now_ms).await?)
    }

    async fn insert_import(
        &mut self,
        root: AnimeId,
        rules: &ImportRules,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO import (root_id, max_depth, max_items, followed, force_refresh, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(i64::from(root))
        .bind(i64::from(rules.max_depth))
        .bind(i64::from(rules.max_items))
        .bind(followed_list(&rules.followed))
        .bind(rules.force_refresh)
        .bind(now_ms)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn import_rules(&mut self, import_id: i64) -> Result<Option<ImportRules>, StoreError> {
        let row = sqlx::query(
            "SELECT max_depth, max_items, followed, force_refresh FROM import WHERE id = $1",
        )
        .bind(import_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let followed: String = row.try_get("followed")?;
        Ok(Some(ImportRules {
            max_depth: to_u32(row.try_get("max_depth")?),
            max_items: to_u32(row.try_get("max_items")?),
            followed: parse_followed(&followed),
            force_refresh: row.try_get("force_refresh")?,
        }))
    }

    async fn record_outcomes(
        &mut self,
        results: &[ItemResult],
        now_ms: i64,
    ) -> Result<Vec<QueuedItem>, StoreError> {
        let mut completed = Vec::new();
        let mut counts: HashMap<i64, StateCounts> = HashMap::new();
        // One statement per chunk, not one per item: each statement is a hand-off to sqlx's
        // PostgreSQL thread, and a flush settles hundreds of items.
        let mut states = Vec::with_capacity(results.len());
        let mut reasons = Vec::with_capacity(results.len());
        for r in results {
            let (state, reason) = match &r.outcome {
                ItemOutcome::Done => (ItemState::Done, None),
                ItemOutcome::Failed(reason) => (ItemState::Failed, Some(reason.as_str())),
            };
            states.push(state.as_str());
            reasons.push(reason);
        }
        let rows = sqlx::query(
            "UPDATE import_item SET state = v.state, reason = v.reason, updated_at = $5 \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[]) \
             AS v (import_id, anime_id, state, reason) \
             WHERE import_item.import_id = v.import_id AND import_item.anime_id = v.anime_id \
             AND import_item.state = 'queued' \
             RETURNING import_item.import_id, import_item.anime_id, import_item.depth, \
             import_item.state, import_item.round",
        )
        .bind(results.iter().map(|r| r.import_id).collect::<Vec<_>>())
        .bind(
            results
                .iter()
                .map(|r| i64::from(r.anime_id))
                .collect::<Vec<_>>(),
        )
        .bind(states)
        .bind(reasons)
        .bind(now_ms)
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            let import_id: i64 = row.try_get(0)?;
            let state: String = row.try_get(3)?;
            let state = ItemState::parse(&state).unwrap_or(ItemState::Failed);
            let c = counts.entry(import_id).or_default();
            match state {
                ItemState::Done => c.done += 1,
                ItemState::Failed => c.failed += 1,
                _ => {}
            }
            if state == ItemState::Done {
                completed.push(QueuedItem {
                    import_id,
                    anime_id: to_id(row.try_get(1)?)?,
                    depth: to_u32(row.try_get(2)?),
                    round: to_u32(row.try_get(4)?),
                });
            }
        }
        // In id order: two flushes that touch the same imports lock their rows in one order.
        let mut counts: Vec<(i64, StateCounts)> = counts.into_iter().collect();
        counts.sort_by_key(|(import_id, _)| *import_id);
        for (import_id, c) in counts {
            self.bump_counts(import_id, &c).await?;
        }
        completed.sort();
        Ok(completed)
    }

    async fn followed_edges(
        &mut self,
        parents: &[AnimeId],
        followed: &[RelationType],
    ) -> Result<Vec<(AnimeId, AnimeId)>, StoreError> {
        let mut edges = Vec::new();
        if followed.is_empty() {
            return Ok(edges);
        }
        let rows = sqlx::query(
            "SELECT anime_id, related_id FROM anime_relation WHERE related_kind = 'ANIME' \
             AND anime_id = ANY($1) AND relation_type = ANY($2) ORDER BY anime_id, related_id",
        )
        .bind(raw_ids(parents))
        .bind(type_names(followed))
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            edges.push((to_id(row.try_get(0)?)?, to_id(row.try_get(1)?)?));
        }
        Ok(edges)
    }

    async fn existing_items(
        &mut self,
        import_id: i64,
        ids: &[AnimeId],
    ) -> Result<HashMap<AnimeId, (u32, ItemState)>, StoreError> {
        let mut found = HashMap::new();
        let rows = sqlx::query(
            "SELECT anime_id, depth, state FROM import_item \
             WHERE import_id = $1 AND anime_id = ANY($2)",
        )
        .bind(import_id)
        .bind(raw_ids(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            let state: String = row.try_get(2)?;
            let state = ItemState::parse(&state).unwrap_or(ItemState::Failed);
            let depth = to_u32(row.try_get(1)?);
            found.insert(to_id(row.try_get(0)?)?, (depth, state));
        }
        Ok(found)
    }

    async fn item_count(&mut self, import_id: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT item_count FROM import WHERE id = $1")
            .bind(import_id)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn fresh_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        let select =
            "SELECT id FROM anime WHERE kind = 'ANIME' AND fetched_at >= $1 AND id = ANY($2)";
        Ok(self.ids_since(select, ids, since_ms).await?)
    }

    async fn missing_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        let select = "SELECT id FROM anime_missing WHERE checked_at >= $1 AND id = ANY($2)";
        Ok(self.ids_since(select, ids, since_ms).await?)
    }

    async fn insert_items(
        &mut self,
        import_id: i64,
        items: &[NewItem<'_>],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut counts = StateCounts::default();
        if !items.is_empty() {
            let rows = sqlx::query(
                "INSERT INTO import_item (import_id, anime_id, depth, state, reason, updated_at) \
                 SELECT $1, t.anime_id, t.depth, t.state, t.reason, $6 \
                 FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[]) \
                 AS t (anime_id, depth, state, reason) \
                 ON CONFLICT (import_id, anime_id) DO NOTHING RETURNING state",
            )
            .bind(import_id)
            .bind(
                items
                    .iter()
                    .map(|(id, ..)| i64::from(*id))
                    .collect::<Vec<_>>(),
            )
            .bind(
                items
                    .iter()
                    .map(|(_, d, ..)| i64::from(*d))
                    .collect::<Vec<_>>(),
            )
            .bind(
                items
                    .iter()
                    .map(|(_, _, st, _)| st.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(items.iter().map(|(.., r)| *r).collect::<Vec<_>>())
            .bind(now_ms)
            .fetch_all(&mut *self.tx)
            .await?;
            for row in rows {
                let state: String = row.try_get(0)?;
                counts.add(ItemState::parse(&state).unwrap_or(ItemState::Failed));
            }
        }
        Ok(self.bump_counts(import_id, &counts).await?)
    }

    async fn lower_depth(
        &mut self,
        import_id: i64,
        anime_id: AnimeId,
        depth: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE import_item SET depth = $1 WHERE import_id = $2 AND anime_id = $3 \
             AND depth > $1",
        )
        .bind(i64::from(depth))
        .bind(import_id)
        .bind(i64::from(anime_id))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn finish_if_complete(
        &mut self,
        import_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE import SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL \
             AND item_count <= done_count + failed_count + cancelled_count",
        )
        .bind(now_ms)
        .bind(import_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // Done items' followed edges to anime the import does not have: only a cap leaves
        // those (the walk takes every other one). Counted once, when the import finishes.
        let Some(rules) = self.import_rules(import_id).await? else {
            return Ok(true);
        };
        sqlx::query(
            "UPDATE import SET unwalked = (SELECT COUNT(*) FROM import_item it \
             JOIN anime_relation r ON r.anime_id = it.anime_id \
             WHERE it.import_id = $1 AND it.state = 'done' AND r.related_kind = 'ANIME' \
             AND r.relation_type = ANY($2) \
             AND NOT EXISTS (SELECT 1 FROM import_item it2 WHERE it2.import_id = it.import_id \
             AND it2.anime_id = r.related_id)) WHERE id = $1",
        )
        .bind(import_id)
        .bind(type_names(&rules.followed))
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }

    async fn requeue(
        &mut self,
        items: &[QueuedItem],
        _now_ms: i64,
    ) -> Result<Vec<QueuedItem>, StoreError> {
        let mut moved = Vec::new();
        if items.is_empty() {
            return Ok(moved);
        }
        let rows = sqlx::query(
            "UPDATE import_item SET round = import_item.round + 1 \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS v (import_id, anime_id, round) \
             WHERE import_item.import_id = v.import_id AND import_item.anime_id = v.anime_id \
             AND import_item.round = v.round AND import_item.state = 'queued' \
             RETURNING import_item.import_id, import_item.anime_id, import_item.depth, \
             import_item.round",
        )
        .bind(items.iter().map(|i| i.import_id).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i64::from(i.anime_id)).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i64::from(i.round)).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            moved.push(QueuedItem {
                import_id: row.try_get(0)?,
                anime_id: to_id(row.try_get(1)?)?,
                depth: to_u32(row.try_get(2)?),
                round: to_u32(row.try_get(3)?),
            });
        }
        moved.sort();
        Ok(moved)
    }

    async fn cancel_import(
        &mut self,
        import_id: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        if !self.import_exists(import_id).await? {
            return Ok(None);
        }
        let cancelled = sqlx::query(
            "UPDATE import_item SET state = 'cancelled', reason = 'cancelled', updated_at = $1 \
             WHERE import_id = $2 AND state = 'queued'",
        )
        .bind(now_ms)
        .bind(import_id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        let n = i64::try_from(cancelled).unwrap_or(i64::MAX);
        self.bump_counts(
            import_id,
            &StateCounts {
                cancelled: n,
                ..StateCounts::default()
            },
        )
        .await?;
        // Cancelling a finished import changes nothing but is not an error.
        sqlx::query(
            "UPDATE import SET cancelled_at = $1, finished_at = COALESCE(finished_at, $1) \
             WHERE id = $2 AND (finished_at IS NULL OR $3 > 0)",
        )
        .bind(now_ms)
        .bind(import_id)
        .bind(n)
        .execute(&mut *self.tx)
        .await?;
        Ok(Some(cancelled))
    }

    async fn retry_import(
        &mut self,
        import_id: i64,
        now_ms: i64,
    ) -> Result<Option<Vec<QueuedItem>>, StoreError> {
        if !self.import_exists(import_id).await? {
            return Ok(None);
        }
        let mut items = Vec::new();
        let mut counts = StateCounts::default();
        for from in [ItemState::Failed, ItemState::Cancelled] {
            let rows = sqlx::query(
                "UPDATE import_item SET state = 'queued', reason = NULL, round = round + 1, \
                 updated_at = $1 WHERE import_id = $2 AND state = $3 \
                 RETURNING anime_id, depth, round",
            )
            .bind(now_ms)
            .bind(import_id)
            .bind(from.as_str())
            .fetch_all(&mut *self.tx)
            .await?;
            let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            match from {
                ItemState::Failed => counts.failed -= n,
                _ => counts.cancelled -= n,
            }
            for row in rows {
                items.push(QueuedItem {
                    import_id,
                    anime_id: to_id(row.try_get(0)?)?,
                    depth: to_u32(row.try_get(1)?),
                    round: to_u32(row.try_get(2)?),
                });
            }
        }
        self.bump_counts(import_id, &counts).await?;
        if !items.is_empty() {
            sqlx::query("UPDATE import SET cancelled_at = NULL, finished_at = NULL WHERE id = $1")
                .bind(import_id)
                .execute(&mut *self.tx)
                .await?;
        }
        items.sort();
        Ok(Some(items))
    }

    async fn hand_off(&mut self, import_id: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO handoff (import_id) VALUES ($1)")
            .bind(import_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn enqueue(&mut self, jobs: &[FetchJob]) -> Result<bool, StoreError> {
        if let Some(FailAction::Error) = self.failpoints.hit("store.enqueue") {
            return Err(StoreError::Queue(QueueError::Backend {
                location: "in PostgreSQL (schema apalis)".to_string(),
                operation: "pushing jobs",
                reason: "failure point store.enqueue fired".to_string(),
            }));
        }
        // The queue lives in this database: the jobs commit with the data, or not at all. A
        // failure stays the queue's error (a lost connection under it still reads as one).
        crate::queue::postgres::push_in(&mut self.tx, Lane::Background, jobs, self.max_attempts)
            .await?;
        Ok(true)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}
