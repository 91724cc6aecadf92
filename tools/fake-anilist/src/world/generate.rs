//! Turns a `WorldSpec` into a world: apportions the real size histogram, lays out each
//! franchise, then adds sources, cross-franchise links, dead and adult members.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::builder::{Family, Gen};
use super::{Franchise, FranchiseKind, World, WorldSpec, relation, shapes};

/// Real AniList franchise-size histogram: (smallest, largest, count).
pub const HISTOGRAM: [(usize, usize, usize); 6] = [
    (2, 2, 1287),
    (3, 5, 860),
    (6, 10, 228),
    (11, 25, 97),
    (26, 50, 22),
    (51, 100, 7),
];

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
