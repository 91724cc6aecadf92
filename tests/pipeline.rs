//! The whole pipeline in-process: producer → redb queue → workers → batcher → flusher →
//! SQLite, against the fake AniList over loopback, on real files.

mod common;

use common::run::{aid, anime_ids, degraded, settings, wait_done};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_anilist::{Faults, Latency, RateModel, World, WorldSpec};
use franchise::RelationType;
use franchise::{ImportOptions, Importer};
use sqlx::Row;

/// Every relation row in the store: (from, to, type, derived).
async fn relation_rows(importer: &Importer) -> BTreeSet<(i64, i64, String, bool)> {
    sqlx::query("SELECT anime_id, related_id, relation_type, derived FROM anime_relation")
        .fetch_all(&common::run::pool(importer).await)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<i64, _>(3) != 0))
        .collect()
}

/// The rows the design's rules produce from the world for the anime in `fetched`: every edge
/// observed, plus a derived inverse for an anime end that was not itself fetched.
fn expected_rows(world: &World, fetched: &BTreeSet<i64>) -> BTreeSet<(i64, i64, String, bool)> {
    let mut rows = BTreeSet::new();
    for id in fetched {
        let entry = world.get(*id as i32).unwrap();
        for rel in &entry.relations {
            let target = i64::from(rel.target);
            rows.insert((*id, target, rel.relation_type.clone(), false));
            let target_is_anime = world
                .get(rel.target)
                .is_some_and(|t| t.media_type.as_deref() == Some("ANIME"));
            let inverse = RelationType::parse(&rel.relation_type).inverse();
            if let (true, false, Some(inverse)) =
                (target_is_anime, fetched.contains(&target), inverse)
            {
                rows.insert((target, *id, inverse.as_str().to_string(), true));
            }
        }
    }
    rows
}

#[tokio::test]
async fn a_sixty_anime_franchise_stores_exactly_what_the_walk_reaches_and_again_costs_nothing() {
    let world = World::single_franchise(60, 3);
    let root = world.franchises()[0].root;
    let walk = world.walk(root);
    let reach: BTreeSet<i64> = walk.keys().map(|id| i64::from(*id)).collect();
    assert_eq!(reach.len(), 60);
    // A long chain: the default depth cap (50) must not cut this franchise.
    assert!(walk.values().max().is_some_and(|d| *d > 25));
    let expected = expected_rows(&world, &reach);
    // The franchise has a CHARACTER link to another franchise and a MANGA source: both are
    // stored as edges, neither is walked.
    assert!(expected.iter().any(|r| r.2 == "CHARACTER" && !r.3));
    assert!(expected.iter().any(|r| r.2 == "SOURCE"));

    let fake = common::run::fake(
        world.clone(),
        degraded(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    let import_id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, import_id, Duration::from_secs(60)).await;

    assert_eq!(anime_ids(&importer).await, reach);
    assert_eq!(relation_rows(&importer).await, expected);
    let progress = &importer.progress(import_id).await.unwrap();
    assert_eq!(
        (progress.discovered, progress.done, progress.failed),
        (60, 60, 0)
    );
    let served = fake.stats();
    assert_eq!(served.rate_limited, 0);
    // No id was asked twice, and none outside the franchise. The default walk goes several
    // levels per request, so most anime come whole in a relation's answer, never asked for.
    let asked: Vec<i32> = served.log.iter().flat_map(|e| e.ids.clone()).collect();
    let distinct: BTreeSet<i64> = asked.iter().map(|id| i64::from(*id)).collect();
    assert_eq!(asked.len(), distinct.len(), "an id asked twice: {asked:?}");
    assert!(distinct.is_subset(&reach));
    assert!(asked.len() < 60, "{} ids asked", asked.len());

    // Again, while fresh: zero requests, the same rows, an import that is done at once.
    let rows_before = relation_rows(&importer).await;
    let again = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, again, Duration::from_secs(5)).await;
    assert_eq!(fake.stats().requests, served.requests);
    assert_eq!(relation_rows(&importer).await, rows_before);
    let progress = &importer.progress(again).await.unwrap();
    assert_eq!((progress.discovered, progress.done), (60, 60));
    importer.stop().await;
}

