//! Reads about imports: progress from the per-import counters, failure reasons, queued items
//! for reconciliation, and the per-batch triage (and fetch counts) the workers need.

use std::collections::HashMap;

use sqlx::{Pool, QueryBuilder, Row};

use super::{Column, Sql, count, shared, to_id, to_u32};
use crate::anime::AnimeId;
use crate::store::StoreError;
use crate::store::driver::{ItemTriage, QueuedItem};
use crate::store::records::{ImportFilter, ImportProgress, ImportState, ItemState};

/// (import, anime) pairs as two columns.
fn pair_columns(items: &[(i64, AnimeId)]) -> [Column<'static>; 2] {
    let (imports, anime): (Vec<i64>, Vec<i64>) =
        items.iter().map(|(i, a)| (*i, i64::from(*a))).unzip();
    [Column::Ints(imports), Column::Ints(anime)]
}

shared! {
impl<DB> Sql<DB> {
    pub(super) async fn imports(
        pool: &Pool<DB>,
        filter: &ImportFilter,
    ) -> Result<Vec<ImportProgress>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT id, root_id, created_at, finished_at, item_count, done_count, failed_count, \
             cancelled_count, unwalked, cancelled_at FROM import \
             WHERE (CAST($1 AS BIGINT) IS NULL OR id = $1) ORDER BY id DESC",
        )
        .bind(filter.import_id)
        .fetch_all(pool)
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
                frontier_depth: 0,
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
                progress.failures = Self::failure_reasons(pool, progress.import_id).await?;
            }
            if progress.state == ImportState::Running {
                let row = sqlx::query::<DB>(DB::QUEUED_LEVELS)
                .bind(progress.import_id)
                .fetch_one(pool)
                .await?;
                progress.queued_levels = to_u32(row.try_get(0)?);
                progress.frontier_depth = to_u32(row.try_get(1)?);
            }
        }
        Ok(out)
    }

    async fn failure_reasons(
        pool: &Pool<DB>,
        import_id: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM import_item \
             WHERE state = 'failed' AND import_id = $1 \
             GROUP BY reason ORDER BY COUNT(*) DESC, reason",
        )
        .bind(import_id)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, count(row.try_get(1)?))))
            .collect()
    }

    /// A row of (import_id, anime_id, depth, round).
    pub(super) fn queued_item(row: &DB::Row) -> Result<QueuedItem, StoreError> {
        Ok(QueuedItem {
            import_id: row.try_get(0)?,
            anime_id: to_id(row.try_get(1)?)?,
            depth: to_u32(row.try_get(2)?),
            round: to_u32(row.try_get(3)?),
        })
    }

    pub(super) async fn count_fetches(
        pool: &Pool<DB>,
        items: &[(i64, AnimeId)],
        by: i32,
    ) -> Result<(), StoreError> {
        for chunk in items.chunks(DB::rows_per_statement(2)) {
            let mut q = QueryBuilder::<DB>::new("UPDATE import_item SET fetches = ");
            q.push(DB::GREATEST)
                .push("(fetches + ")
                .push_bind(i64::from(by))
                .push(", 0) FROM ");
            DB::push_rows(&mut q, &pair_columns(chunk));
            q.push(
                " WHERE import_item.import_id = v.column1 \
                 AND import_item.anime_id = v.column2 AND import_item.state = 'queued'",
            );
            q.build()
                .persistent(DB::PREPARE_LISTS)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn triage(
        pool: &Pool<DB>,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemTriage>, StoreError> {
        let mut out = HashMap::with_capacity(items.len());
        for chunk in items.chunks(DB::rows_per_statement(2)) {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT it.import_id, it.anime_id, it.state, it.round, \
                 COALESCE(a.fetched_at >= it.updated_at, FALSE), \
                 COALESCE(m.checked_at >= it.updated_at, FALSE), it.fetches \
                 FROM import_item it JOIN ",
            );
            DB::push_rows(&mut q, &pair_columns(chunk));
            q.push(
                " ON it.import_id = v.column1 AND it.anime_id = v.column2 \
                 LEFT JOIN anime a ON a.id = it.anime_id AND a.kind = 'ANIME' \
                 LEFT JOIN anime_missing m ON m.id = it.anime_id",
            );
            for row in q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch_all(pool)
                .await?
            {
                let state: String = row.try_get(2)?;
                out.insert(
                    (row.try_get(0)?, to_id(row.try_get(1)?)?),
                    ItemTriage {
                        state: ItemState::parse(&state).unwrap_or(ItemState::Failed),
                        round: to_u32(row.try_get(3)?),
                        stored_since_queued: DB::flag(&row, 4)?,
                        missing_since_queued: DB::flag(&row, 5)?,
                        fetches: to_u32(row.try_get(6)?),
                    },
                );
            }
        }
        Ok(out)
    }
}
}
