//! SQL for imports and their items: creating an import, recording item outcomes, and the
//! look-ups the producer's walk needs, all inside the caller's transaction.

use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::records::ItemState;
use crate::anime::{AnimeId, RelationType};

/// The bounds and filter of one import's walk, stored with the import so a restart walks on
/// by the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRules {
    pub max_depth: u32,
    pub max_items: u32,
    pub followed: Vec<RelationType>,
    pub force_refresh: bool,
}

/// An item waiting for a fetch job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueuedItem {
    pub import_id: i64,
    pub anime_id: AnimeId,
    pub depth: u32,
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

/// Bound values per statement stay far below SQLite's 32,766.
const IDS_PER_STATEMENT: usize = 5_000;

pub(crate) fn to_id(raw: i64) -> Result<AnimeId, sqlx::Error> {
    AnimeId::new(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A stored depth or cap (never negative, and small) as the walk's `u32`.
fn to_u32(raw: i64) -> u32 {
    raw.clamp(0, i64::from(u32::MAX)) as u32
}

pub(crate) async fn insert_import(
    conn: &mut SqliteConnection,
    root: AnimeId,
    rules: &ImportRules,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    let followed = rules
        .followed
        .iter()
        .map(RelationType::as_str)
        .collect::<Vec<_>>()
        .join(",");
    let row = sqlx::query(
        "INSERT INTO import (root_id, max_depth, max_items, followed, force_refresh, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(i64::from(root))
    .bind(i64::from(rules.max_depth))
    .bind(i64::from(rules.max_items))
    .bind(followed)
    .bind(i32::from(rules.force_refresh))
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    row.try_get(0)
}

pub(crate) async fn import_rules(
    conn: &mut SqliteConnection,
    import_id: i64,
) -> Result<Option<ImportRules>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT max_depth, max_items, followed, force_refresh FROM import WHERE id = $1",
    )
    .bind(import_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let followed: String = row.try_get("followed")?;
    Ok(Some(ImportRules {
        max_depth: to_u32(row.try_get("max_depth")?),
        max_items: to_u32(row.try_get("max_items")?),
        followed: followed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(RelationType::parse)
            .collect(),
        force_refresh: row.try_get::<i64, _>("force_refresh")? != 0,
    }))
}

/// Moves queued items to their outcome. Returns the items that moved to `done` with their
/// depth; an item already done or failed (a re-delivered job) is left as it is.
pub(crate) async fn record_outcomes(
    conn: &mut SqliteConnection,
    results: &[ItemResult],
    now_ms: i64,
) -> Result<Vec<QueuedItem>, sqlx::Error> {
    let mut completed = Vec::new();
    // One statement per chunk, not one per item: each statement is a hand-off to sqlx's
    // SQLite thread, and a flush settles hundreds of items.
    for chunk in results.chunks(IDS_PER_STATEMENT / 4) {
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE import_item SET state = v.column3, ");
        q.push("reason = v.column4, updated_at = ")
            .push_bind(now_ms)
            .push(" FROM (");
        q.push_values(chunk, |mut row, r| {
            let (state, reason) = match &r.outcome {
                ItemOutcome::Done => (ItemState::Done, None),
                ItemOutcome::Failed(reason) => (ItemState::Failed, Some(reason.as_str())),
            };
            row.push_bind(r.import_id)
                .push_bind(i64::from(r.anime_id))
                .push_bind(state.as_str())
                .push_bind(reason);
        });
        q.push(
            ") AS v WHERE import_item.import_id = v.column1 AND import_item.anime_id = v.column2 \
             AND import_item.state = 'queued' \
             RETURNING import_item.import_id, import_item.anime_id, import_item.depth, \
             import_item.state",
        );
        for row in q.build().persistent(false).fetch_all(&mut *conn).await? {
            let state: String = row.try_get(3)?;
            if ItemState::parse(&state) == Some(ItemState::Done) {
                completed.push(QueuedItem {
                    import_id: row.try_get(0)?,
                    anime_id: to_id(row.try_get(1)?)?,
                    depth: to_u32(row.try_get(2)?),
                });
            }
        }
    }
    completed.sort();
    Ok(completed)
}

/// Edges the walk may follow out of `parents`: stored (observed or derived), of a followed
/// type, to an ANIME. Returned as (parent, child), in a stable order.
pub(crate) async fn followed_edges(
    conn: &mut SqliteConnection,
    parents: &[AnimeId],
    followed: &[RelationType],
) -> Result<Vec<(AnimeId, AnimeId)>, sqlx::Error> {
    let mut edges = Vec::new();
    if followed.is_empty() {
        return Ok(edges);
    }
    for chunk in parents.chunks(IDS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT anime_id, related_id FROM anime_relation WHERE related_kind = 'ANIME' \
             AND anime_id IN (",
        );
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(i64::from(*id));
        }
        q.push(") AND relation_type IN (");
        let mut list = q.separated(", ");
        for t in followed {
            list.push_bind(t.as_str());
        }
        q.push(") ORDER BY anime_id, related_id");
        for row in q.build().persistent(false).fetch_all(&mut *conn).await? {
            edges.push((to_id(row.try_get(0)?)?, to_id(row.try_get(1)?)?));
        }
    }
    Ok(edges)
}

/// The depth and state of those of `ids` that are already items of the import.
pub(crate) async fn existing_items(
    conn: &mut SqliteConnection,
    import_id: i64,
    ids: &[AnimeId],
) -> Result<HashMap<AnimeId, (u32, ItemState)>, sqlx::Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT anime_id, depth, state FROM import_item WHERE import_id = ",
        );
        q.push_bind(import_id).push(" AND anime_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(i64::from(*id));
        }
        q.push(")");
        for row in q.build().persistent(false).fetch_all(&mut *conn).await? {
            let state: String = row.try_get(2)?;
            let state = ItemState::parse(&state).unwrap_or(ItemState::Failed);
            let depth = to_u32(row.try_get(1)?);
            found.insert(to_id(row.try_get(0)?)?, (depth, state));
        }
    }
    Ok(found)
}

