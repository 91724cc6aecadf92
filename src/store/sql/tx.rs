//! The write transaction, for either backend: imports and their items (with the counters
//! progress reads), the look-ups the walk needs, cancel, retry and re-queue.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Transaction};

use super::{
    Column, Dialect, followed_list, parse_followed, raw_ids, shared, to_id, to_u32, type_names,
};
use crate::anime::{Anime, AnimeId, RelationType};
use crate::queue::FetchJob;
use crate::store::StoreError;
use crate::store::driver::{ImportRules, ItemOutcome, ItemResult, NewItem, QueuedItem, StoreTx};
use crate::store::records::ItemState;

pub(crate) struct SqlTx<DB: Dialect> {
    pub(super) tx: Transaction<'static, DB>,
    pub(super) push: DB::Push,
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

shared! {
impl<DB> SqlTx<DB> {
    /// Adds to an import's counters (negative to take away).
    async fn bump_counts(&mut self, import_id: i64, c: &StateCounts) -> Result<(), sqlx::Error> {
        if c.all == 0 && c.done == 0 && c.failed == 0 && c.cancelled == 0 {
            return Ok(());
        }
        sqlx::query::<DB>(
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

    /// Those of `ids` that `select` (ending in "column >= ") finds at or after `since_ms`.
    async fn ids_since(
        &mut self,
        select: &'static str,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, sqlx::Error> {
        let mut found = HashSet::new();
        for chunk in raw_ids(ids).chunks(DB::rows_per_statement(1)) {
            let mut q = QueryBuilder::<DB>::new(select);
            q.push_bind(since_ms).push(" AND id");
            DB::push_in_ints(&mut q, chunk);
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
                found.insert(to_id(row.try_get(0)?)?);
            }
        }
        Ok(found)
    }

    async fn import_exists(&mut self, import_id: i64) -> Result<bool, sqlx::Error> {
        let found = sqlx::query::<DB>("SELECT id FROM import WHERE id = $1")
            .bind(import_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(found.is_some())
    }
}
}

shared! {
#[async_trait]
impl<DB> StoreTx for SqlTx<DB> {
    async fn upsert_anime(&mut self, anime: &[Anime], now_ms: i64) -> Result<(), StoreError> {
        DB::upsert_anime(&mut self.tx, anime, now_ms).await?;
        DB::announce_rewrites(&mut self.tx, anime).await
    }

    async fn record_missing(
        &mut self,
        missing: &[AnimeId],
        found: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        DB::record_missing(&mut self.tx, missing, found, now_ms).await
    }

    async fn insert_import(
        &mut self,
        root: AnimeId,
        rules: &ImportRules,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO import (root_id, max_depth, max_items, followed, force_refresh, \
             created_at) VALUES (",
        );
        q.push_bind(i64::from(root))
            .push(", ")
            .push_bind(i64::from(rules.max_depth))
            .push(", ")
            .push_bind(i64::from(rules.max_items))
            .push(", ")
            .push_bind(followed_list(&rules.followed))
            .push(", ");
        DB::push_flag(&mut q, rules.force_refresh);
        q.push(", ").push_bind(now_ms).push(") RETURNING id");
        let row = q.build().fetch_one(&mut *self.tx).await?;
        Ok(row.try_get(0)?)
    }

    async fn import_rules(&mut self, import_id: i64) -> Result<Option<ImportRules>, StoreError> {
        let row = sqlx::query::<DB>(
            "SELECT max_depth, max_items, followed, force_refresh FROM import WHERE id = $1",
        )
        .bind(import_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let followed: String = row.try_get(2)?;
        Ok(Some(ImportRules {
            max_depth: to_u32(row.try_get(0)?),
            max_items: to_u32(row.try_get(1)?),
            followed: parse_followed(&followed),
            force_refresh: DB::flag(&row, 3)?,
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
        // database thread, and a flush settles hundreds of items.
        for chunk in results.chunks(DB::rows_per_statement(4)) {
            let mut states = Vec::with_capacity(chunk.len());
            let mut reasons = Vec::with_capacity(chunk.len());
            for r in chunk {
                let (state, reason) = match &r.outcome {
                    ItemOutcome::Done => (ItemState::Done, None),
                    ItemOutcome::Failed(reason) => (ItemState::Failed, Some(reason.as_str())),
                };
                states.push(state.as_str());
                reasons.push(reason);
            }
            let mut q = QueryBuilder::<DB>::new(
                "UPDATE import_item SET state = v.column3, reason = v.column4, updated_at = ",
            );
            q.push_bind(now_ms).push(" FROM ");
            DB::push_rows(
                &mut q,
                &[
                    Column::Ints(chunk.iter().map(|r| r.import_id).collect()),
                    Column::Ints(chunk.iter().map(|r| i64::from(r.anime_id)).collect()),
                    Column::Texts(states),
                    Column::OptTexts(reasons),
                ],
            );
            q.push(
                " WHERE import_item.import_id = v.column1 AND import_item.anime_id = v.column2 \
                 AND import_item.state = 'queued' \
                 RETURNING import_item.import_id, import_item.anime_id, import_item.depth, \
                 import_item.state, import_item.round",
            );
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
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
        for chunk in raw_ids(parents).chunks(DB::rows_per_statement(1)) {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT anime_id, related_id FROM anime_relation WHERE related_kind = 'ANIME' \
                 AND anime_id",
            );
            DB::push_in_ints(&mut q, chunk);
            q.push(" AND relation_type");
            DB::push_in_texts(&mut q, &type_names(followed));
            q.push(" ORDER BY anime_id, related_id");
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
                edges.push((to_id(row.try_get(0)?)?, to_id(row.try_get(1)?)?));
            }
        }
        Ok(edges)
    }

    async fn existing_items(
        &mut self,
        import_id: i64,
        ids: &[AnimeId],
    ) -> Result<HashMap<AnimeId, (u32, ItemState)>, StoreError> {
        let mut found = HashMap::new();
        for chunk in raw_ids(ids).chunks(DB::rows_per_statement(1)) {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT anime_id, depth, state FROM import_item WHERE import_id = ",
            );
            q.push_bind(import_id).push(" AND anime_id");
            DB::push_in_ints(&mut q, chunk);
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
                let state: String = row.try_get(2)?;
                let state = ItemState::parse(&state).unwrap_or(ItemState::Failed);
                let depth = to_u32(row.try_get(1)?);
                found.insert(to_id(row.try_get(0)?)?, (depth, state));
            }
        }
        Ok(found)
    }

    async fn item_count(&mut self, import_id: i64) -> Result<u64, StoreError> {
        let row = sqlx::query::<DB>("SELECT item_count FROM import WHERE id = $1")
            .bind(import_id)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    async fn fresh_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        let select = "SELECT id FROM anime WHERE kind = 'ANIME' AND fetched_at >= ";
        Ok(self.ids_since(select, ids, since_ms).await?)
    }

    async fn missing_among(
        &mut self,
        ids: &[AnimeId],
        since_ms: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        let select = "SELECT id FROM anime_missing WHERE checked_at >= ";
        Ok(self.ids_since(select, ids, since_ms).await?)
    }

    async fn insert_items(
        &mut self,
        import_id: i64,
        items: &[NewItem<'_>],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut counts = StateCounts::default();
        for chunk in items.chunks(DB::rows_per_statement(4)) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO import_item (import_id, anime_id, depth, state, reason, updated_at) \
                 SELECT ",
            );
            q.push_bind(import_id)
                .push(", v.column1, v.column2, v.column3, v.column4, ")
                .push_bind(now_ms)
                .push(" FROM ");
            DB::push_rows(
                &mut q,
                &[
                    Column::Ints(chunk.iter().map(|(id, ..)| i64::from(*id)).collect()),
                    Column::Ints(chunk.iter().map(|(_, d, ..)| i64::from(*d)).collect()),
                    Column::Texts(chunk.iter().map(|(_, _, st, _)| st.as_str()).collect()),
                    Column::OptTexts(chunk.iter().map(|(.., r)| *r).collect()),
                ],
            );
            // `WHERE true`: SQLite reads an ON after a SELECT's FROM as a join's otherwise.
            q.push(
                " WHERE true ON CONFLICT (import_id, anime_id) DO NOTHING RETURNING state",
            );
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
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
        sqlx::query::<DB>(
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
        let done = sqlx::query::<DB>(
            "UPDATE import SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL \
             AND item_count <= done_count + failed_count + cancelled_count",
        )
        .bind(now_ms)
        .bind(import_id)
        .execute(&mut *self.tx)
        .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        // Done items' followed edges to anime the import does not have: only a cap leaves
        // those (the walk takes every other one). Counted once, when the import finishes.
        let Some(rules) = self.import_rules(import_id).await? else {
            return Ok(true);
        };
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE import SET unwalked = (SELECT COUNT(*) FROM import_item it \
             JOIN anime_relation r ON r.anime_id = it.anime_id \
             WHERE it.import_id = ",
        );
        q.push_bind(import_id)
            .push(" AND it.state = 'done' AND r.related_kind = 'ANIME' AND r.relation_type");
        DB::push_in_texts(&mut q, &type_names(&rules.followed));
        q.push(
            " AND NOT EXISTS (SELECT 1 FROM import_item it2 WHERE it2.import_id = it.import_id \
             AND it2.anime_id = r.related_id)) WHERE id = ",
        )
        .push_bind(import_id);
        q.build()
            .persistent(DB::PREPARE_LISTS)
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
        for chunk in items.chunks(DB::rows_per_statement(3)) {
            let mut q =
                QueryBuilder::<DB>::new("UPDATE import_item SET round = import_item.round + 1 FROM ");
            DB::push_rows(
                &mut q,
                &[
                    Column::Ints(chunk.iter().map(|i| i.import_id).collect()),
                    Column::Ints(chunk.iter().map(|i| i64::from(i.anime_id)).collect()),
                    Column::Ints(chunk.iter().map(|i| i64::from(i.round)).collect()),
                ],
            );
            q.push(
                " WHERE import_item.import_id = v.column1 AND import_item.anime_id = \
                 v.column2 AND import_item.round = v.column3 AND import_item.state = 'queued' \
                 RETURNING import_item.import_id, import_item.anime_id, import_item.depth, \
                 import_item.round",
            );
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(&mut *self.tx)
                .await?
            {
                moved.push(QueuedItem {
                    import_id: row.try_get(0)?,
                    anime_id: to_id(row.try_get(1)?)?,
                    depth: to_u32(row.try_get(2)?),
                    round: to_u32(row.try_get(3)?),
                });
            }
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
        let cancelled = sqlx::query::<DB>(
            "UPDATE import_item SET state = 'cancelled', reason = 'cancelled', updated_at = $1 \
             WHERE import_id = $2 AND state = 'queued'",
        )
        .bind(now_ms)
        .bind(import_id)
        .execute(&mut *self.tx)
        .await?;
        let cancelled = DB::rows_affected(&cancelled);
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
        sqlx::query::<DB>(
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
            let rows = sqlx::query::<DB>(
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
            sqlx::query::<DB>(
                "UPDATE import SET cancelled_at = NULL, finished_at = NULL WHERE id = $1",
            )
            .bind(import_id)
            .execute(&mut *self.tx)
            .await?;
        }
        items.sort();
        Ok(Some(items))
    }

    async fn hand_off(&mut self, import_id: i64) -> Result<(), StoreError> {
        sqlx::query::<DB>("INSERT INTO handoff (import_id) VALUES ($1)")
            .bind(import_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn enqueue(&mut self, jobs: &[FetchJob]) -> Result<bool, StoreError> {
        DB::enqueue(&mut self.tx, &self.push, jobs).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}
}
