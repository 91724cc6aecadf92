//! `WorldSpec`: the recipe for a generated world (seed, how many franchises of which shapes).
//! Fields are public and every field has a chaining setter, so tests can write either style.

use super::World;

/// A giant franchise: `size` anime whose walk from the root is `depth` levels deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiantSpec {
    pub size: usize,
    pub depth: usize,
}

/// The same spec and seed always give the same world, ids included.
///
/// ```
/// use fake_anilist::world::WorldSpec;
/// let world = WorldSpec::default().seed(7).franchises(200).giant(300, 12).fan_out(65).build();
/// assert_eq!(world.giants().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WorldSpec {
    pub seed: u64,
    /// Franchises whose sizes follow the real histogram (2: 1,287 · 3–5: 860 · 6–10: 228 ·
    /// 11–25: 97 · 26–50: 22 · 51–100: 7), scaled so there are this many in all.
    pub franchises: usize,
    /// Extra ordinary franchises of exactly these sizes (generated before the histogram ones).
    pub sized: Vec<usize>,
    pub giants: Vec<GiantSpec>,
    /// Fan-out franchises: a hub anime with at least this many relation edges each.
    pub fan_outs: Vec<usize>,
    /// Chance that a franchise gets a CHARACTER or OTHER link to another franchise
    /// (3 of every 4 links are CHARACTER). Values above 1 add several links per franchise.
    pub cross_link_rate: f64,
    /// Chance that an ordinary franchise is adapted from a MANGA/NOVEL entry (giants and
    /// fan-outs always are).
    pub source_rate: f64,
    /// Chance that a leaf member (never a root) is deleted upstream.
    pub dead_rate: f64,
    /// Chance that a leaf member (never a root) is adult, hidden from anonymous requests.
    pub adult_rate: f64,
    /// The first id handed out; ids then count up in generation order.
    pub first_id: i32,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec {
            seed: 0,
            franchises: 200,
            sized: Vec::new(),
            giants: Vec::new(),
            fan_outs: Vec::new(),
            cross_link_rate: 0.3,
            source_rate: 0.6,
            dead_rate: 0.02,
            adult_rate: 0.02,
            first_id: 1,
        }
    }
}

impl WorldSpec {
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn franchises(mut self, n: usize) -> Self {
        self.franchises = n;
        self
    }
    pub fn sized(mut self, size: usize) -> Self {
        self.sized.push(size);
        self
    }
    pub fn giant(mut self, size: usize, depth: usize) -> Self {
        self.giants.push(GiantSpec { size, depth });
        self
    }
    pub fn fan_out(mut self, edges: usize) -> Self {
        self.fan_outs.push(edges);
        self
    }
    pub fn cross_link_rate(mut self, rate: f64) -> Self {
        self.cross_link_rate = rate;
        self
    }
    pub fn source_rate(mut self, rate: f64) -> Self {
        self.source_rate = rate;
        self
    }
    pub fn dead_rate(mut self, rate: f64) -> Self {
        self.dead_rate = rate;
        self
    }
    pub fn adult_rate(mut self, rate: f64) -> Self {
        self.adult_rate = rate;
        self
    }
    /// No dead or adult members, so every member of every franchise can be fetched.
    pub fn clean(self) -> Self {
        self.dead_rate(0.0).adult_rate(0.0)
    }
    pub fn first_id(mut self, id: i32) -> Self {
        self.first_id = id;
        self
    }

    pub fn build(&self) -> World {
        super::generate::generate(self)
    }
}

impl World {
    /// A clean world whose first franchise has exactly `size` anime, a MANGA source and a
    /// CHARACTER link to a second, 3-anime franchise.
    pub fn single_franchise(size: usize, seed: u64) -> World {
        WorldSpec::default()
            .seed(seed)
            .franchises(0)
            .sized(size)
            .sized(3)
            .cross_link_rate(1.0)
            .source_rate(1.0)
            .clean()
            .build()
    }
}
