//! Read queries: one anime with its relations, a franchise by recursive walk over followed
//! relation types, and the progress of every import.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite};

use super::Store;
use super::error::StoreError;
use super::imports::{self, QueuedItem, to_id};
use super::records::{AnimeSummary, ImportProgress, ItemState, StoredAnime, StoredRelation};
use crate::anime::{AnimeId, RelationType, Title};

impl Store {
    /// One stored anime with its relations (observed and derived), or `None`.
    pub async fn anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, StoreError> {
        let row = sqlx::query(
            "SELECT id, id_mal, title_romaji, title_english, title_native, format, status, \
             episodes, season, season_year, fetched_at FROM anime WHERE id = $1",
        )
        .bind(i64::from(id))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredAnime {
            id,
            id_mal: row.try_get("id_mal")?,
            title: Title {
                romaji: row.try_get("title_romaji")?,
                english: row.try_get("title_english")?,
                native: row.try_get("title_native")?,
            },
            format: row.try_get("format")?,
            status: row.try_get("status")?,
            episodes: row.try_get("episodes")?,
            season: row.try_get("season")?,
            season_year: row.try_get("season_year")?,
            fetched_at_ms: row.try_get("fetched_at")?,
            relations: self.relations_from(&[id]).await?,
        }))
    }

    /// Every stored relation whose `from` is one of `ids`, ordered by (from, to).
    pub async fn relations_from(&self, ids: &[AnimeId]) -> Result<Vec<StoredRelation>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(5_000) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT anime_id, related_id, relation_type, derived, related_kind, \
                 related_format, related_title FROM anime_relation WHERE anime_id IN (",
            );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(i64::from(*id));
            }
            q.push(") ORDER BY anime_id, related_id");
            for row in q.build().persistent(false).fetch_all(self.pool()).await? {
                out.push(StoredRelation {
                    from: to_id(row.try_get(0)?)?,
                    to: to_id(row.try_get(1)?)?,
                    relation_type: row.try_get(2)?,
                    derived: row.try_get::<i64, _>(3)? != 0,
                    to_kind: row.try_get(4)?,
                    to_format: row.try_get(5)?,
                    to_title: row.try_get(6)?,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// The stored franchise of `root`: every stored anime reachable from it over `followed`
    /// relation types, root included, ordered by id. One recursive query; UNION (not UNION
    /// ALL) drops revisits, so cycles and self-relations end the walk instead of looping.
    pub async fn franchise(
        &self,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Result<Vec<AnimeSummary>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("WITH RECURSIVE walk(id) AS (SELECT ");
        q.push_bind(i64::from(root));
        q.push(
            " UNION SELECT r.related_id FROM anime_relation r JOIN walk w ON r.anime_id = w.id \
             WHERE r.related_kind = 'ANIME' AND r.relation_type IN (",
        );
        let mut list = q.separated(", ");
        for t in followed {
            list.push_bind(t.as_str());
        }
        if followed.is_empty() {
            list.push("''");
        }
        q.push(
            ")) SELECT a.id, COALESCE(a.title_english, a.title_romaji, a.title_native), \
             a.format, a.status FROM walk JOIN anime a ON a.id = walk.id ORDER BY a.id",
        );
        let rows = q.build().persistent(false).fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|row| {
                Ok(AnimeSummary {
                    id: to_id(row.try_get(0)?)?,
                    title: row.try_get(1)?,
                    format: row.try_get(2)?,
                    status: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Progress of every import, newest first, or of one.
    pub async fn import_progress(
        &self,
        only: Option<i64>,
    ) -> Result<Vec<ImportProgress>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, i.root_id, i.created_at, i.finished_at, \
             COUNT(it.anime_id), \
             COALESCE(SUM(it.state = 'done'), 0), \
             COALESCE(SUM(it.state = 'failed'), 0), \
             COALESCE(SUM(it.state = 'queued'), 0) \
             FROM import i LEFT JOIN import_item it ON it.import_id = i.id \
             WHERE ($1 IS NULL OR i.id = $1) GROUP BY i.id ORDER BY i.id DESC",
        )
        .bind(only)
        .fetch_all(self.pool())
        .await?;
        let mut failures: HashMap<i64, Vec<(String, u64)>> = HashMap::new();
        let reasons = sqlx::query(
            "SELECT import_id, COALESCE(reason, 'unknown'), COUNT(*) FROM import_item \
             WHERE state = 'failed' AND ($1 IS NULL OR import_id = $1) \
             GROUP BY import_id, reason ORDER BY COUNT(*) DESC, reason",
        )
        .bind(only)
        .fetch_all(self.pool())
        .await?;
        for row in reasons {
            failures
                .entry(row.try_get(0)?)
                .or_default()
                .push((row.try_get(1)?, row.try_get::<i64, _>(2)?.max(0) as u64));
        }
        let count = |row: &sqlx::sqlite::SqliteRow, i: usize| -> Result<u64, StoreError> {
            Ok(row.try_get::<i64, _>(i)?.max(0) as u64)
        };
        rows.iter()
            .map(|row| {
                let import_id: i64 = row.try_get(0)?;
                Ok(ImportProgress {
                    import_id,
                    root: to_id(row.try_get(1)?)?,
                    created_at_ms: row.try_get(2)?,
                    finished_at_ms: row.try_get(3)?,
                    discovered: count(row, 4)?,
                    done: count(row, 5)?,
                    failed: count(row, 6)?,
                    queued: count(row, 7)?,
                    failures: failures.remove(&import_id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Every item still waiting for a fetch (start-up reconciliation).
    pub async fn queued_items(&self) -> Result<Vec<QueuedItem>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(imports::queued_items(&mut conn).await?)
    }

    /// The states of these (import, anime) items, for those the imports have.
    pub async fn item_states(
        &self,
        items: &[(i64, AnimeId)],
    ) -> Result<HashMap<(i64, AnimeId), ItemState>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(imports::item_states(&mut conn, items).await?)
    }

    /// When this anime was last fetched, if it is stored.
    pub async fn fetched_at(&self, id: AnimeId) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT fetched_at FROM anime WHERE id = $1")
                .bind(i64::from(id))
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
