//! The walk: from anime just completed, the next level of items, within the import's depth and
//! size caps, over followed types to ANIME nodes only. Fresh anime are walked through from
//! the store without a fetch; stale ones become queued items for the caller to enqueue.

use std::collections::BTreeMap;

use sqlx::SqliteConnection;

use crate::anime::{AnimeId, RelationType};
use crate::store::imports::{self, ImportRules, QueuedItem};
use crate::store::{ItemState, Store, StoreError, unix_ms_now};

/// How far and how wide one import walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Relation hops from the root; the root is depth 0.
    pub max_depth: u32,
    /// Most anime one import takes in, root included.
    pub max_items: u32,
    pub followed: Vec<RelationType>,
    /// Fetch every anime again, however fresh its stored copy.
    pub force_refresh: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            max_depth: 50,
            max_items: 1_000,
            followed: RelationType::FOLLOWED_BY_DEFAULT.to_vec(),
            force_refresh: false,
        }
    }
}

impl ImportOptions {
    /// Checks the caps make a walk, naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_items == 0 {
            return Err("max items must be at least 1 (the root itself), got 0".into());
        }
        Ok(())
    }

    pub(crate) fn rules(&self) -> ImportRules {
        ImportRules {
            max_depth: self.max_depth,
            max_items: self.max_items,
            followed: self.followed.clone(),
            force_refresh: self.force_refresh,
        }
    }
}

/// Records a new import of `root` and returns its id with the items to enqueue. A fresh
/// root is walked through from the store at once, so a fully fresh franchise costs no fetch.
pub async fn create_import(
    store: &Store,
    root: AnimeId,
    options: &ImportOptions,
    fresh_since_ms: i64,
) -> Result<(i64, Vec<QueuedItem>), StoreError> {
    let rules = options.rules();
    let now = unix_ms_now();
    let mut tx = store.begin().await?;
    let import_id = imports::insert_import(&mut tx, root, &rules, now).await?;
    let cached =
        |set: std::collections::HashSet<AnimeId>| !rules.force_refresh && set.contains(&root);
    let fresh = cached(imports::fresh_among(&mut tx, &[root], fresh_since_ms).await?);
    let missing = cached(imports::missing_among(&mut tx, &[root], fresh_since_ms).await?);
    let (state, reason) = if missing {
        (ItemState::Failed, Some(NOT_FOUND))
    } else if fresh {
        (ItemState::Done, Some(FRESH))
    } else {
        (ItemState::Queued, None)
    };
    imports::insert_items(&mut tx, import_id, &[(root, 0, state, reason)], now).await?;
    let to_fetch = match state {
        ItemState::Done => {
            let root_level = vec![(root, 0)];
            expand(&mut tx, import_id, &rules, root_level, fresh_since_ms, now).await?
        }
        ItemState::Failed => Vec::new(),
        ItemState::Queued => vec![QueuedItem {
            import_id,
            anime_id: root,
            depth: 0,
        }],
    };
    imports::finish_if_complete(&mut tx, import_id, now).await?;
    tx.commit().await?;
    Ok((import_id, to_fetch))
}

/// The reason recorded on an item that was fresh in the store and so not fetched.
pub(crate) const FRESH: &str = "fresh in store";

/// Why an item failed when AniList left its id out of an `id_in` answer.
pub const NOT_FOUND: &str = "not found on AniList (unknown, deleted or adult id)";

/// Walks on from `completed` (anime, depth) in one import. Returns the new items to fetch.
///
/// A child found again by a shorter path gets the smaller depth, and if it was already done it
/// is walked again from there: the final set is every anime within `max_depth` hops of the
/// root whatever order jobs finished in. (Only the size cap depends on that order.)
pub(crate) async fn expand(
    conn: &mut SqliteConnection,
    import_id: i64,
    rules: &ImportRules,
    completed: Vec<(AnimeId, u32)>,
    fresh_since_ms: i64,
    now_ms: i64,
) -> Result<Vec<QueuedItem>, sqlx::Error> {
    let mut to_fetch = Vec::new();
    let mut count = imports::item_count(conn, import_id).await?;
    let mut frontier = completed;
    while !frontier.is_empty() {
        let depth_of: BTreeMap<AnimeId, u32> = frontier
            .iter()
            .filter(|(_, depth)| *depth < rules.max_depth)
            .map(|(id, depth)| (*id, *depth))
            .collect();
        let parents: Vec<AnimeId> = depth_of.keys().copied().collect();
        let edges = imports::followed_edges(conn, &parents, &rules.followed).await?;
        let mut candidates: BTreeMap<AnimeId, u32> = BTreeMap::new();
        for (parent, child) in edges {
            let Some(parent_depth) = depth_of.get(&parent) else {
                continue;
            };
            let depth = parent_depth + 1;
            candidates
                .entry(child)
                .and_modify(|d| *d = (*d).min(depth))
                .or_insert(depth);
        }
        let ids: Vec<AnimeId> = candidates.keys().copied().collect();
        let existing = imports::existing_items(conn, import_id, &ids).await?;
        let mut next = Vec::new();
        let mut new: Vec<(AnimeId, u32)> = Vec::new();
        for (child, depth) in candidates {
            match existing.get(&child) {
                Some((old, state)) if depth < *old => {
                    imports::lower_depth(conn, import_id, child, depth).await?;
                    if *state == ItemState::Done {
                        next.push((child, depth));
                    }
                }
                Some(_) => {}
                None => new.push((child, depth)),
            }
        }
        // Nearest first, so a size cap keeps the closest relatives.
        new.sort_by_key(|(id, depth)| (*depth, *id));
        let room = u64::from(rules.max_items).saturating_sub(count);
        new.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        count += new.len() as u64;
        let new_ids: Vec<AnimeId> = new.iter().map(|(id, _)| *id).collect();
        let (fresh, missing) = if rules.force_refresh {
            Default::default()
        } else {
            (
                imports::fresh_among(conn, &new_ids, fresh_since_ms).await?,
                imports::missing_among(conn, &new_ids, fresh_since_ms).await?,
            )
        };
        let mut rows = Vec::with_capacity(new.len());
        for (id, depth) in new {
            if missing.contains(&id) {
                rows.push((id, depth, ItemState::Failed, Some(NOT_FOUND)));
            } else if fresh.contains(&id) {
                rows.push((id, depth, ItemState::Done, Some(FRESH)));
                next.push((id, depth));
            } else {
                rows.push((id, depth, ItemState::Queued, None));
                to_fetch.push(QueuedItem {
                    import_id,
                    anime_id: id,
                    depth,
                });
            }
        }
        imports::insert_items(conn, import_id, &rows, now_ms).await?;
        frontier = next;
    }
    Ok(to_fetch)
}
