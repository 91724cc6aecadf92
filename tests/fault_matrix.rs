//! The fault matrix: imports against a misbehaving fake AniList. Every import finishes with
//! exactly the reachable data, or marks what it could not get as failed with a clear reason,
//! and no request ever arrives while the fake has us banned.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::run::{aid, anime_ids, builder, degraded, fake, items, settings, wait_done};
use fake_anilist::world::{FuzzyDate, Relation, Title};
use fake_anilist::{Entry, FakeAniList, Faults, Latency, RateModel, World, WorldSpec};
use franchise::SettingsBuilder;
use franchise::{ImportOptions, Importer};

/// Anime an anonymous client can reach from `root`: walkable edges, ANIME nodes, through
/// visible ones only (a dead or adult anime is asked for, found missing, and walked no further).
fn reachable(world: &World, root: i32) -> (BTreeSet<i64>, BTreeSet<i64>) {
    reachable_without_edges_of(world, root, None)
}

/// [`reachable`], with `cut`'s own relations left unfollowed (`cut` itself still reached).
fn reachable_without_edges_of(
    world: &World,
    root: i32,
    cut: Option<i32>,
) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let mut seen = BTreeSet::from([root]);
    let mut frontier = vec![root];
    let (mut visible, mut hidden) = (BTreeSet::new(), BTreeSet::new());
    while let Some(id) = frontier.pop() {
        let Some(entry) = world.get(id) else { continue };
        if entry.dead || entry.is_adult {
            hidden.insert(i64::from(id));
            continue;
        }
        visible.insert(i64::from(id));
        if Some(id) == cut {
            continue;
        }
        for rel in &entry.relations {
            let anime = world
                .get(rel.target)
                .is_some_and(|t| t.media_type.as_deref() == Some("ANIME"));
            if anime
                && fake_anilist::world::relation::walkable(&rel.relation_type)
                && seen.insert(rel.target)
            {
                frontier.push(rel.target);
            }
        }
    }
    (visible, hidden)
}

async fn import_under(
    world: World,
    rate: RateModel,
    latency: Latency,
    faults: Faults,
    tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
    limit: Duration,
) -> (FakeAniList, Importer, i64, tempfile::TempDir, i32) {
    let root = world.franchises()[0].root;
    let fake = fake(world, rate, latency, faults).await;
    let dir = tempfile::tempdir().unwrap();
    let s = tune(builder(dir.path(), &fake)).build().unwrap();
    let importer = Importer::open(s).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, id, limit).await;
    (fake, importer, id, dir, root)
}

/// The import got exactly the reachable anime; every hidden one failed as not found.
async fn assert_exact(importer: &Importer, fake: &FakeAniList, import_id: i64, root: i32) {
    let world = fake.world();
    let (visible, hidden) = reachable(&world, root);
    assert_eq!(anime_ids(importer).await, visible);
    for (id, state, reason) in items(importer, import_id).await {
        if hidden.contains(&id) {
            assert_eq!(state, "failed", "{id}");
            assert!(reason.unwrap_or_default().contains("not found"), "{id}");
        } else {
            assert_eq!(state, "done", "{id}: {reason:?}");
        }
    }
    assert_eq!(fake.stats().arrived_during_ban, 0);
}

fn forty() -> World {
    WorldSpec::default()
        .seed(31)
        .franchises(5)
        .giant(40, 6)
        .clean()
        .build()
}

#[tokio::test]
async fn twenty_percent_5xx_still_imports_everything() {
    let faults = Faults {
        seed: 2,
        fail_500: 0.1,
        fail_502: 0.1,
        ..Faults::default()
    };
    let (fake, importer, id, _dir, root) = import_under(
        forty(),
        degraded(),
        Latency::default(),
        faults,
        // One level per request: enough requests for the faults to fire (a 5xx on a deep
        // query would drop the walk to one level anyway).
        |s| s.walk_levels(1),
        Duration::from_secs(60),
    )
    .await;
    assert_exact(&importer, &fake, id, root).await;
    assert!(fake.stats().server_errors > 0, "the fault must have fired");
    importer.stop().await;
}

