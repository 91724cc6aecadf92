//! Turns a `WorldSpec` into a world: apportions the real size histogram, lays out each
//! franchise, then adds sources, cross-franchise links, dead and adult members.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{
    Entry, Franchise, FranchiseKind, FuzzyDate, Relation, Title, World, WorldSpec, relation, shapes,
};

/// Real AniList franchise-size histogram: (smallest, largest, count).
pub const HISTOGRAM: [(usize, usize, usize); 6] = [
    (2, 2, 1287),
    (3, 5, 860),
    (6, 10, 228),
    (11, 25, 97),
    (26, 50, 22),
    (51, 100, 7),
];

const SEASONS: [&str; 4] = ["WINTER", "SPRING", "SUMMER", "FALL"];
const SYLLABLES: [&str; 16] = [
    "ka", "ze", "no", "so", "ra", "hi", "mi", "tsu", "ki", "yo", "ru", "ma", "ho", "shi", "ne",
    "ta",
];
const KANA: [&str; 16] = [
    "カ", "ゼ", "ノ", "ソ", "ラ", "ヒ", "ミ", "ツ", "キ", "ヨ", "ル", "マ", "ホ", "シ", "ネ", "タ",
];

/// Mutable state while building: the rng, id counters and the entries so far.
pub struct Gen {
    pub rng: ChaCha8Rng,
    pub entries: BTreeMap<i32, Entry>,
    next_id: i32,
    next_edge: i32,
    cross_links: usize,
}

/// The naming and dating a franchise's members share.
pub struct Family {
    pub romaji: String,
    pub native: String,
    pub english: Option<String>,
    pub year: i32,
}

impl Gen {
    pub fn family(&mut self) -> Family {
        let words = self.rng.random_range(2..=3);
        let (mut romaji, mut native) = (String::new(), String::new());
        for w in 0..words {
            if w > 0 {
                romaji.push(' ');
            }
            for s in 0..self.rng.random_range(2..=3) {
                let i = self.rng.random_range(0..SYLLABLES.len());
                let syl = SYLLABLES[i];
                if s == 0 {
                    romaji.extend(syl.chars().take(1).flat_map(char::to_uppercase));
                    romaji.push_str(&syl[1..]);
                } else {
                    romaji.push_str(syl);
                }
                native.push_str(KANA[i]);
            }
        }
        let english = (self.rng.random::<f64>() < 0.6).then(|| format!("The {romaji}"));
        Family {
            romaji,
            native,
            english,
            year: self.rng.random_range(1975..=2024),
        }
    }

    /// A new ANIME entry; `n` orders it within the family (later ones start later).
    pub fn anime(&mut self, family: &Family, suffix: &str, format: &str, n: usize) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let year = family.year + (n as i32) / 2;
        let unreleased = year > 2025 || self.rng.random::<f64>() < 0.02;
        let season_i = self.rng.random_range(0..4);
        let episodes = match format {
            "TV" => [12, 13, 24, 25, 26][self.rng.random_range(0..5)],
            "TV_SHORT" => 12,
            "ONA" => self.rng.random_range(6..=13),
            "OVA" => self.rng.random_range(1..=6),
            "SPECIAL" => self.rng.random_range(1..=3),
            _ => 1,
        };
        let romaji = if suffix.is_empty() {
            family.romaji.clone()
        } else {
            format!("{} {suffix}", family.romaji)
        };
        let entry = Entry {
            id,
            id_mal: (self.rng.random::<f64>() < 0.85).then_some(id + 30_000),
            media_type: Some("ANIME".into()),
            format: Some(format.into()),
            status: Some(
                if unreleased {
                    "NOT_YET_RELEASED"
                } else {
                    "FINISHED"
                }
                .into(),
            ),
            episodes: (!unreleased).then_some(episodes),
            season: (!unreleased).then(|| SEASONS[season_i].to_string()),
            season_year: (!unreleased).then_some(year),
            start_date: if unreleased {
                FuzzyDate::default()
            } else {
                FuzzyDate {
                    year: Some(year),
                    month: Some(season_i as i32 * 3 + 1),
                    day: Some(self.rng.random_range(1..=28)),
                }
            },
            title: Title {
                user_preferred: Some(romaji.clone()),
                romaji: Some(romaji),
                english: family
                    .english
                    .as_ref()
                    .map(|e| format!("{e} {suffix}").trim().to_string()),
                native: Some(format!("{}{}", family.native, n + 1)),
            },
            is_adult: false,
            dead: false,
            relations: Vec::new(),
        };
        self.entries.insert(id, entry);
        id
    }

    /// A MANGA-type source entry (format MANGA or NOVEL).
    pub fn source(&mut self, family: &Family) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let format = if self.rng.random::<f64>() < 0.8 {
            "MANGA"
        } else {
            "NOVEL"
        };
        let entry = Entry {
            id,
            id_mal: Some(id + 60_000),
            media_type: Some("MANGA".into()),
            format: Some(format.into()),
            status: Some("FINISHED".into()),
            start_date: FuzzyDate {
                year: Some(family.year - 2),
                month: None,
                day: None,
            },
            title: Title {
                romaji: Some(family.romaji.clone()),
                english: family.english.clone(),
                native: Some(family.native.clone()),
                user_preferred: Some(family.romaji.clone()),
            },
            ..Entry::default()
        };
        self.entries.insert(id, entry);
        id
    }

    /// Adds `from -rel-> to` and the inverse edge AniList would show on `to`.
    pub fn link(&mut self, from: i32, rel: &str, to: i32) {
        self.edge(from, rel, to);
        if let Some(inv) = relation::inverse(rel) {
            self.edge(to, inv, from);
        }
    }

    fn edge(&mut self, from: i32, rel: &str, to: i32) {
        let edge_id = self.next_edge;
        self.next_edge += 1;
        if let Some(e) = self.entries.get_mut(&from) {
            e.relations.push(Relation {
                edge_id,
                relation_type: rel.to_string(),
                target: to,
            });
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }
}