#[tokio::test]
async fn depth_and_size_caps_hold() {
    let world = World::single_franchise(60, 5);
    let root = world.franchises()[0].root;
    let walk = world.walk(root);
    let fake = common::run::fake(
        world,
        RateModel::disabled(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();

    let shallow = ImportOptions::default().with_max_depth(2);
    let id = importer.import(aid(root), &shallow).await.unwrap();
    wait_done(&importer, id, Duration::from_secs(30)).await;
    let within: BTreeSet<i64> = walk
        .iter()
        .filter(|(_, depth)| **depth <= 2)
        .map(|(id, _)| i64::from(*id))
        .collect();
    assert!(within.len() < 60, "the cap must cut something");
    assert_eq!(anime_ids(&importer).await, within);

    let small = ImportOptions::default()
        .with_max_items(10)
        .with_force_refresh(true);
    let id = importer.import(aid(root), &small).await.unwrap();
    wait_done(&importer, id, Duration::from_secs(30)).await;
    let p = &importer.progress(id).await.unwrap();
    assert_eq!((p.discovered, p.done), (10, 10));
    importer.stop().await;
}

#[tokio::test]
async fn a_300_anime_franchise_costs_one_request_per_50_ids_per_level() {
    let world = WorldSpec::default()
        .seed(12)
        .franchises(20)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let walk = world.walk(giant);
    assert_eq!(walk.len(), 300);
    let mut levels: BTreeMap<usize, usize> = BTreeMap::new();
    for depth in walk.values() {
        *levels.entry(*depth).or_default() += 1;
    }
    let bound: usize = levels.values().map(|n| n.div_ceil(50)).sum();

    let fake = common::run::fake(world, degraded(), Latency::default(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(giant), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, id, Duration::from_secs(60)).await;
    let stats = fake.stats();
    println!(
        "300-anime import: {} requests, bound Σ⌈level/50⌉ = {bound} over {} levels, ids per request {:?}",
        stats.requests,
        levels.len(),
        stats.ids_per_request
    );
    assert!(
        stats.requests as usize <= bound + 3,
        "{} requests for a bound of {bound}",
        stats.requests
    );
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(anime_ids(&importer).await.len(), 300);
    importer.stop().await;
}

#[tokio::test]
async fn a_click_during_a_300_anime_import_rides_the_very_next_request() {
    let world = WorldSpec::default()
        .seed(13)
        .franchises(30)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let other = world
        .franchises()
        .iter()
        .find(|f| f.root != giant)
        .map(|f| *f.members.last().unwrap())
        .unwrap();
    let latency = Latency::new(Duration::from_millis(150), Duration::from_millis(30));
    let fake = common::run::fake(world, degraded(), latency, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(giant), &ImportOptions::default())
        .await
        .unwrap();
    // Let the import get going, then click.
    while fake.stats().requests < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = fake.stats().log.len();
    let clicked = tokio::time::Instant::now();
    let anime = importer.open_anime(aid(other)).await.unwrap();
    let waited = clicked.elapsed();
    assert_eq!(anime.id, aid(other));
    let log = fake.stats().log;
    let carried = log.iter().position(|e| e.ids.contains(&other)).unwrap();
    println!(
        "click answered in {waited:?}; request #{carried} carried it, {before} had arrived before the click"
    );
    assert!(
        carried <= before,
        "the click went in request {carried}, not the next one ({before})"
    );
    // About one round trip (150 ± 30 ms) plus one budget slot, far from the import's length.
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    wait_done(&importer, id, Duration::from_secs(60)).await;
    importer.stop().await;
}

#[tokio::test]
async fn a_forced_429_parks_every_worker_and_nothing_arrives_during_the_ban() {
    let world = WorldSpec::default()
        .seed(14)
        .franchises(10)
        .giant(150, 10)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let latency = Latency::new(Duration::from_millis(20), Duration::ZERO);
    let fake = common::run::fake(world, degraded().ban_secs(1), latency, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(giant), &ImportOptions::default())
        .await
        .unwrap();
    while fake.stats().requests < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.force_rate_limit();
    wait_done(&importer, id, Duration::from_secs(60)).await;
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.arrived_during_ban, 0);
    let limited = stats
        .log
        .iter()
        .position(|e| e.status == Some(429))
        .unwrap();
    if let Some(next) = stats.log.get(limited + 1) {
        assert!(next.at_ms - stats.log[limited].at_ms >= 1_000);
    }
    let p = &importer.progress(id).await.unwrap();
    assert_eq!((p.done, p.failed), (150, 0));
    importer.stop().await;
}

#[tokio::test]
async fn overlapping_imports_of_one_franchise_ask_for_each_anime_about_once() {
    let world = WorldSpec::default()
        .seed(14)
        .franchises(5)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap();
    let walk = world.walk(giant.root);
    let fake = common::run::fake(
        world.clone(),
        RateModel::disabled(),
        Latency::new(Duration::from_millis(50), Duration::ZERO),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(settings(dir.path(), &fake)).await.unwrap();
    importer.start().await.unwrap();
    // Ten imports of the same giant at once, and two more from other roots of it.
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            importer
                .import(aid(giant.root), &ImportOptions::default())
                .await
                .unwrap(),
        );
    }
    for member in giant.members.iter().skip(100).take(2) {
        ids.push(
            importer
                .import(aid(*member), &ImportOptions::default())
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        let p = wait_done(&importer, *id, Duration::from_secs(120)).await;
        assert_eq!((p.done, p.failed), (300, 0), "import {id}: {p:?}");
    }
    let asked: usize = fake.stats().log.iter().map(|e| e.ids.len()).sum();
    println!(
        "12 overlapping imports of a {}-anime franchise asked for {asked} ids ({:.2}× one walk)",
        walk.len(),
        asked as f64 / walk.len() as f64
    );
    assert!(
        asked as f64 <= 1.1 * walk.len() as f64,
        "{asked} ids asked for a {}-anime franchise",
        walk.len()
    );
    importer.close().await;
}

/// An importer on a fresh data dir, walking `levels` levels per request (`None`: the adaptive
/// default) against `fake`, with an import of `root` run to its end.
async fn import_walking(
    fake: &fake_anilist::FakeAniList,
    dir: &std::path::Path,
    root: i32,
    levels: Option<i64>,
) -> (Importer, franchise::ImportProgress) {
    let builder = common::run::builder(dir, fake);
    let settings = match levels {
        Some(levels) => builder.walk_levels(levels),
        None => builder,
    }
    .build()
    .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let progress = wait_done(&importer, id, Duration::from_secs(60)).await;
    (importer, progress)
}

/// One import of `root` with `levels` levels of relations per request, against a fake that
/// serves nested relations: the anime and relation rows stored, the fake's stats, and the
/// import's progress.
async fn walk_with_levels(
    world: &World,
    root: i32,
    levels: i64,
) -> (
    BTreeSet<i64>,
    BTreeSet<(i64, i64, String, bool)>,
    fake_anilist::Stats,
    franchise::ImportProgress,
) {
    // The fake serves relations nested 4 levels deep by default.
    let fake = common::run::fake(
        world.clone(),
        degraded(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (importer, progress) = import_walking(&fake, dir.path(), root, Some(levels)).await;
    // A forced refresh walks the same way: what a deeper answer brought is not asked again.
    let first_stats = fake.stats();
    let first = first_stats.requests;
    // The jobs the queue has finished once it is quiet: an import is `done` when its last item
    // settles in SQL, which can be a moment before the queue acknowledges that item's job.
    let jobs = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = importer
                .status(&franchise::ImportFilter::all())
                .await
                .unwrap();
            let lane = status.queue.unwrap().background;
            if lane.pending + lane.running == 0 {
                return lane.done + lane.failed;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never went quiet: {lane:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let jobs_before = jobs().await;
    let forced = ImportOptions::default().with_force_refresh(true);
    let again = importer.import(aid(root), &forced).await.unwrap();
    let refreshed = wait_done(&importer, again, Duration::from_secs(60)).await;
    let forced_jobs = jobs().await - jobs_before;
    println!("walk_levels={levels}: the forced refresh ran {forced_jobs} jobs");
    // Anime a deeper answer brought are walked through in the same commit, even by a forced
    // refresh: they get no job of their own (one level at a time, every anime has one).
    if levels == 1 {
        assert_eq!(forced_jobs, 300);
    } else {
        assert!(
            forced_jobs < 300,
            "walk_levels={levels}: {forced_jobs} jobs"
        );
    }
    assert_eq!((refreshed.done, refreshed.failed), (progress.done, 0));
    let forced_ids: Vec<i32> = fake.stats().log[first as usize..]
        .iter()
        .flat_map(|e| e.ids.clone())
        .collect();
    let distinct: BTreeSet<i32> = forced_ids.iter().copied().collect();
    assert_eq!(forced_ids.len(), distinct.len(), "an id asked twice");
    if levels > 1 {
        assert!(
            forced_ids.len() < 300,
            "walk_levels={levels}: a forced refresh asked {} ids, so it asked again for anime a \
             deeper answer had just brought",
            forced_ids.len()
        );
    }
    let stored = (
        anime_ids(&importer).await,
        relation_rows(&importer).await,
        first_stats,
        progress,
    );
    importer.stop().await;
    stored
}

#[tokio::test]
async fn walking_several_levels_per_request_stores_exactly_the_same_in_fewer_round_trips() {
    let world = WorldSpec::default()
        .seed(16)
        .franchises(20)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let levels_of_walk = world.walk(giant).values().max().copied().unwrap_or(0) + 1;

    let (one_ids, one_rows, one_stats, one_progress) = walk_with_levels(&world, giant, 1).await;
    assert_eq!(one_ids.len(), 300);
    assert_eq!(one_progress.done, 300);
    for levels in [2, 3] {
        let (ids, rows, stats, progress) = walk_with_levels(&world, giant, levels).await;
        println!(
            "300-anime giant, {levels_of_walk} levels: walk_levels={levels}: {} requests \
             ({} bytes received) against {} requests ({} bytes) one level at a time",
            stats.requests, stats.bytes_out, one_stats.requests, one_stats.bytes_out
        );
        assert_eq!(ids, one_ids, "walk_levels={levels} stores the same anime");
        assert_eq!(rows, one_rows, "and the same relation rows");
        assert_eq!(
            (
                progress.state,
                progress.discovered,
                progress.done,
                progress.failed
            ),
            (one_progress.state, 300, 300, 0)
        );
        assert!(
            stats.requests < one_stats.requests,
            "walk_levels={levels}: {} requests, one level at a time {}",
            stats.requests,
            one_stats.requests
        );
        // No anime is asked for twice, and none is asked for that a deeper answer brought.
        let asked: Vec<i32> = stats.log.iter().flat_map(|e| e.ids.clone()).collect();
        let distinct: BTreeSet<i32> = asked.iter().copied().collect();
        assert_eq!(asked.len(), distinct.len(), "an id asked twice");
        assert!(asked.len() < 300, "{} ids asked", asked.len());
        assert_eq!(stats.rate_limited, 0);
        assert_eq!(stats.server_errors, 0);
    }
}

#[tokio::test]
async fn an_anilist_that_fails_deep_queries_teaches_the_walk_to_go_shallower() {
    let world = WorldSpec::default()
        .seed(16)
        .franchises(20)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    // An AniList that answers 500 to any query nesting relations more than one hop.
    let fake = fake_anilist::FakeAniList::start(fake_anilist::FakeConfig {
        world,
        rate: degraded(),
        max_relation_hops: 1,
        ..fake_anilist::FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (importer, progress) = import_walking(&fake, dir.path(), giant, Some(3)).await;
    assert_eq!((progress.done, progress.failed), (300, 0));
    assert_eq!(anime_ids(&importer).await.len(), 300);
    let stats = fake.stats();
    println!(
        "walk_levels=3 against an AniList that 500s deeper than one hop: {} requests, {} of \
         them failed deep queries",
        stats.requests, stats.server_errors
    );
    // The first deep query fails; from then on every request walks one level and succeeds.
    assert_eq!(stats.server_errors, 1);
    // Every process sharing the budget learnt it, for ten minutes.
    let status = importer
        .status(&franchise::ImportFilter::all())
        .await
        .unwrap();
    let budget = status.budget.expect("the budget's state");
    assert_eq!(budget.walk_cap, Some(1));
    let until = budget.walk_cap_until_ms.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now + 540_000..=now + 600_000).contains(&until),
        "lowered until {until}, now {now}"
    );
    let upstream = importer.upstream().await.unwrap();
    assert_eq!(
        upstream.state,
        franchise::UpstreamState::Ok,
        "AniList is not called down"
    );
    importer.stop().await;
}

/// A world of 20 ordinary franchises (cross-linked, with manga sources) and one giant of
/// `size` anime whose walk has exactly `levels` levels; the giant's root.
fn giant_with_levels(seed: u64, size: usize, levels: usize) -> (World, i32) {
    for depth in 1..=levels + 5 {
        let world = WorldSpec::default()
            .seed(seed)
            .franchises(20)
            .giant(size, depth)
            .clean()
            .build();
        let root = world.giants().next().unwrap().root;
        let walk = world.walk(root);
        if walk.len() == size && walk.values().max().copied().unwrap_or(0) + 1 == levels {
            return (world, root);
        }
    }
    panic!("no generated giant of {size} anime has {levels} levels");
}

/// The default (adaptive) walk of one franchise shape: exactly the one-level walk's rows, no
/// more requests than Σ⌈level/50⌉ + 3, no 429, no 4xx, no answer over 2 MB. The speed target
/// (0.55× the level limit at 1 s a call) is franchise-bench's walk mode.
async fn adaptive_walk_of(size: usize, levels: usize) -> String {
    let (world, root) = giant_with_levels(16, size, levels);
    let walk = world.walk(root);
    let reach: BTreeSet<i64> = walk.keys().map(|id| i64::from(*id)).collect();
    let mut per_level: BTreeMap<usize, usize> = BTreeMap::new();
    for depth in walk.values() {
        *per_level.entry(*depth).or_default() += 1;
    }
    let batched: usize = per_level.values().map(|n| n.div_ceil(50)).sum();
    let expected = expected_rows(&world, &reach);
    let fake = common::run::fake(
        world,
        degraded(),
        Latency::new(Duration::from_millis(50), Duration::from_millis(15)),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (importer, progress) = import_walking(&fake, dir.path(), root, None).await;
    assert_eq!((progress.done, progress.failed), (size as u64, 0));
    assert_eq!(anime_ids(&importer).await, reach, "{size}: the same anime");
    assert_eq!(
        relation_rows(&importer).await,
        expected,
        "{size}: the same relation rows"
    );
    let stats = fake.stats();
    let largest = stats.log.iter().filter_map(|e| e.bytes).max().unwrap_or(0);
    assert!(
        stats.requests as usize <= batched + 3,
        "{size} anime: {} requests, Σ⌈level/50⌉ + 3 = {}",
        stats.requests,
        batched + 3
    );
    assert_eq!(stats.rate_limited, 0);
    assert!(
        stats.by_status.keys().all(|code| *code < 400),
        "{size}: {:?}",
        stats.by_status
    );
    let answers: Vec<(usize, Option<usize>)> =
        stats.log.iter().map(|e| (e.ids.len(), e.bytes)).collect();
    assert!(
        largest <= 2_000_000,
        "{size}: an answer of {largest} bytes; (ids, bytes) per request: {answers:?}"
    );
    importer.stop().await;
    format!(
        "{size} anime in {levels} levels: {} requests (Σ⌈level/50⌉ = {batched}), {} bytes, \
         largest answer {largest} bytes; (ids, bytes) per request: {answers:?}",
        stats.requests, stats.bytes_out
    )
}

#[tokio::test]
async fn the_adaptive_walk_stores_the_same_in_few_requests_and_small_answers() {
    let (giant, mid, small) = tokio::join!(
        adaptive_walk_of(478, 11),
        adaptive_walk_of(46, 7),
        adaptive_walk_of(35, 5)
    );
    println!("{giant}\n{mid}\n{small}");
}
