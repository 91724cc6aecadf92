//! The walk's rules, tested without any database: a transaction kept in memory holding the
//! edges, items and freshness the walk reads, so followed types, caps and depth lowering are
//! checked on their own. (Relation rows are checked in `store/relations.rs`, and every
//! backend's SQL by the conformance suite.)

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;

use super::walk::{Carried, FRESH, NOT_FOUND, expand};
use crate::anime::{Anime, AnimeId, RelationType};
use crate::queue::FetchJob;
use crate::store::driver::NewItem;
use crate::store::{ImportRules, ItemResult, ItemState, QueuedItem, StoreError, StoreTx};
use crate::test_support::id;

#[derive(Default)]
struct MemoryTx {
    /// (parent, child, type, child kind)
    edges: Vec<(AnimeId, AnimeId, RelationType, &'static str)>,
    items: BTreeMap<AnimeId, (u32, ItemState, Option<String>)>,
    fresh: HashSet<AnimeId>,
    missing: HashSet<AnimeId>,
}

fn outside_the_model() -> StoreError {
    StoreError::Sql(sqlx::Error::Protocol("not part of the walk's model".into()))
}

#[async_trait]
impl StoreTx for MemoryTx {
    async fn upsert_anime(&mut self, _: &[Anime], _: i64) -> Result<(), StoreError> {
        Err(outside_the_model())
    }
    async fn record_missing(
        &mut self,
        _: &[AnimeId],
        _: &[AnimeId],
        _: i64,
    ) -> Result<(), StoreError> {
        Err(outside_the_model())
    }
    async fn insert_import(
        &mut self,
        _: AnimeId,
        _: &ImportRules,
        _: i64,
    ) -> Result<i64, StoreError> {
        Err(outside_the_model())
    }
    async fn import_rules(&mut self, _: i64) -> Result<Option<ImportRules>, StoreError> {
        Err(outside_the_model())
    }
    async fn record_outcomes(
        &mut self,
        _: &[ItemResult],
        _: i64,
    ) -> Result<Vec<QueuedItem>, StoreError> {
        Err(outside_the_model())
    }
    async fn followed_edges(
        &mut self,
        parents: &[AnimeId],
        followed: &[RelationType],
    ) -> Result<Vec<(AnimeId, AnimeId)>, StoreError> {
        let parents: HashSet<_> = parents.iter().collect();
        let mut edges: Vec<_> = self
            .edges
            .iter()
            .filter(|(p, _, t, kind)| {
                parents.contains(p) && followed.contains(t) && *kind == "ANIME"
            })
            .map(|(p, c, _, _)| (*p, *c))
            .collect();
        edges.sort();
        Ok(edges)
    }
    async fn existing_items(
        &mut self,
        _import_id: i64,
        ids: &[AnimeId],
    ) -> Result<HashMap<AnimeId, (u32, ItemState)>, StoreError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.items.get(id).map(|(d, s, _)| (*id, (*d, *s))))
            .collect())
    }
    async fn item_count(&mut self, _import_id: i64) -> Result<u64, StoreError> {
        Ok(self.items.len() as u64)
    }
    async fn fresh_among(
        &mut self,
        ids: &[AnimeId],
        _: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        Ok(ids
            .iter()
            .filter(|id| self.fresh.contains(id))
            .copied()
            .collect())
    }
    async fn missing_among(
        &mut self,
        ids: &[AnimeId],
        _: i64,
    ) -> Result<HashSet<AnimeId>, StoreError> {
        Ok(ids
            .iter()
            .filter(|id| self.missing.contains(id))
            .copied()
            .collect())
    }
    async fn insert_items(
        &mut self,
        _import_id: i64,
        items: &[NewItem<'_>],
        _: i64,
    ) -> Result<(), StoreError> {
        for (id, depth, state, reason) in items {
            self.items
                .entry(*id)
                .or_insert((*depth, *state, reason.map(str::to_string)));
        }
        Ok(())
    }
    async fn lower_depth(
        &mut self,
        _import_id: i64,
        anime_id: AnimeId,
        depth: u32,
    ) -> Result<(), StoreError> {
        if let Some(item) = self.items.get_mut(&anime_id) {
            item.0 = item.0.min(depth);
        }
        Ok(())
    }
    async fn finish_if_complete(&mut self, _: i64, _: i64) -> Result<bool, StoreError> {
        Err(outside_the_model())
    }
    async fn requeue(&mut self, _: &[QueuedItem], _: i64) -> Result<Vec<QueuedItem>, StoreError> {
        Err(outside_the_model())
    }
    async fn cancel_import(&mut self, _: i64, _: i64) -> Result<Option<u64>, StoreError> {
        Err(outside_the_model())
    }
    async fn retry_import(
        &mut self,
        _: i64,
        _: i64,
    ) -> Result<Option<Vec<QueuedItem>>, StoreError> {
        Err(outside_the_model())
    }
    async fn hand_off(&mut self, _: i64) -> Result<(), StoreError> {
        Err(outside_the_model())
    }
    async fn enqueue(&mut self, _: &[FetchJob]) -> Result<bool, StoreError> {
        Err(outside_the_model())
    }
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

fn rules(max_depth: u32, max_items: u32) -> ImportRules {
    ImportRules {
        max_depth,
        max_items,
        followed: RelationType::FOLLOWED_BY_DEFAULT.to_vec(),
        force_refresh: false,
    }
}

impl MemoryTx {
    fn edge(mut self, from: i64, to: i64, rel: &str, kind: &'static str) -> Self {
        self.edges
            .push((id(from), id(to), RelationType::parse(rel), kind));
        self
    }

    fn item(mut self, anime: i64, depth: u32, state: ItemState) -> Self {
        self.items.insert(id(anime), (depth, state, None));
        self
    }

    fn depths(&self) -> Vec<(u32, u32, ItemState)> {
        self.items
            .iter()
            .map(|(id, (d, s, _))| (id.get(), *d, *s))
            .collect()
    }
}

async fn walk(tx: &mut MemoryTx, rules: &ImportRules, from: Vec<(i64, u32)>) -> Vec<(u32, u32)> {
    let from = from.into_iter().map(|(a, d)| (id(a), d)).collect();
    let mut queued: Vec<(u32, u32)> = expand(tx, 1, rules, from, 0, &mut Carried::default(), 0)
        .await
        .unwrap()
        .iter()
        .map(|q| (q.anime_id.get(), q.depth))
        .collect();
    queued.sort();
    queued
}

#[tokio::test]
async fn only_followed_types_to_anime_nodes_are_walked() {
    let mut tx = MemoryTx::default()
        .item(1, 0, ItemState::Done)
        .edge(1, 2, "SEQUEL", "ANIME")
        .edge(1, 3, "CHARACTER", "ANIME")
        .edge(1, 4, "SOURCE", "MANGA")
        .edge(1, 5, "ADAPTATION", "ANIME")
        .edge(1, 6, "SIDE_STORY", "ANIME")
        .edge(1, 7, "SPIN_OFF", "MANGA")
        .edge(1, 8, "OTHER", "ANIME");
    assert_eq!(
        walk(&mut tx, &rules(50, 1000), vec![(1, 0)]).await,
        vec![(2, 1), (6, 1)]
    );
}

#[tokio::test]
async fn fresh_anime_are_walked_through_and_missing_ones_fail_without_a_fetch() {
    let mut tx = MemoryTx::default()
        .item(1, 0, ItemState::Done)
        .edge(1, 2, "SEQUEL", "ANIME")
        .edge(2, 3, "SEQUEL", "ANIME")
        .edge(1, 9, "PREQUEL", "ANIME");
    tx.fresh.insert(id(2));
    tx.missing.insert(id(9));
    assert_eq!(
        walk(&mut tx, &rules(50, 1000), vec![(1, 0)]).await,
        vec![(3, 2)]
    );
    assert_eq!(
        tx.items[&id(2)],
        (1, ItemState::Done, Some(FRESH.to_string()))
    );
    assert_eq!(
        tx.items[&id(9)],
        (1, ItemState::Failed, Some(NOT_FOUND.to_string()))
    );
}

#[tokio::test]
async fn the_depth_cap_stops_the_walk_and_the_size_cap_keeps_the_nearest() {
    let chain = || {
        MemoryTx::default()
            .item(1, 0, ItemState::Done)
            .edge(1, 2, "SEQUEL", "ANIME")
            .edge(1, 3, "SIDE_STORY", "ANIME")
            .edge(2, 4, "SEQUEL", "ANIME")
    };
    let mut tx = chain();
    tx.fresh.extend([id(2), id(3), id(4)]);
    walk(&mut tx, &rules(1, 1000), vec![(1, 0)]).await;
    assert_eq!(
        tx.depths(),
        vec![
            (1, 0, ItemState::Done),
            (2, 1, ItemState::Done),
            (3, 1, ItemState::Done)
        ],
        "4 is two hops away"
    );
    let mut tx = chain();
    tx.fresh.extend([id(2), id(3), id(4)]);
    walk(&mut tx, &rules(50, 3), vec![(1, 0)]).await;
    assert_eq!(tx.items.len(), 3, "root plus the two nearest");
    assert!(!tx.items.contains_key(&id(4)));
}

#[tokio::test]
async fn a_shorter_path_lowers_a_depth_and_walks_a_done_item_again() {
    // 1 → 2 → 3 → 4, and a shortcut 1 → 3 found later.
    let mut tx = MemoryTx::default()
        .item(1, 0, ItemState::Done)
        .item(2, 1, ItemState::Done)
        .item(3, 2, ItemState::Done)
        .edge(1, 2, "SEQUEL", "ANIME")
        .edge(2, 3, "SEQUEL", "ANIME")
        .edge(1, 3, "SIDE_STORY", "ANIME")
        .edge(3, 4, "SEQUEL", "ANIME");
    // With a cap of 2, 4 is out of reach through 2 (depth 3) but in reach through the
    // shortcut (3 at depth 1, 4 at depth 2).
    let queued = walk(&mut tx, &rules(2, 1000), vec![(1, 0)]).await;
    assert_eq!(tx.items[&id(3)].0, 1, "the shortcut lowered 3's depth");
    assert_eq!(queued, vec![(4, 2)], "and 3 was walked again from there");
}

#[tokio::test]
async fn the_result_does_not_depend_on_the_order_items_complete_in() {
    let edges = |tx: MemoryTx| {
        tx.edge(1, 2, "SEQUEL", "ANIME")
            .edge(1, 3, "PREQUEL", "ANIME")
            .edge(2, 4, "SEQUEL", "ANIME")
            .edge(3, 4, "SEQUEL", "ANIME")
            .edge(4, 5, "SEQUEL", "ANIME")
    };
    let mut a = edges(MemoryTx::default().item(1, 0, ItemState::Done));
    let mut b = edges(MemoryTx::default().item(1, 0, ItemState::Done));
    for tx in [&mut a, &mut b] {
        tx.fresh.extend([id(2), id(3), id(4), id(5)]);
    }
    walk(&mut a, &rules(50, 1000), vec![(1, 0)]).await;
    // b learns of its level in two halves, 3's branch first.
    b.items.insert(id(3), (1, ItemState::Done, None));
    walk(&mut b, &rules(50, 1000), vec![(3, 1)]).await;
    walk(&mut b, &rules(50, 1000), vec![(1, 0)]).await;
    let depths = |tx: &MemoryTx| -> Vec<(u32, u32)> {
        tx.depths().into_iter().map(|(a, d, _)| (a, d)).collect()
    };
    assert_eq!(depths(&a), depths(&b));
    assert_eq!(depths(&a), vec![(1, 0), (2, 1), (3, 1), (4, 2), (5, 3)]);
}