/// Sizes for `n` franchises, apportioned over the histogram by largest remainder, shuffled.
fn histogram_sizes(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let total: usize = HISTOGRAM.iter().map(|b| b.2).sum();
    let mut counts: Vec<(usize, usize)> = HISTOGRAM
        .iter()
        .enumerate()
        .map(|(i, b)| (i, n.saturating_mul(b.2) / total))
        .collect();
    let mut remainders: Vec<(usize, usize)> = HISTOGRAM
        .iter()
        .enumerate()
        .map(|(i, b)| (n.saturating_mul(b.2) % total, i))
        .collect();
    remainders.sort_by(|a, b| b.cmp(a));
    let missing = n.saturating_sub(counts.iter().map(|c| c.1).sum::<usize>());
    for (_, i) in remainders.into_iter().take(missing) {
        counts[i].1 += 1;
    }
    let mut sizes = Vec::with_capacity(n);
    for (i, count) in counts {
        let (lo, hi, _) = HISTOGRAM[i];
        for _ in 0..count {
            sizes.push(rng.random_range(lo..=hi));
        }
    }
    sizes.shuffle(rng);
    sizes
}

pub fn generate(spec: &WorldSpec) -> World {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
        entries: BTreeMap::new(),
        next_id: spec.first_id,
        next_edge: 1,
        cross_links: 0,
    };
    let mut franchises = Vec::new();
    for giant in &spec.giants {
        franchises.push(shapes::giant(&mut g, giant.size, giant.depth));
    }
    for &edges in &spec.fan_outs {
        franchises.push(shapes::fan_out(&mut g, edges));
    }
    let mut sizes = spec.sized.clone();
    sizes.extend(histogram_sizes(spec.franchises, &mut g.rng));
    for size in sizes {
        franchises.push(shapes::normal(&mut g, size));
    }
    for f in &mut franchises {
        let always = !matches!(f.kind, FranchiseKind::Normal);
        if always || g.chance(spec.source_rate) {
            add_source(&mut g, f);
        }
    }
    add_cross_links(&mut g, &franchises, spec.cross_link_rate);
    mark_leaves(&mut g, &franchises, spec.dead_rate, spec.adult_rate);
    World::new(g.entries.into_values(), franchises)
}

fn add_source(g: &mut Gen, f: &mut Franchise) {
    let Some(root) = g.entries.get(&f.root) else {
        return;
    };
    let family = Family {
        romaji: root.title.romaji.clone().unwrap_or_default(),
        native: root.title.native.clone().unwrap_or_default(),
        english: root.title.english.clone(),
        year: root.start_date.year.unwrap_or(2000),
    };
    let source = g.source(&family);
    f.sources.push(source);
    g.link(f.root, "SOURCE", source);
    for &m in f.members.iter().skip(1) {
        let is_tv = g
            .entries
            .get(&m)
            .is_some_and(|e| e.format.as_deref() == Some("TV"));
        if is_tv && g.chance(0.5) {
            g.link(m, "SOURCE", source);
        }
    }
}

fn add_cross_links(g: &mut Gen, franchises: &[Franchise], rate: f64) {
    if franchises.len() < 2 || rate <= 0.0 {
        return;
    }
    for (i, f) in franchises.iter().enumerate() {
        let mut budget = rate;
        while budget > 0.0 {
            let take = g.chance(budget.min(1.0));
            budget -= 1.0;
            if !take {
                continue;
            }
            let mut j = g.rng.random_range(0..franchises.len() - 1);
            if j >= i {
                j += 1;
            }
            let a = f.members[g.rng.random_range(0..f.members.len())];
            let other = &franchises[j].members;
            let b = other[g.rng.random_range(0..other.len())];
            let rel = if g.cross_links % 4 == 3 {
                "OTHER"
            } else {
                "CHARACTER"
            };
            g.cross_links += 1;
            g.link(a, rel, b);
        }
    }
}

/// Only leaves (one walkable edge) become dead or adult, so a franchise stays connected.
fn mark_leaves(g: &mut Gen, franchises: &[Franchise], dead_rate: f64, adult_rate: f64) {
    for f in franchises {
        for &m in f.members.iter().skip(1) {
            let walkable = g.entries.get(&m).map_or(0, |e| {
                e.relations
                    .iter()
                    .filter(|r| relation::walkable(&r.relation_type))
                    .count()
            });
            if walkable != 1 {
                continue;
            }
            let dead = g.chance(dead_rate);
            let adult = g.chance(adult_rate);
            if let Some(e) = g.entries.get_mut(&m) {
                e.dead = dead;
                e.is_adult = adult && !dead;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_apportionment_sums_to_n() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [0, 1, 7, 200, 2501, 5000] {
            assert_eq!(histogram_sizes(n, &mut rng).len(), n);
        }
    }
}
