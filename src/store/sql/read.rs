//! Reads of anime: one anime with its relations, the relations out of a set of anime, and a
//! franchise by a recursive walk over followed relation types.

use futures::{StreamExt, TryStreamExt};
use sqlx::{Pool, QueryBuilder, Row};

use super::{Sql, raw_ids, shared, to_id, type_names};
use crate::anime::{AnimeId, FuzzyDate, RelationType, Title};
use crate::store::StoreError;
use crate::store::records::{AnimeSummary, FranchiseItem, StoredAnime, StoredRelation};

/// Member rows a streamed franchise read hands on at most at once.
pub(crate) const READ_BATCH: usize = 512;
/// Members whose relations one statement of a streamed franchise read reads.
pub(crate) const RELATIONS_PER_READ: usize = 1_000;

shared! {
impl<DB> Sql<DB> {
    /// One stored anime with its relations (observed and derived), or `None`.
    pub(super) async fn anime(
        pool: &Pool<DB>,
        id: AnimeId,
    ) -> Result<Option<StoredAnime>, StoreError> {
        let mut conn = pool.acquire().await?;
        let row = sqlx::query::<DB>(
            "SELECT id, id_mal, title_romaji, title_english, title_native, format, status, \
             episodes, season, season_year, fetched_at FROM anime WHERE id = $1",
        )
        .bind(i64::from(id))
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredAnime {
            id,
            id_mal: row.try_get(1)?,
            title: Title {
                romaji: row.try_get(2)?,
                english: row.try_get(3)?,
                native: row.try_get(4)?,
            },
            format: row.try_get(5)?,
            status: row.try_get(6)?,
            episodes: row.try_get(7)?,
            season: row.try_get(8)?,
            season_year: row.try_get(9)?,
            fetched_at_ms: row.try_get(10)?,
            relations: Self::relations_from(&mut conn, &[id]).await?,
            stale: None,
        }))
    }

    /// Every stored relation whose `from` is one of `ids`, ordered by (from, to).
    pub(super) async fn relations_from(
        conn: &mut DB::Connection,
        ids: &[AnimeId],
    ) -> Result<Vec<StoredRelation>, StoreError> {
        let mut out = Vec::new();
        for chunk in raw_ids(ids).chunks(DB::rows_per_statement(1)) {
            let mut q = Self::relations_query(chunk);
            // Row by row as they come: a franchise of 100k anime is never held twice.
            let mut rows = q.build().persistent(DB::PREPARE_LISTS).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                out.push(StoredRelation {
                    from: to_id(row.try_get(0)?)?,
                    to: to_id(row.try_get(1)?)?,
                    relation_type: row.try_get(2)?,
                    derived: DB::flag(&row, 3)?,
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
    pub(super) async fn franchise(
        pool: &Pool<DB>,
        root: AnimeId,
        followed: &[RelationType],
    ) -> Result<Vec<AnimeSummary>, StoreError> {
        let mut q = Self::franchise_query(root, followed);
        let mut rows = q.build().persistent(DB::PREPARE_LISTS).fetch(pool);
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            out.push(Self::summary(&row)?);
        }
        Ok(out)
    }

    /// [`Self::franchise`]'s members, then every relation that starts at one, sent into
    /// `out` in batches (the member rows read so far, up to [`READ_BATCH`]; the relations of
    /// [`RELATIONS_PER_READ`] members): one channel message per batch, not per row. Stops
    /// early, with `Ok`, when the receiver is gone.
    pub(super) async fn franchise_into(
        pool: &Pool<DB>,
        root: AnimeId,
        followed: &[RelationType],
        out: &tokio::sync::mpsc::Sender<Result<Vec<FranchiseItem>, StoreError>>,
    ) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        {
            let mut q = Self::franchise_query(root, followed);
            let mut rows = q
                .build()
                .persistent(DB::PREPARE_LISTS)
                .fetch(pool)
                .ready_chunks(READ_BATCH);
            while let Some(rows) = rows.next().await {
                let mut batch = Vec::with_capacity(rows.len());
                for row in rows {
                    let member = Self::summary(&row?)?;
                    ids.push(member.id);
                    batch.push(FranchiseItem::Member(member));
                }
                if out.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let mut conn = pool.acquire().await?;
        for chunk in ids.chunks(RELATIONS_PER_READ) {
            let relations = Self::relations_from(&mut conn, chunk).await?;
            let batch = relations.into_iter().map(FranchiseItem::Relation).collect();
            if out.send(Ok(batch)).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// The relations out of `ids`, ordered by (from, to); the ids bound in their order.
    pub(crate) fn relations_query(ids: &[i64]) -> QueryBuilder<DB> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT anime_id, related_id, relation_type, derived, related_kind, \
             related_format, related_title FROM anime_relation WHERE anime_id",
        );
        DB::push_in_ints(&mut q, ids);
        q.push(" ORDER BY anime_id, related_id");
        q
    }

    /// The franchise walk of [`Self::franchise`]; `root`, then the `followed` type names,
    /// bound in that order.
    pub(crate) fn franchise_query(root: AnimeId, followed: &[RelationType]) -> QueryBuilder<DB> {
        let mut q = QueryBuilder::<DB>::new("WITH RECURSIVE walk(id) AS (SELECT CAST(");
        q.push_bind(i64::from(root));
        q.push(
            " AS BIGINT) UNION SELECT r.related_id FROM anime_relation r \
             JOIN walk w ON r.anime_id = w.id \
             WHERE r.related_kind = 'ANIME' AND r.relation_type",
        );
        DB::push_in_texts(&mut q, &type_names(followed));
        q.push(
            ") SELECT a.id, COALESCE(a.title_english, a.title_romaji, a.title_native), \
             a.format, a.status, a.season, a.season_year, a.start_year, a.start_month, \
             a.start_day FROM walk JOIN anime a ON a.id = walk.id ORDER BY a.id",
        );
        q
    }

    fn summary(row: &DB::Row) -> Result<AnimeSummary, StoreError> {
        Ok(AnimeSummary {
            id: to_id(row.try_get(0)?)?,
            title: row.try_get(1)?,
            format: row.try_get(2)?,
            status: row.try_get(3)?,
            season: row.try_get(4)?,
            season_year: row.try_get(5)?,
            start_date: FuzzyDate::from_stored(
                row.try_get(6)?,
                row.try_get(7)?,
                row.try_get(8)?,
            ),
        })
    }
}
}