pub(crate) async fn item_count(
    conn: &mut SqliteConnection,
    import_id: i64,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT item_count FROM import WHERE id = $1")
        .bind(import_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.max(0) as u64)
}

/// Those of `ids` stored since `since_ms`: fresh enough not to fetch again.
pub(crate) async fn fresh_among(
    conn: &mut SqliteConnection,
    ids: &[AnimeId],
    since_ms: i64,
) -> Result<HashSet<AnimeId>, sqlx::Error> {
    ids_since(
        conn,
        "SELECT id FROM anime WHERE fetched_at >= ",
        ids,
        since_ms,
    )
    .await
}

/// Those of `ids` AniList said were missing since `since_ms`: not worth asking again.
pub(crate) async fn missing_among(
    conn: &mut SqliteConnection,
    ids: &[AnimeId],
    since_ms: i64,
) -> Result<HashSet<AnimeId>, sqlx::Error> {
    let select = "SELECT id FROM anime_missing WHERE checked_at >= ";
    ids_since(conn, select, ids, since_ms).await
}

/// Those of `ids` that `select` (ending in "column >= ") finds at or after `since_ms`.
async fn ids_since(
    conn: &mut SqliteConnection,
    select: &'static str,
    ids: &[AnimeId],
    since_ms: i64,
) -> Result<HashSet<AnimeId>, sqlx::Error> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(select);
        q.push_bind(since_ms).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(i64::from(*id));
        }
        q.push(")");
        for row in q.build().persistent(false).fetch_all(&mut *conn).await? {
            found.insert(to_id(row.try_get(0)?)?);
        }
    }
    Ok(found)
}

/// Inserts new items of one import in multi-row statements; (anime, depth, state, reason).
/// Keeps the import's item count.
pub(crate) async fn insert_items(
    conn: &mut SqliteConnection,
    import_id: i64,
    items: &[(AnimeId, u32, ItemState, Option<&str>)],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut inserted = 0;
    for chunk in items.chunks(IDS_PER_STATEMENT / 6) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO import_item (import_id, anime_id, depth, state, reason, updated_at) ",
        );
        q.push_values(chunk, |mut row, (id, depth, state, reason)| {
            row.push_bind(import_id)
                .push_bind(i64::from(*id))
                .push_bind(i64::from(*depth))
                .push_bind(state.as_str())
                .push_bind(*reason)
                .push_bind(now_ms);
        });
        q.push(" ON CONFLICT (import_id, anime_id) DO NOTHING");
        inserted += q
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    if inserted > 0 {
        sqlx::query("UPDATE import SET item_count = item_count + $1 WHERE id = $2")
            .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
            .bind(import_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A shorter path to an item was found: record the smaller depth.
pub(crate) async fn lower_depth(
    conn: &mut SqliteConnection,
    import_id: i64,
    anime_id: AnimeId,
    depth: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE import_item SET depth = $1 WHERE import_id = $2 AND anime_id = $3 AND depth > $1",
    )
    .bind(i64::from(depth))
    .bind(import_id)
    .bind(i64::from(anime_id))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stamps the import finished once no item is queued.
pub(crate) async fn finish_if_complete(
    conn: &mut SqliteConnection,
    import_id: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE import SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM import_item WHERE import_id = $2 AND state = 'queued')",
    )
    .bind(now_ms)
    .bind(import_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every item still waiting for a fetch, for start-up reconciliation with the queue.
pub(crate) async fn queued_items(
    conn: &mut SqliteConnection,
) -> Result<Vec<QueuedItem>, sqlx::Error> {
    queued_items_after(conn, 0).await
}

/// Items waiting for a fetch in imports newer than `import_id`.
pub(crate) async fn queued_items_after(
    conn: &mut SqliteConnection,
    import_id: i64,
) -> Result<Vec<QueuedItem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT import_id, anime_id, depth FROM import_item WHERE state = 'queued' \
         AND import_id > $1 ORDER BY import_id, depth, anime_id",
    )
    .bind(import_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(QueuedItem {
                import_id: row.try_get(0)?,
                anime_id: to_id(row.try_get(1)?)?,
                depth: to_u32(row.try_get(2)?),
            })
        })
        .collect()
}

/// The states of these items, for those the imports have.
pub(crate) async fn item_states(
    conn: &mut SqliteConnection,
    items: &[(i64, AnimeId)],
) -> Result<HashMap<(i64, AnimeId), ItemState>, sqlx::Error> {
    let mut states = HashMap::with_capacity(items.len());
    for chunk in items.chunks(IDS_PER_STATEMENT / 2) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT it.import_id, it.anime_id, it.state FROM import_item it JOIN (",
        );
        q.push_values(chunk, |mut row, (import_id, anime_id)| {
            row.push_bind(*import_id).push_bind(i64::from(*anime_id));
        });
        q.push(") AS v ON it.import_id = v.column1 AND it.anime_id = v.column2");
        for row in q.build().persistent(false).fetch_all(&mut *conn).await? {
            let state: String = row.try_get(2)?;
            let state = ItemState::parse(&state).unwrap_or(ItemState::Failed);
            states.insert((row.try_get(0)?, to_id(row.try_get(1)?)?), state);
        }
    }
    Ok(states)
}
