//! PostgreSQL's multi-row upserts of fetched anime and their relations, forward and derived
//! inverse, on the whole natural key. One statement per table per flush, whole columns as arrays.

use sqlx::PgConnection;

use crate::anime::{Anime, AnimeId};
use crate::store::relations::{RelationRow, relation_rows};
use crate::store::sql::latest_by_id;
use crate::store::sql::raw_ids;

/// Records ids AniList did not return, and forgets those it now did.
pub(crate) async fn record_missing(
    conn: &mut PgConnection,
    missing: &[AnimeId],
    found: &[AnimeId],
    checked_at_ms: i64,
) -> Result<(), sqlx::Error> {
    if !missing.is_empty() {
        // One upsert may not touch a row twice.
        let mut ids = raw_ids(missing);
        ids.sort_unstable();
        ids.dedup();
        sqlx::query(
            "INSERT INTO anime_missing (id, checked_at) \
             SELECT id, $2 FROM UNNEST($1::BIGINT[]) AS t (id) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(ids)
        .bind(checked_at_ms)
        .execute(&mut *conn)
        .await?;
    }
    if !found.is_empty() {
        sqlx::query("DELETE FROM anime_missing WHERE id = ANY($1)")
            .bind(raw_ids(found))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes `anime` and their relations. A refetched anime's observed edges replace its old
/// ones (an edge AniList dropped disappears), and so do the inverses derived from them.
///
/// Every statement takes whole columns as arrays (`UNNEST`), so it is one prepared
/// statement whatever the row count: a `VALUES` list of thousands of bound values is parsed
/// and planned afresh each time and cost ten times more here.
pub(crate) async fn upsert_anime(
    conn: &mut PgConnection,
    anime: &[Anime],
    fetched_at_ms: i64,
) -> Result<(), sqlx::Error> {
    if anime.is_empty() {
        return Ok(());
    }
    let unique = latest_by_id(anime);

    let column = |f: &dyn Fn(&Anime) -> Option<String>| -> Vec<Option<String>> {
        unique.iter().map(|a| f(a)).collect()
    };
    let ids: Vec<i64> = unique.iter().map(|a| i64::from(a.id)).collect();
    sqlx::query(
        "INSERT INTO anime (id, id_mal, kind, title_romaji, title_english, title_native, \
         format, status, episodes, season, season_year, start_year, start_month, start_day, \
         fetched_at) \
         SELECT t.*, $15::BIGINT FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], \
         $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::INTEGER[], \
         $10::TEXT[], $11::INTEGER[], $12::INTEGER[], $13::INTEGER[], $14::INTEGER[]) AS t \
         ON CONFLICT (id) DO UPDATE SET id_mal = excluded.id_mal, kind = excluded.kind, \
         title_romaji = excluded.title_romaji, title_english = excluded.title_english, \
         title_native = excluded.title_native, format = excluded.format, \
         status = excluded.status, episodes = excluded.episodes, season = excluded.season, \
         season_year = excluded.season_year, start_year = excluded.start_year, \
         start_month = excluded.start_month, start_day = excluded.start_day, \
         fetched_at = excluded.fetched_at",
    )
    .bind(&ids)
    .bind(unique.iter().map(|a| a.id_mal).collect::<Vec<_>>())
    .bind(unique.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>())
    .bind(column(&|a| a.title.romaji.clone()))
    .bind(column(&|a| a.title.english.clone()))
    .bind(column(&|a| a.title.native.clone()))
    .bind(column(&|a| a.format.clone()))
    .bind(column(&|a| a.status.clone()))
    .bind(unique.iter().map(|a| a.episodes).collect::<Vec<_>>())
    .bind(column(&|a| a.season.clone()))
    .bind(unique.iter().map(|a| a.season_year).collect::<Vec<_>>())
    .bind(unique.iter().map(|a| a.start_date.year).collect::<Vec<_>>())
    .bind(
        unique
            .iter()
            .map(|a| a.start_date.month.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(
        unique
            .iter()
            .map(|a| a.start_date.day.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(fetched_at_ms)
    .execute(&mut *conn)
    .await?;

    // Upsert in place, then drop what this flush did not write: cheaper than deleting every
    // row of a refetched anime and inserting it again, and the same result.
    // A generation larger than any earlier flush's, from whichever process.
    let generation: i64 = sqlx::query_scalar("SELECT nextval('flush_generation')")
        .fetch_one(&mut *conn)
        .await?;
    let (observed, derived) = relation_rows(&unique);
    write_relations(conn, &observed, true, generation).await?;
    write_relations(conn, &derived, false, generation).await?;
    sqlx::query(
        "DELETE FROM anime_relation WHERE written_gen < $1 \
         AND ((NOT derived AND anime_id = ANY($2)) OR (derived AND related_id = ANY($2)))",
    )
    .bind(generation)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Observed rows replace whatever is there; derived rows only replace derived rows.
pub(crate) async fn write_relations(
    conn: &mut PgConnection,
    rows: &[RelationRow<'_>],
    observed: bool,
    generation: i64,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! upsert {
        () => {
            "INSERT INTO anime_relation (anime_id, related_id, relation_type, derived, \
             related_kind, related_format, related_status, related_title, edge_id, written_gen) \
             SELECT t.*, $10::BIGINT FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], \
             $4::BOOLEAN[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[]) AS t \
             ON CONFLICT (anime_id, related_id) DO UPDATE SET \
             relation_type = excluded.relation_type, derived = excluded.derived, \
             related_kind = excluded.related_kind, related_format = excluded.related_format, \
             related_status = excluded.related_status, related_title = excluded.related_title, \
             edge_id = excluded.edge_id, written_gen = excluded.written_gen"
        };
    }
    // A derived row never replaces an observed one.
    let sql = if observed {
        upsert!()
    } else {
        concat!(upsert!(), " WHERE anime_relation.derived")
    };
    sqlx::query(sql)
        .bind(
            rows.iter()
                .map(|r| i64::from(r.anime_id))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| i64::from(r.related_id))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.relation_type.as_ref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.derived).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.related_kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.related_format).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.related_status).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.related_title).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.edge_id).collect::<Vec<_>>())
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
