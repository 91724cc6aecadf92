//! PostgreSQL's reads about imports: progress from the per-import counters, failure reasons,
//! queued items for reconciliation, and the per-batch triage the workers do.

use std::collections::HashMap;

use sqlx::Row;

use super::PgStore;
use super::tx::{to_id, to_u32};
use crate::anime::AnimeId;
use crate::store::StoreError;
use crate::store::driver::{ItemTriage, QueuedItem};
use crate::store::records::{ImportFilter, ImportProgress, ImportState, ItemState};

fn count(raw: i64) -> u64 {
    raw.max(0) as u64
}

impl PgStore {
    pub(super) async fn read_imports(
        &self,
        filter: &ImportFilter,
    ) -> Result<Vec<ImportProgress>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, root_id, created_at, finished_at, item_count, done_count, failed_count, \
             cancelled_count, unwalked, cancelled_at FROM import \
             WHERE ($1::BIGINT IS NULL OR id = $1) ORDER BY id DESC",
        )
        .bind(filter.import_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let discovered = count(row.try_get(4)?);
            let done = count(row.try_get(5)?);
            let failed = count(row.try_get(6)?);
            let cancelled = count(row.try_get(7)?);
            let unwalked = count(row.try_get(8)?);
            let cancelled_at: Option<i64> = row.try_get(9)?;
            let queued = discovered.saturating_sub(done + failed + cancelled);
            let state =
                ImportProgress::derive_state(queued, failed, unwalked, cancelled_at.is_some());
            if filter.state.is_some_and(|wanted| wanted != state) {
                continue;
            }
            out.push(ImportProgress {
                import_id: row.try_get(0)?,
                root: to_id(row.try_get(1)?)?,
                state,
                discovered,
                done,
                failed,
                cancelled,
                queued,
                unwalked_edges: unwalked,
                queued_levels: 0,
                created_at_ms: row.try_get(2)?,
                finished_at_ms: row.try_get(3)?,
                failures: Vec::new(),
            });
            if filter
                .limit
                .is_some_and(|limit| out.len() >= limit as usize)
            {
                break;
            }
        }
        for progress in &mut out {
            if progress.failed > 0 {
                progress.failures = self.failure_reasons(progress.import_id).await?;
            }
            if progress.state == ImportState::Running {
                let levels: i64 = sqlx::query_scalar(
                    "SELECT COUNT(DISTINCT depth) FROM import_item \
                     WHERE state = 'queued' AND import_id = $1",
                )
                .bind(progress.import_id)
                .fetch_one(self.pool())
                .await?;
                progress.queued_levels = to_u32(levels);
            }
        }
        Ok(out)
    }

    async fn failure_reasons(&self, import_id: i64) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM import_item \
             WHERE state = 'failed' AND import_id = $1 \
             GROUP BY reason ORDER BY COUNT(*) DESC, reason",
        )
        .bind(import_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, count(row.try_get(1)?))))
            .collect()
    }

    pub(super) async fn read_failed_items(
        &self,
        import_id: i64,
        limit: u32,
    ) -> Result<Vec<(AnimeId, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT anime_id, COALESCE(reason, 'unknown') FROM import_item \
             WHERE import_id = $1 AND state = 'failed' ORDER BY anime_id LIMIT $2",
        )
        .bind(import_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((to_id(row.try_get(0)?)?, row.try_get(1)?)))
            .collect()
    }

    pub(super) async fn read_queued_items(
        &self,
        after_import: i64,
    ) -> Result<Vec<QueuedItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT import_id, anime_id, depth, round FROM import_item WHERE state = 'queued' \
             AND import_id > $1 ORDER BY import_id, depth, anime_id",
        )
        .bind(after_import)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(QueuedItem {
                    import_id: row.try_get(0)?,
                    anime_id: to_id(row.try_get(1)?)?,
                    depth: to_u32(row.try_get(2)?),
                    round: to_u32(row.try_get(3)?),
                })
            })
            .collect()
    }

    pub(super) async fn read_queued_items_of(
        &self,
        import_ids: &[i64],
    ) -> Result<Vec<QueuedItem>, StoreError> {
        let mut out = Vec::new();
        let rows = sqlx::query(
            "SELECT import_id, anime_id, depth, round FROM import_item \
             WHERE state = 'queued' AND import_id = ANY($1) ORDER BY import_id, depth, anime_id",
        )
        .bind(import_ids)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            out.push(QueuedItem {
                import_id: row.try_get(0)?,
                anime_id: to_id(row.try_get(1)?)?,
                depth: to_u32(row.try_get(2)?),
                round: to_u32(row.try_get(3)?),
            });
        }
        Ok(out)
    }

    pub(super) async fn read_handoffs(
        &self,
        after_seq: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT seq, import_id FROM handoff WHERE seq > $1 ORDER BY seq")
            .bind(after_seq)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    pub(super) async fn delete_handoffs(&self, up_to_seq: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM handoff WHERE seq <= $1")
            .bind(up_to_seq)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn add_fetches(
        &self,
        items: &[(i64, AnimeId)],
        by: i32,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let (imports, anime) = split_pairs(items);
        sqlx::query(
            "UPDATE import_item SET fetches = GREATEST(fetches + $3, 0) \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS v (import_id, anime_id) \
             WHERE import_item.import_id = v.import_id AND import_item.anime_id = v.anime_id \
             AND import_item.state = 'queued'",
        )
        .bind(imports)
        .bind(anime)
        .bind(by)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn read_triage(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError> {
        let mut out = HashMap::with_capacity(items.len());
        if items.is_empty() {
            return Ok(out);
        }
        let (imports, anime) = split_pairs(items);
        let rows = sqlx::query(
            "SELECT it.import_id, it.anime_id, it.state, it.round, \
             COALESCE(a.fetched_at >= it.updated_at, FALSE), \
             COALESCE(m.checked_at >= it.updated_at, FALSE), it.fetches \
             FROM import_item it \
             JOIN UNNEST($1::BIGINT[], $2::BIGINT[]) AS v (import_id, anime_id) \
             ON it.import_id = v.import_id AND it.anime_id = v.anime_id \
             LEFT JOIN anime a ON a.id = it.anime_id AND a.kind = 'ANIME' \
             LEFT JOIN anime_missing m ON m.id = it.anime_id",
        )
        .bind(imports)
        .bind(anime)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let state: String = row.try_get(2)?;
            out.insert(
                (row.try_get(0)?, to_id(row.try_get(1)?)?),
                ItemTriage {
                    state: ItemState::parse(&state).unwrap_or(ItemState::Failed),
                    round: to_u32(row.try_get(3)?),
                    stored_since_queued: row.try_get(4)?,
                    missing_since_queued: row.try_get(5)?,
                    fetches: to_u32(row.try_get(6)?),
                },
            );
        }
        Ok(out)
    }
}

/// (import, anime) pairs as two array parameters.
fn split_pairs(items: &[(i64, AnimeId)]) -> (Vec<i64>, Vec<i64>) {
    items.iter().map(|(i, a)| (*i, i64::from(*a))).unzip()
}
