//! Lays out one franchise's members and relations: an ordinary one, a giant one (long
//! sequel chain of a set walk depth) or a fan-out one (one hub with very many edges).

use rand::Rng;

use super::builder::{Family, Gen};
use super::{Franchise, FranchiseKind};

/// Relation kinds hung off an existing member, with the child's possible formats.
const HANGERS: [(f64, &str, &[&str], &str); 6] = [
    (
        0.45,
        "SIDE_STORY",
        &["MOVIE", "OVA", "SPECIAL", "ONA"],
        "Gaiden",
    ),
    (0.60, "SPIN_OFF", &["TV", "ONA", "TV_SHORT"], "Spin-off"),
    (0.70, "SUMMARY", &["SPECIAL", "MOVIE"], "Recap"),
    (0.80, "ALTERNATIVE", &["TV", "MOVIE"], "Remake"),
    (0.90, "COMPILATION", &["MOVIE"], "Compilation"),
    (1.00, "SEQUEL", &["MOVIE"], "Movie"),
];

fn chain_suffix(i: usize) -> String {
    if i == 0 {
        String::new()
    } else {
        format!("Season {}", i + 1)
    }
}

/// Adds one member related to `parent` by a randomly chosen kind; returns its id.
fn hang(g: &mut Gen, family: &Family, parent: i32, n: usize) -> i32 {
    let roll = g.rng.random::<f64>();
    let (_, rel, formats, suffix) = HANGERS
        .iter()
        .find(|h| roll < h.0)
        .copied()
        .unwrap_or(HANGERS[0]);
    let format = formats[g.rng.random_range(0..formats.len())];
    let child = g.anime(family, &format!("{suffix} {n}"), format, n);
    g.link(parent, rel, child);
    child
}

fn chain(g: &mut Gen, family: &Family, len: usize) -> Vec<i32> {
    let mut members: Vec<i32> = Vec::with_capacity(len);
    for i in 0..len {
        let id = g.anime(family, &chain_suffix(i), "TV", i);
        if let Some(&prev) = members.last() {
            g.link(prev, "SEQUEL", id);
        }
        members.push(id);
    }
    members
}

pub fn normal(g: &mut Gen, size: usize) -> Franchise {
    let size = size.max(1);
    let family = g.family();
    let chain_len = (1 + g.rng.random_range(0..=size / 2)).min(size);
    let mut members = chain(g, &family, chain_len);
    for n in chain_len..size {
        // Half the time hang off the main chain, otherwise off anything (side story of a movie).
        let pool = if g.chance(0.5) {
            chain_len
        } else {
            members.len()
        };
        let parent = members[g.rng.random_range(0..pool)];
        members.push(hang(g, &family, parent, n));
    }
    Franchise {
        root: members[0],
        members,
        sources: Vec::new(),
        kind: FranchiseKind::Normal,
    }
}

/// `depth` is clamped to 1..=size-1; the chain's last season is the one member that deep.
pub fn giant(g: &mut Gen, size: usize, depth: usize) -> Franchise {
    let size = size.max(1);
    let depth = if size == 1 {
        0
    } else {
        depth.clamp(1, size - 1)
    };
    let family = g.family();
    let mut members = chain(g, &family, depth + 1);
    let mut dist: Vec<usize> = (0..=depth).collect();
    // Members still shallower than `depth`, in index order (kept as they come, not filtered
    // again per member: that was quadratic, minutes for a 100k giant).
    let mut shallow: Vec<usize> = (0..members.len()).filter(|&i| dist[i] < depth).collect();
    for n in depth + 1..size {
        let parent_index = if g.chance(0.5) {
            g.rng.random_range(0..depth)
        } else {
            // Any member still shallower than `depth`; chain nodes guarantee one exists.
            shallow[g.rng.random_range(0..shallow.len())]
        };
        let child = hang(g, &family, members[parent_index], n);
        let child_dist = dist[parent_index] + 1;
        if child_dist < depth {
            shallow.push(members.len());
        }
        members.push(child);
        dist.push(child_dist);
    }
    Franchise {
        root: members[0],
        members,
        sources: Vec::new(),
        kind: FranchiseKind::Giant { depth },
    }
}

pub fn fan_out(g: &mut Gen, edges: usize) -> Franchise {
    let family = g.family();
    let hub = g.anime(&family, "", "TV", 0);
    let mut members = vec![hub];
    for n in 1..=edges {
        let child = if n == 1 {
            let id = g.anime(&family, &chain_suffix(1), "TV", 1);
            g.link(hub, "SEQUEL", id);
            id
        } else {
            hang(g, &family, hub, n)
        };
        members.push(child);
    }
    Franchise {
        root: hub,
        members,
        sources: Vec::new(),
        kind: FranchiseKind::FanOut { edges },
    }
}
