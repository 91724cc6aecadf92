//! SQLite's multi-row upserts of fetched anime and their relations, forward and derived inverse, on
//! the whole natural key. One statement per few hundred rows, never one per row.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::anime::{Anime, AnimeId};
use crate::store::relations::{RelationRow, next_generation, relation_rows};
use crate::store::sql::latest_by_id;

/// Rows per INSERT: SQLite allows 32,766 bound values; an anime row binds 15.
const ANIME_ROWS_PER_STATEMENT: usize = 1_000;
const RELATION_ROWS_PER_STATEMENT: usize = 1_000;

/// Records ids AniList did not return, and forgets those it now did.
pub(crate) async fn record_missing(
    conn: &mut SqliteConnection,
    missing: &[AnimeId],
    found: &[AnimeId],
    checked_at_ms: i64,
) -> Result<(), sqlx::Error> {
    for chunk in missing.chunks(ANIME_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO anime_missing (id, checked_at) ");
        q.push_values(chunk, |mut row, id| {
            row.push_bind(i64::from(*id)).push_bind(checked_at_ms);
        });
        q.push(" ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at");
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    for chunk in found.chunks(ANIME_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM anime_missing WHERE id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(i64::from(*id));
        }
        q.push(")");
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes `anime` and their relations. A refetched anime's observed edges replace its old
/// ones (an edge AniList dropped disappears), and so do the inverses derived from them.
pub(crate) async fn upsert_anime(
    conn: &mut SqliteConnection,
    anime: &[Anime],
    fetched_at_ms: i64,
) -> Result<(), sqlx::Error> {
    if anime.is_empty() {
        return Ok(());
    }
    let unique = latest_by_id(anime);

    for chunk in unique.chunks(ANIME_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO anime (id, id_mal, kind, title_romaji, title_english, title_native, \
             format, status, episodes, season, season_year, start_year, start_month, start_day, \
             fetched_at) ",
        );
        q.push_values(chunk, |mut row, a| {
            row.push_bind(i64::from(a.id))
                .push_bind(a.id_mal)
                .push_bind(a.kind.as_str())
                .push_bind(a.title.romaji.as_deref())
                .push_bind(a.title.english.as_deref())
                .push_bind(a.title.native.as_deref())
                .push_bind(a.format.as_deref())
                .push_bind(a.status.as_deref())
                .push_bind(a.episodes)
                .push_bind(a.season.as_deref())
                .push_bind(a.season_year)
                .push_bind(a.start_date.year)
                .push_bind(a.start_date.month.map(i32::from))
                .push_bind(a.start_date.day.map(i32::from))
                .push_bind(fetched_at_ms);
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET id_mal = excluded.id_mal, kind = excluded.kind, \
             title_romaji = excluded.title_romaji, title_english = excluded.title_english, \
             title_native = excluded.title_native, format = excluded.format, \
             status = excluded.status, episodes = excluded.episodes, season = excluded.season, \
             season_year = excluded.season_year, start_year = excluded.start_year, \
             start_month = excluded.start_month, start_day = excluded.start_day, \
             fetched_at = excluded.fetched_at",
        );
        q.build().persistent(false).execute(&mut *conn).await?;
    }

    // Upsert in place, then drop what this flush did not write: cheaper than deleting every
    // row of a refetched anime and inserting it again, and the same result.
    let generation = next_generation(fetched_at_ms);
    let (observed, derived) = relation_rows(&unique);
    write_relations(conn, &observed, true, generation).await?;
    write_relations(conn, &derived, false, generation).await?;
    let ids: Vec<i64> = unique.iter().map(|a| i64::from(a.id)).collect();
    for chunk in ids.chunks(ANIME_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM anime_relation WHERE written_gen < ");
        q.push_bind(generation)
            .push(" AND ((derived = 0 AND anime_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")) OR (derived = 1 AND related_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")))");
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Observed rows replace whatever is there; derived rows only replace derived rows.
///
/// Multi-row statements of up to 1,000 rows. Measured (benches/relation_writes.rs, 1,000
/// relations): 100-row statements cost more in hand-offs to sqlx's SQLite thread, and one
/// statement reading a JSON array through `json_each` was 65% slower than this.
pub(crate) async fn write_relations(
    conn: &mut SqliteConnection,
    rows: &[RelationRow<'_>],
    observed: bool,
    generation: i64,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(RELATION_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO anime_relation (anime_id, related_id, relation_type, derived, \
             related_kind, related_format, related_status, related_title, edge_id, written_gen) ",
        );
        q.push_values(chunk, |mut row, r| {
            row.push_bind(i64::from(r.anime_id))
                .push_bind(i64::from(r.related_id))
                .push_bind(r.relation_type.as_ref())
                .push_bind(i32::from(r.derived))
                .push_bind(r.related_kind)
                .push_bind(r.related_format)
                .push_bind(r.related_status)
                .push_bind(r.related_title)
                .push_bind(r.edge_id)
                .push_bind(generation);
        });
        q.push(
            " ON CONFLICT (anime_id, related_id) DO UPDATE SET \
             relation_type = excluded.relation_type, derived = excluded.derived, \
             related_kind = excluded.related_kind, related_format = excluded.related_format, \
             related_status = excluded.related_status, related_title = excluded.related_title, \
             edge_id = excluded.edge_id, written_gen = excluded.written_gen",
        );
        if !observed {
            // A derived row never replaces an observed one.
            q.push(" WHERE anime_relation.derived = 1");
        }
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}
