//! The fake's in-memory catalogue: media entries keyed by AniList id, plus the franchises
//! a generated world was built from, so tests can predict what a franchise walk should find.

mod builder;
mod generate;
mod load;
pub mod relation;
mod shapes;
mod spec;

use std::collections::BTreeMap;

pub use load::LoadError;
pub use spec::{GiantSpec, WorldSpec};

/// One AniList media entry. Enum-like fields stay raw AniList text so a recorded response
/// with a value we do not know still loads; the GraphQL layer maps them when rendering.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub id: i32,
    pub id_mal: Option<i32>,
    /// `ANIME` or `MANGA` (raw).
    pub media_type: Option<String>,
    pub format: Option<String>,
    pub status: Option<String>,
    pub episodes: Option<i32>,
    pub season: Option<String>,
    pub season_year: Option<i32>,
    pub start_date: FuzzyDate,
    pub title: Title,
    pub is_adult: bool,
    /// Deleted upstream: still referenced by edges, but never returned by a query.
    pub dead: bool,
    pub relations: Vec<Relation>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FuzzyDate {
    pub year: Option<i32>,
    pub month: Option<i32>,
    pub day: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Title {
    pub romaji: Option<String>,
    pub english: Option<String>,
    pub native: Option<String>,
    pub user_preferred: Option<String>,
}

/// One edge as AniList stores it on its source entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub edge_id: i32,
    /// Raw `MediaRelation` (version 2) text.
    pub relation_type: String,
    pub target: i32,
}

/// Which shape a generated franchise was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FranchiseKind {
    /// Size drawn from the real size histogram.
    Normal,
    /// A long SEQUEL chain with things hanging off it; `depth` is the walk depth from the root.
    Giant { depth: usize },
    /// One hub anime (the root) with at least `edges` relation edges.
    FanOut { edges: usize },
}

/// A generated franchise: what a walk from `root` over walkable relations reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Franchise {
    pub root: i32,
    /// Every ANIME member, root first. Includes dead and adult members (always leaves), which
    /// a walk discovers through edges but cannot fetch (adult only when anonymous).
    pub members: Vec<i32>,
    /// MANGA/NOVEL entries the franchise was adapted from (SOURCE edges, not walked).
    pub sources: Vec<i32>,
    pub kind: FranchiseKind,
}

/// The catalogue the fake serves.
#[derive(Debug, Clone, Default)]
pub struct World {
    entries: BTreeMap<i32, Entry>,
    franchises: Vec<Franchise>,
}

impl World {
    pub fn new(entries: impl IntoIterator<Item = Entry>, franchises: Vec<Franchise>) -> Self {
        let entries = entries.into_iter().map(|e| (e.id, e)).collect();
        World {
            entries,
            franchises,
        }
    }

    /// Any entry, including dead and adult ones (tests need to see what is hidden).
    pub fn get(&self, id: i32) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// The entry as a query sees it: dead ids never, adult ids only when authenticated.
    pub fn visible(&self, id: i32, anonymous: bool) -> Option<&Entry> {
        self.entries
            .get(&id)
            .filter(|e| !(e.dead || (anonymous && e.is_adult)))
    }

    /// Entries in ascending id order (the order `id_in` results come back in).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The franchises a generated world was built from (empty for a fixture world).
    pub fn franchises(&self) -> &[Franchise] {
        &self.franchises
    }

    pub fn giants(&self) -> impl Iterator<Item = &Franchise> {
        self.franchises
            .iter()
            .filter(|f| matches!(f.kind, FranchiseKind::Giant { .. }))
    }

    pub fn fan_outs(&self) -> impl Iterator<Item = &Franchise> {
        self.franchises
            .iter()
            .filter(|f| matches!(f.kind, FranchiseKind::FanOut { .. }))
    }

    /// Adds or replaces an entry; lets tests shape a world by hand.
    pub fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.id, entry);
    }

    /// Walks walkable relations from `root` (as the client would, ignoring visibility) and
    /// returns each reached id with its depth; tests compare this to `Franchise::members`.
    pub fn walk(&self, root: i32) -> BTreeMap<i32, usize> {
        let mut seen = BTreeMap::from([(root, 0usize)]);
        let mut frontier = vec![root];
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            let mut next = Vec::new();
            for id in frontier {
                let Some(entry) = self.entries.get(&id) else {
                    continue;
                };
                for rel in &entry.relations {
                    let is_anime = self
                        .get(rel.target)
                        .is_some_and(|t| t.media_type.as_deref() == Some("ANIME"));
                    if relation::walkable(&rel.relation_type)
                        && is_anime
                        && !seen.contains_key(&rel.target)
                    {
                        seen.insert(rel.target, depth);
                        next.push(rel.target);
                    }
                }
            }
            frontier = next;
        }
        seen
    }
}
