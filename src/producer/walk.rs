//! The walk: from anime just completed, the next level of items, within the import's depth and
//! size caps, over followed types to ANIME nodes only. Fresh anime are walked through from
//! the store without a fetch; stale ones become queued items for the caller to enqueue.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::anime::{Anime, AnimeId};
use crate::store::{ImportRules, ItemState, QueuedItem, StoreError, StoreTx};

/// The reason recorded on an item that was fresh in the store and so not fetched.
pub(crate) const FRESH: &str = "fresh in store";

/// The reason recorded on an item whose anime came whole in another item's answer (a
/// request that walked several levels), and so was never asked for itself.
pub(crate) const WALKED: &str = "fetched with its relation's request";

/// Why an item failed when AniList left its id out of an `id_in` answer.
pub(crate) const NOT_FOUND: &str = "not found on AniList (unknown, deleted or adult id); \
     remembered for the freshness TTL; a forced refresh asks again";

/// The anime one flush brought whole: the ids its requests asked for (stored before the walk)
/// and those an answer carried beyond them (a request that walked several levels). A carried
/// anime is stored only once the walk reaches it, over a followed type within the import's
/// caps, so a deep answer stores exactly what a walk of one level per request would.
#[derive(Debug, Default)]
pub(crate) struct Carried<'a> {
    anime: HashMap<AnimeId, &'a Anime>,
    stored: HashSet<AnimeId>,
}

impl<'a> Carried<'a> {
    /// `stored` were written already (the ids asked for); `beyond` are held until reached.
    pub(crate) fn new(stored: &'a [Anime], beyond: &'a [Anime]) -> Self {
        let mut carried = Self::default();
        for anime in stored {
            carried.anime.insert(anime.id, anime);
            carried.stored.insert(anime.id);
        }
        for anime in beyond {
            carried.anime.entry(anime.id).or_insert(anime);
        }
        carried
    }

    fn contains(&self, id: &AnimeId) -> bool {
        self.anime.contains_key(id)
    }

    /// Writes those of `ids` not written yet, each once.
    async fn store(
        &mut self,
        tx: &mut dyn StoreTx,
        ids: &[AnimeId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut rows: Vec<Anime> = Vec::new();
        for id in ids {
            if let Some(anime) = self.anime.get(id)
                && self.stored.insert(*id)
            {
                rows.push((*anime).clone());
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let found: Vec<AnimeId> = rows.iter().map(|a| a.id).collect();
        tx.upsert_anime(&rows, now_ms).await?;
        // Found again: no longer remembered as missing.
        tx.record_missing(&[], &found, now_ms).await
    }

    /// Every anime this flush wrote, carried ones the walk reached included.
    pub(crate) fn stored(&self) -> &HashSet<AnimeId> {
        &self.stored
    }
}

/// Walks on from `completed` (anime, depth) in one import. Returns the new items to fetch.
///
/// A child found again by a shorter path gets the smaller depth, and if it was already done it
/// is walked again from there: the final set is every anime within `max_depth` hops of the
/// root whatever order jobs finished in. (Only the size cap depends on that order.)
///
/// `carried` are the anime this very flush brought whole (an answer's nested levels among
/// them): those the walk reaches are stored and walked through like fresh ones, even by a
/// forced refresh, so a request that walked several levels settles them all and only its
/// frontier is queued.
pub(crate) async fn expand(
    tx: &mut dyn StoreTx,
    import_id: i64,
    rules: &ImportRules,
    completed: Vec<(AnimeId, u32)>,
    fresh_since_ms: i64,
    carried: &mut Carried<'_>,
    now_ms: i64,
) -> Result<Vec<QueuedItem>, StoreError> {
    let mut to_fetch = Vec::new();
    let mut count = tx.item_count(import_id).await?;
    let mut frontier = completed;
    while !frontier.is_empty() {
        let depth_of: BTreeMap<AnimeId, u32> = frontier
            .iter()
            .filter(|(_, depth)| *depth < rules.max_depth)
            .map(|(id, depth)| (*id, *depth))
            .collect();
        let parents: Vec<AnimeId> = depth_of.keys().copied().collect();
        let edges = tx.followed_edges(&parents, &rules.followed).await?;
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
        let existing = tx.existing_items(import_id, &ids).await?;
        let mut next = Vec::new();
        let mut new: Vec<(AnimeId, u32)> = Vec::new();
        for (child, depth) in candidates {
            match existing.get(&child) {
                Some((old, state)) if depth < *old => {
                    tx.lower_depth(import_id, child, depth).await?;
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
        // What this flush brought is stored now that the walk reached it (its relations are
        // the next iteration's edges), and is fresh whatever the store held before.
        let brought: Vec<AnimeId> = new_ids
            .iter()
            .filter(|id| carried.contains(id))
            .copied()
            .collect();
        carried.store(tx, &brought, now_ms).await?;
        let (fresh, missing) = if rules.force_refresh {
            (brought.iter().copied().collect(), HashSet::new())
        } else {
            let unknown: Vec<AnimeId> = new_ids
                .iter()
                .filter(|id| !carried.contains(id))
                .copied()
                .collect();
            let mut fresh = tx.fresh_among(&unknown, fresh_since_ms).await?;
            fresh.extend(brought.iter().copied());
            (fresh, tx.missing_among(&unknown, fresh_since_ms).await?)
        };
        let mut rows = Vec::with_capacity(new.len());
        for (id, depth) in new {
            if missing.contains(&id) {
                rows.push((id, depth, ItemState::Failed, Some(NOT_FOUND)));
            } else if fresh.contains(&id) {
                let reason = if carried.contains(&id) { WALKED } else { FRESH };
                rows.push((id, depth, ItemState::Done, Some(reason)));
                next.push((id, depth));
            } else {
                rows.push((id, depth, ItemState::Queued, None));
                to_fetch.push(QueuedItem {
                    import_id,
                    anime_id: id,
                    depth,
                    round: 0,
                });
            }
        }
        tx.insert_items(import_id, &rows, now_ms).await?;
        frontier = next;
    }
    Ok(to_fetch)
}
