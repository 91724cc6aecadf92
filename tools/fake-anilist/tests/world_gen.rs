//! Generated worlds: deterministic, realistic sizes, giants, fan-out, inverse edges, links.

use std::collections::BTreeSet;

use fake_anilist::world::relation;
use fake_anilist::{FranchiseKind, World, WorldSpec};

fn spec() -> WorldSpec {
    WorldSpec::default()
        .seed(7)
        .franchises(200)
        .giant(300, 12)
        .fan_out(65)
}

#[test]
fn same_seed_same_world_other_seed_other_world() {
    let a = spec().build();
    let b = spec().build();
    assert_eq!(a.franchises(), b.franchises());
    assert!(a.entries().eq(b.entries()));
    let c = spec().seed(8).build();
    assert!(!a.entries().eq(c.entries()));
}

#[test]
fn franchise_sizes_follow_the_real_histogram() {
    let world = WorldSpec::default().seed(1).franchises(2501).build();
    let real = [
        (2, 2, 1287),
        (3, 5, 860),
        (6, 10, 228),
        (11, 25, 97),
        (26, 50, 22),
        (51, 100, 7),
    ];
    for (lo, hi, count) in real {
        let got = world
            .franchises()
            .iter()
            .filter(|f| (lo..=hi).contains(&f.members.len()))
            .count();
        assert!(got.abs_diff(count) <= 2, "{lo}-{hi}: {got} vs {count}");
    }
    let mean = world
        .franchises()
        .iter()
        .map(|f| f.members.len())
        .sum::<usize>() as f64
        / 2501.0;
    assert!((3.0..5.5).contains(&mean), "{mean}");
}

#[test]
fn each_franchise_walk_reaches_exactly_its_members() {
    let world = spec().build();
    for f in world.franchises() {
        let walked: BTreeSet<i32> = world.walk(f.root).keys().copied().collect();
        let members: BTreeSet<i32> = f.members.iter().copied().collect();
        assert_eq!(walked, members, "franchise rooted at {}", f.root);
        let root = world.get(f.root).unwrap();
        assert!(!root.dead && !root.is_adult);
    }
}

#[test]
fn giant_has_requested_size_and_depth() {
    let world = spec().build();
    let giant = world.giants().next().unwrap();
    assert_eq!(giant.kind, FranchiseKind::Giant { depth: 12 });
    assert_eq!(giant.members.len(), 300);
    let walk = world.walk(giant.root);
    assert_eq!(walk.len(), 300);
    assert_eq!(walk.values().max(), Some(&12));
    let formats: BTreeSet<_> = giant
        .members
        .iter()
        .filter_map(|id| world.get(*id)?.format.clone())
        .collect();
    assert!(
        formats.contains("MOVIE") && formats.contains("TV"),
        "{formats:?}"
    );
}

#[test]
fn fan_out_root_has_at_least_the_requested_edges() {
    let world = spec().build();
    let fan = world.fan_outs().next().unwrap();
    assert!(world.get(fan.root).unwrap().relations.len() >= 65);
}

#[test]
fn every_relation_has_its_inverse() {
    let world = spec().build();
    let mut checked = 0;
    for e in world.entries() {
        for r in &e.relations {
            let target = world
                .get(r.target)
                .unwrap_or_else(|| panic!("edge to missing {}", r.target));
            let back: Vec<&str> = target
                .relations
                .iter()
                .filter(|b| b.target == e.id)
                .map(|b| b.relation_type.as_str())
                .collect();
            match relation::inverse(&r.relation_type) {
                Some(inv) => assert!(
                    back.contains(&inv),
                    "{} {} {} lacks {inv}",
                    e.id,
                    r.relation_type,
                    r.target
                ),
                None => assert!(
                    back.iter()
                        .any(|b| ["SIDE_STORY", "SPIN_OFF", "SUMMARY"].contains(b)),
                    "PARENT {} -> {} has no child edge back",
                    e.id,
                    r.target
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn cross_links_manga_sources_dead_and_adult_ids_exist() {
    let world = spec().build();
    let franchise_of = |id: i32| {
        world
            .franchises()
            .iter()
            .position(|f| f.members.contains(&id))
    };
    let mut cross = BTreeSet::new();
    for e in world.entries() {
        for r in &e.relations {
            if ["CHARACTER", "OTHER"].contains(&r.relation_type.as_str()) {
                assert_ne!(franchise_of(e.id), franchise_of(r.target));
                cross.insert(r.relation_type.clone());
            }
        }
    }
    assert_eq!(cross.len(), 2, "{cross:?}");
    let manga: Vec<_> = world
        .entries()
        .filter(|e| e.media_type.as_deref() == Some("MANGA"))
        .collect();
    assert!(manga.len() > 50);
    assert!(
        manga
            .iter()
            .all(|m| m.relations.iter().all(|r| r.relation_type == "ADAPTATION"))
    );
    assert!(world.entries().any(|e| e.dead));
    assert!(world.entries().any(|e| e.is_adult));
}

#[test]
fn single_franchise_helper_has_a_source_and_a_character_link() {
    let world = World::single_franchise(60, 11);
    let f = &world.franchises()[0];
    assert_eq!(f.members.len(), 60);
    assert_eq!(world.walk(f.root).len(), 60);
    assert_eq!(f.sources.len(), 1);
    let other = &world.franchises()[1].members;
    let linked = f.members.iter().any(|id| {
        world
            .get(*id)
            .unwrap()
            .relations
            .iter()
            .any(|r| r.relation_type == "CHARACTER" && other.contains(&r.target))
    });
    assert!(linked);
    assert!(world.entries().all(|e| !e.dead && !e.is_adult));
}