#[tokio::test]
async fn timeouts_are_retried_until_the_answer_lands() {
    let faults = Faults {
        seed: 3,
        timeout: 0.2,
        timeout_hold: Duration::from_secs(2),
        ..Faults::default()
    };
    let (fake, importer, id, _dir, root) = import_under(
        forty(),
        degraded(),
        Latency::default(),
        faults,
        |s| s.timeout_secs(0.5),
        Duration::from_secs(90),
    )
    .await;
    assert_exact(&importer, &fake, id, root).await;
    assert!(fake.stats().faults > 0);
    importer.stop().await;
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_retried() {
    let faults = Faults {
        seed: 4,
        truncate: 0.15,
        malformed: 0.1,
        ..Faults::default()
    };
    let (fake, importer, id, _dir, root) = import_under(
        forty(),
        degraded(),
        Latency::default(),
        faults,
        |s| s,
        Duration::from_secs(60),
    )
    .await;
    assert_exact(&importer, &fake, id, root).await;
    assert!(fake.stats().faults > 0);
    importer.stop().await;
}

#[tokio::test]
async fn a_429_storm_parks_everyone_and_nothing_arrives_during_any_ban() {
    // The fake allows 2 per 3 s window and bans for 1 s, far stricter than our 30/min budget
    // spent in bursts: a 429 every few requests of a 13-level walk.
    let storm = RateModel::degraded()
        .window(Duration::from_secs(3))
        .real_limit(2)
        .ban_secs(1);
    let deep = WorldSpec::default()
        .seed(32)
        .franchises(5)
        .giant(60, 12)
        .clean()
        .build();
    let (fake, importer, id, _dir, _root) = import_under(
        deep,
        storm,
        Latency::default(),
        Faults::default(),
        // One level per request: enough requests for a storm.
        |s| s.min_spacing_ms(100).walk_levels(1),
        Duration::from_secs(120),
    )
    .await;
    let stats = fake.stats();
    println!(
        "429 storm: {} requests, {} 429s",
        stats.requests, stats.rate_limited
    );
    assert!(
        stats.rate_limited >= 3,
        "a storm, not a shower: {}",
        stats.rate_limited
    );
    assert_eq!(stats.arrived_during_ban, 0);
    for (anime, state, reason) in items(&importer, id).await {
        assert!(
            state == "done" || reason.as_deref().unwrap_or_default().contains("rate limit"),
            "{anime}: {state} {reason:?}"
        );
    }
    importer.stop().await;
}

#[tokio::test]
async fn a_30_s_outage_makes_the_workers_back_off_as_one_then_resume() {
    let faults = Faults {
        seed: 5,
        outage_at: Some(Duration::from_millis(300)),
        outage_for: Duration::from_secs(30),
        ..Faults::default()
    };
    let latency = Latency::new(Duration::from_millis(100), Duration::ZERO);
    let (fake, importer, id, _dir, root) = import_under(
        forty(),
        degraded(),
        latency,
        faults,
        // One level per request: the import outlasts the outage's start.
        |s| s.outage_pause_secs(2.0, 60.0).walk_levels(1),
        Duration::from_secs(120),
    )
    .await;
    assert_exact(&importer, &fake, id, root).await;
    let stats = fake.stats();
    let outage_hits = stats.outages;
    println!(
        "30 s outage: {} requests, {outage_hits} answered 403",
        stats.requests
    );
    // Backing off as one: a few probes (2, 4, 8, 16 s pauses), not every worker hammering.
    assert!(
        (1..=8).contains(&outage_hits),
        "{outage_hits} requests hit the outage"
    );
    importer.stop().await;
}

#[tokio::test]
async fn ids_missing_from_id_in_answers_fail_as_not_found() {
    let world = WorldSpec::default()
        .seed(33)
        .franchises(5)
        .giant(60, 6)
        .dead_rate(0.1)
        .adult_rate(0.1)
        .build();
    let (fake, importer, id, _dir, root) = import_under(
        world,
        degraded(),
        Latency::default(),
        Faults::default(),
        |s| s,
        Duration::from_secs(60),
    )
    .await;
    let (_, hidden) = reachable(&fake.world(), root);
    assert!(!hidden.is_empty(), "the world must hide some ids");
    assert_exact(&importer, &fake, id, root).await;
    importer.stop().await;
}

#[tokio::test]
async fn a_65_edge_fan_out_is_stored_whole() {
    let world = WorldSpec::default()
        .seed(34)
        .franchises(0)
        .fan_out(65)
        .clean()
        .build();
    let root = world.fan_outs().next().unwrap().root;
    let edges = world.get(root).unwrap().relations.len();
    assert!(edges >= 65);
    let (fake, importer, id, _dir, _) = import_under(
        world,
        degraded(),
        Latency::default(),
        Faults::default(),
        |s| s,
        Duration::from_secs(60),
    )
    .await;
    assert_exact(&importer, &fake, id, root).await;
    let stored = importer.anime(aid(root)).await.unwrap().unwrap();
    assert_eq!(
        stored.relations.iter().filter(|r| !r.derived).count(),
        edges
    );
    importer.stop().await;
}

fn entry(id: i32, media_type: &str, relations: &[(&str, i32)]) -> Entry {
    Entry {
        id,
        media_type: Some(media_type.to_string()),
        format: Some(if media_type == "ANIME" { "TV" } else { "MANGA" }.to_string()),
        status: Some("FINISHED".to_string()),
        start_date: FuzzyDate::default(),
        title: Title {
            romaji: Some(format!("Hand-made {id}")),
            ..Title::default()
        },
        relations: relations
            .iter()
            .enumerate()
            .map(|(i, (rel, target))| Relation {
                edge_id: id * 100 + i as i32,
                relation_type: rel.to_string(),
                target: *target,
            })
            .collect(),
        ..Entry::default()
    }
}

fn hand_made(entries: Vec<Entry>) -> World {
    let mut world = World::default();
    for e in entries {
        world.insert(e);
    }
    world
}

async fn import_root(world: World, root: i32) -> (FakeAniList, Importer, i64, tempfile::TempDir) {
    let fake = fake(world, degraded(), Latency::default(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, id, Duration::from_secs(30)).await;
    (fake, importer, id, dir)
}

#[tokio::test]
async fn relation_cycles_and_self_relations_end_the_walk() {
    // 1 → 2 → 3 → 1 in a SEQUEL cycle, 2 its own ALTERNATIVE, 3 SIDE_STORY of itself.
    let world = hand_made(vec![
        entry(1, "ANIME", &[("SEQUEL", 2), ("PREQUEL", 3)]),
        entry(
            2,
            "ANIME",
            &[("PREQUEL", 1), ("SEQUEL", 3), ("ALTERNATIVE", 2)],
        ),
        entry(
            3,
            "ANIME",
            &[("PREQUEL", 2), ("SEQUEL", 1), ("SIDE_STORY", 3)],
        ),
    ]);
    let (fake, importer, id, _dir) = import_root(world, 1).await;
    assert_eq!(anime_ids(&importer).await, BTreeSet::from([1, 2, 3]));
    // The walk of several levels per request takes the cycle from the root's answer: no id is
    // asked twice, and the walk ends.
    let asked: Vec<i32> = fake
        .stats()
        .log
        .iter()
        .flat_map(|e| e.ids.clone())
        .collect();
    assert_eq!(
        asked.iter().collect::<BTreeSet<_>>().len(),
        asked.len(),
        "each asked once at most: {asked:?}"
    );
    let mut relations = importer.relations(aid(2)).await.unwrap();
    relations.extend(importer.relations(aid(3)).await.unwrap());
    assert!(
        relations
            .iter()
            .any(|r| r.from == aid(2) && r.to == aid(2) && r.relation_type == "ALTERNATIVE")
    );
    assert!(
        relations
            .iter()
            .any(|r| r.from == aid(3) && r.to == aid(3) && !r.derived)
    );
    let members = importer.franchise(aid(2)).await.unwrap().unwrap();
    assert_eq!(members.anime.len(), 3);
    let p = &importer.progress(id).await.unwrap();
    assert_eq!((p.discovered, p.done), (3, 3));
    importer.stop().await;
}

#[tokio::test]
async fn manga_only_neighbours_are_stored_as_edges_and_never_fetched() {
    let world = hand_made(vec![
        entry(
            1,
            "ANIME",
            &[("SOURCE", 500), ("ADAPTATION", 501), ("SPIN_OFF", 502)],
        ),
        entry(500, "MANGA", &[("ADAPTATION", 1)]),
        entry(501, "MANGA", &[("SOURCE", 1)]),
        entry(502, "MANGA", &[("PARENT", 1)]),
    ]);
    let (fake, importer, id, _dir) = import_root(world, 1).await;
    assert_eq!(anime_ids(&importer).await, BTreeSet::from([1]));
    let asked: BTreeMap<i32, usize> =
        fake.stats()
            .log
            .iter()
            .flat_map(|e| e.ids.clone())
            .fold(BTreeMap::new(), |mut m, id| {
                *m.entry(id).or_default() += 1;
                m
            });
    assert_eq!(
        asked,
        BTreeMap::from([(1, 1)]),
        "no MANGA id is ever asked for"
    );
    let stored = importer.anime(aid(1)).await.unwrap().unwrap();
    assert_eq!(stored.relations.len(), 3);
    assert!(stored.relations.iter().all(|r| r.to_kind == "MANGA"));
    let p = &importer.progress(id).await.unwrap();
    assert_eq!((p.discovered, p.done), (1, 1));
    importer.stop().await;
}

/// A member of the giant whose own relations the rest of the walk does not need: with its
/// record failing, every other member is still reached. The deepest such one, so a walk of
/// several levels meets it nested in its parents' answers as well as asked for by itself.
fn a_member_nothing_hangs_on(world: &World, giant: &fake_anilist::Franchise) -> i32 {
    let (all, _) = reachable(world, giant.root);
    *giant
        .members
        .iter()
        .rev()
        .find(|&&m| {
            m != giant.root && reachable_without_edges_of(world, giant.root, Some(m)).0 == all
        })
        .expect("a giant has leaves")
}

/// One poisoned record in a 478-anime import: it alone fails (as a malformed answer, not as
/// "not found"), and the other 477 are stored. Walks of several levels (the default) meet it
/// nested in other answers too.
async fn one_poisoned_record_fails_alone(poison: fake_anilist::Poison) {
    let world = WorldSpec::default()
        .seed(11)
        .franchises(2)
        .giant(478, 11)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().clone();
    let bad = a_member_nothing_hangs_on(&world, &giant);
    let fake = FakeAniList::start(fake_anilist::FakeConfig {
        world,
        rate: RateModel::disabled(),
        poison: BTreeMap::from([(bad, poison)]),
        ..fake_anilist::FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(giant.root), &ImportOptions::default())
        .await
        .unwrap();
    let progress = wait_done(&importer, id, Duration::from_secs(120)).await;
    let (visible, _) = reachable(&fake.world(), giant.root);
    assert_eq!(visible.len(), 478);
    let mut expected = visible.clone();
    expected.remove(&i64::from(bad));
    assert_eq!(anime_ids(&importer).await, expected, "{poison:?} on {bad}");
    assert_eq!((progress.done, progress.failed), (477, 1), "{poison:?}");
    for (anime, state, reason) in items(&importer, id).await {
        if anime == i64::from(bad) {
            assert_eq!(state, "failed");
            let reason = reason.unwrap_or_default();
            assert!(reason.contains("malformed"), "{poison:?}: {reason}");
            assert!(!reason.contains("not found"), "{poison:?}: {reason}");
        } else {
            assert_eq!(state, "done", "{anime}: {reason:?}");
        }
    }
    importer.stop().await;
}

#[tokio::test]
async fn a_relation_to_id_minus_5_fails_only_its_record() {
    one_poisoned_record_fails_alone(fake_anilist::Poison::NegativeRelation).await;
}

#[tokio::test]
async fn a_title_that_is_a_number_fails_only_its_record() {
    one_poisoned_record_fails_alone(fake_anilist::Poison::NumberTitle).await;
}

#[tokio::test]
async fn relations_null_fails_its_record_and_is_not_a_franchise_that_ends_there() {
    one_poisoned_record_fails_alone(fake_anilist::Poison::RelationsNull).await;
}

#[tokio::test]
async fn a_graphql_partial_error_settles_each_id_by_what_came_back() {
    one_poisoned_record_fails_alone(fake_anilist::Poison::PartialError).await;
}

/// `{"data": null}` and `relations: null` are not facts about an anime: its item fails as a
/// malformed answer (never "not found", which is remembered for a day), and importing it again
/// asks AniList again.
#[tokio::test]
async fn data_null_and_relations_null_fail_the_item_and_a_reimport_asks_again() {
    let world = WorldSpec::default().seed(12).franchises(6).clean().build();
    let roots: Vec<i32> = world.franchises().iter().map(|f| f.root).collect();
    let (by_data, by_relations) = (roots[0], roots[1]);
    let fake = FakeAniList::start(fake_anilist::FakeConfig {
        world,
        rate: RateModel::disabled(),
        poison: BTreeMap::from([
            (by_data, fake_anilist::Poison::DataNull),
            (by_relations, fake_anilist::Poison::RelationsNull),
        ]),
        ..fake_anilist::FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).max_attempts(2).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    for root in [by_data, by_relations] {
        let mut asked = Vec::new();
        for _ in 0..2 {
            let id = importer
                .import(aid(root), &ImportOptions::default())
                .await
                .unwrap();
            let progress = wait_done(&importer, id, Duration::from_secs(60)).await;
            assert_eq!((progress.done, progress.failed), (0, 1), "{root}");
            let (_, state, reason) = items(&importer, id).await.remove(0);
            let reason = reason.unwrap_or_default();
            assert_eq!(state, "failed");
            assert!(reason.contains("malformed"), "{root}: {reason}");
            assert!(!reason.contains("not found"), "{root}: {reason}");
            asked.push(
                fake.stats()
                    .log
                    .iter()
                    .filter(|e| e.ids.contains(&root))
                    .count(),
            );
        }
        assert!(
            asked[0] >= 1 && asked[1] > asked[0],
            "{root}: asked {asked:?}"
        );
    }
    assert!(anime_ids(&importer).await.is_empty());
    importer.stop().await;
}

/// "Now", an hour ahead of this machine's clock: another process on a machine whose clock
/// ran fast, or this one before its clock was stepped back.
#[derive(Debug)]
struct HourAhead;

impl franchise::Clock for HourAhead {
    fn now_ms(&self) -> i64 {
        franchise::SystemClock.now_ms() + 3_600_000
    }
}

/// Two fetches stamped by a clock an hour ahead leave their send times in the shared budget;
/// the next process, on the real clock, still makes its requests at once (it used to make none
/// for the hour), and its import finishes exactly.
#[tokio::test]
async fn a_budget_stamped_an_hour_ahead_does_not_stall_the_next_process() {
    let fake = fake(forty(), degraded(), Latency::default(), Faults::default()).await;
    let root = fake.world().franchises()[0].root;
    let dir = tempfile::tempdir().unwrap();
    let ahead = Importer::builder(builder(dir.path(), &fake).build().unwrap())
        .clock(std::sync::Arc::new(HourAhead))
        .open()
        .await
        .unwrap();
    for _ in 0..2 {
        ahead.fetch(&[aid(root)]).await.unwrap();
    }
    ahead.close().await;
    let before = fake.stats().requests;
    assert_eq!(before, 2);

    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    let started = std::time::Instant::now();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    while fake.stats().requests == before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no request within 5 s on the real clock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "after two sends stamped an hour ahead, the real clock's first request went in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_exact(&importer, &fake, id, root).await;
    importer.stop().await;
}
