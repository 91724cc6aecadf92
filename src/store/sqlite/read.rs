//! SQLite's read queries for anime: one anime with its relations, and a franchise by a
//! recursive walk over followed relation types.

use sqlx::{QueryBuilder, Row, Sqlite};

use super::SqliteStore;
use super::tx::to_id;
use crate::anime::{AnimeId, RelationType, Title};
use crate::store::StoreError;
use crate::store::records::{AnimeSummary, StoredAnime, StoredRelation};

impl SqliteStore {
    /// One stored anime with its relations (observed and derived), or `None`.
    pub(super) async fn read_anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, StoreError> {
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
            relations: self.read_relations_from(&[id]).await?,
            stale: None,
        }))
    }

    /// Every stored relation whose `from` is one of `ids`, ordered by (from, to).
    pub(super) async fn read_relations_from(
        &self,
        ids: &[AnimeId],
    ) -> Result<Vec<StoredRelation>, StoreError> {
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
    pub(super) async fn read_franchise(
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
}
