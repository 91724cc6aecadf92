//! The library as an app holds it: events in commit order ending in "finished", cancel and
//! retry, listing imports, and reads through the cache that are never staler than the store.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::run::{aid, builder, fake, wait_done};
use fake_anilist::{Faults, Latency, RateModel, World};
use franchise::{Event, ImportFilter, ImportOptions, ImportState, Importer, Order, QueueOwner};

#[tokio::test]
async fn the_events_of_a_sixty_anime_import_come_in_order_and_end_in_finished() {
    let world = World::single_franchise(60, 61);
    let root = world.franchises()[0].root;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::new(Duration::from_millis(20), Duration::ZERO),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    let mut events = importer.subscribe();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let mut progress: Vec<(u64, u64)> = Vec::new();
    let mut stored = BTreeSet::new();
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await.expect("the stream stays open") {
                Event::Progress {
                    import_id,
                    done,
                    discovered,
                    failed,
                    queued,
                    ..
                } if import_id == id => {
                    assert_eq!(done + failed + queued, discovered, "counters add up");
                    progress.push((done, discovered));
                }
                Event::Stored { anime } => stored.extend(anime.iter().map(|a| a.get())),
                Event::Finished {
                    import_id,
                    state,
                    discovered,
                    done,
                    ..
                } if import_id == id => break (state, discovered, done),
                Event::Lagged { missed } => panic!("a 60-anime import lagged by {missed}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a Finished event");
    assert_eq!(finished, (ImportState::Done, 60, 60));
    assert!(progress.len() >= 3, "several progress events: {progress:?}");
    // In commit order: never backwards.
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "{progress:?}"
    );
    assert_eq!(progress.last(), Some(&(60, 60)));
    assert_eq!(stored.len(), 60, "every anime was announced as stored");
    importer.close().await;
}

#[tokio::test]
async fn an_outage_is_waited_out_and_a_cancelled_import_can_be_retried() {
    let world = World::single_franchise(20, 62);
    let root = world.franchises()[0].root;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    // AniList is down (403) for the first import; one attempt per job, short pauses.
    fake.start_outage(Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let settings = builder(dir.path(), &fake)
        .max_attempts(1)
        .outage_pause_secs(0.02, 0.05)
        .build()
        .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    // However many probes the outage costs, no item fails for it and nothing halts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.stats().outages < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", fake.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = importer.progress(id).await.unwrap();
    assert_eq!(
        (waiting.state, waiting.failed, waiting.queued),
        (ImportState::Running, 0, 1),
        "{waiting:?}"
    );
    assert!(importer.halted().is_none());
    let upstream = importer.upstream().await.unwrap();
    assert_eq!(
        upstream.state,
        franchise::UpstreamState::Refused,
        "{upstream:?}"
    );
    assert!(
        upstream
            .message
            .as_deref()
            .is_some_and(|m| m.contains("temporarily disabled")),
        "{upstream:?}"
    );

    // Cancelled while AniList is down; retried once it is back: it finishes exactly.
    let cancelled = importer.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, ImportState::Cancelled, "{cancelled:?}");
    fake.end_outages();
    let again = importer.retry(id).await.unwrap();
    assert_eq!(again.state, ImportState::Running);
    assert_eq!((again.failed, again.queued), (0, 1));
    let done = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(
        (done.state, done.done, done.failed),
        (ImportState::Done, 20, 0),
        "{done:?}"
    );
    let listed = importer
        .imports(&ImportFilter::in_state(ImportState::Done))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].import_id, id);
    importer.close().await;
}

#[tokio::test]
async fn a_cancelled_import_fetches_nothing_more_and_says_cancelled() {
    let world = World::single_franchise(60, 63);
    let root = world.franchises()[0].root;
    // Slow answers: the walk is still young when it is cancelled.
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::new(Duration::from_millis(300), Duration::ZERO),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while importer.progress(id).await.unwrap().done < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = importer.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, ImportState::Cancelled);
    assert!(cancelled.cancelled > 0, "{cancelled:?}");
    // Requests already in flight finish; after them, nothing more is asked.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = fake.stats().requests;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.stats().requests,
        after,
        "no request after the cancel settled"
    );
    let p = importer.progress(id).await.unwrap();
    assert_eq!(p.state, ImportState::Cancelled);
    assert_eq!(p.queued, 0);
    assert!(matches!(
        importer.cancel(404).await,
        Err(franchise::Error::UnknownImport(404))
    ));
    // Cancelled is finished: a second cancel says so instead of pretending.
    match importer.cancel(id).await {
        Err(franchise::Error::AlreadyFinished { import_id, state }) => {
            assert_eq!((import_id, state), (id, ImportState::Cancelled));
        }
        other => panic!("a second cancel: {other:?}"),
    }
    importer.close().await;
}

#[tokio::test]
async fn reads_go_through_the_cache_and_a_rewrite_invalidates_them() {
    let world = World::single_franchise(12, 64);
    let root = world.franchises()[0].root;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, id, Duration::from_secs(30)).await;

    let first = importer.franchise(aid(root)).await.unwrap().unwrap();
    assert_eq!(first.anime.len(), 12);
    let again = importer.franchise(aid(root)).await.unwrap().unwrap();
    assert_eq!(first, again);
    let stats = importer.cache_stats();
    assert!(stats.enabled);
    assert_eq!((stats.franchise.misses, stats.franchise.hits), (1, 1));
    assert!(importer.anime(aid(root)).await.unwrap().is_some());
    assert!(importer.anime(aid(root)).await.unwrap().is_some());
    assert_eq!(importer.cache_stats().basic.hits, 1);
    importer.relations(aid(root)).await.unwrap();
    assert_eq!(importer.cache_stats().detailed.misses, 1);

    // A refetch rewrites every anime of the franchise: the next read goes to the store.
    let refetch = importer
        .import(
            aid(root),
            &ImportOptions::default().with_force_refresh(true),
        )
        .await
        .unwrap();
    wait_done(&importer, refetch, Duration::from_secs(30)).await;
    let before = importer.cache_stats();
    let fresh = importer.franchise(aid(root)).await.unwrap().unwrap();
    let after = importer.cache_stats();
    assert_eq!(
        after.franchise.misses,
        before.franchise.misses + 1,
        "invalidated"
    );
    assert!(after.franchise.evictions >= 1, "{after:?}");
    assert_eq!(fresh.anime, first.anime);
    importer.close().await;
}

/// An app hands clones to its tasks: one clone closing leaves the others working, and only the
/// last close ends it (stops the workers, closes the store, lets go of the queue file).
#[tokio::test]
async fn a_clone_closing_leaves_the_others_working_and_the_last_close_ends_it() {
    let world = World::single_franchise(62, 14);
    let root = world.franchises()[0].root;
    let members = world.franchises()[0].members.len() as u64;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = builder(dir.path(), &fake).build().unwrap();
    let importer = Importer::open(settings.clone()).await.unwrap();
    importer.start().await.unwrap();
    let (task_a, task_b) = (importer.clone(), importer.clone());
    // Two clones closing at once: neither is the last.
    tokio::join!(task_a.close(), task_b.close());

    assert!(
        importer.is_running().await,
        "the workers outlive a clone's close"
    );
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), importer.until_idle())
        .await
        .expect("the import runs out of work")
        .expect("no halt");
    let p = importer.progress(id).await.unwrap();
    assert_eq!((p.state, p.done, p.failed), (ImportState::Done, members, 0));
    assert!(importer.is_idle().await);
    // The queue file is still this handle's: a second open in this process cannot take it.
    let second = Importer::open(settings.clone()).await.unwrap();
    assert_ne!(second.queue_owner(), QueueOwner::ThisProcess);
    second.close().await;

    importer.close().await;
    let reopened = Importer::open(settings).await.unwrap();
    assert_eq!(
        reopened.queue_owner(),
        QueueOwner::ThisProcess,
        "the last close let go of the queue file"
    );
    assert_eq!(reopened.progress(id).await.unwrap().done, members);
    reopened.close().await;
}

/// The watch order of imported, generated franchises (a giant with a 12-level sequel line,
/// two ordinary ones): every member once, the main story as it aired, and everything else
/// after the entry it follows; the release order by date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_franchises_in_watch_and_release_order() {
    let world = fake_anilist::WorldSpec::default()
        .seed(23)
        .franchises(0)
        .giant(120, 12)
        .sized(40)
        .sized(25)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let fake = fake(
        world.clone(),
        RateModel::disabled(),
        Latency::new(Duration::from_millis(5), Duration::ZERO),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    for f in world.franchises() {
        let id = importer
            .import(aid(f.root), &ImportOptions::default())
            .await
            .unwrap();
        wait_done(&importer, id, Duration::from_secs(60)).await;
        let franchise = importer
            .franchise(aid(f.root))
            .await
            .unwrap()
            .expect("stored");
        let date = |id: franchise::AnimeId| {
            franchise
                .anime
                .iter()
                .find(|a| a.id == id)
                .and_then(franchise::aired)
        };

        let watch = franchise.in_order(Order::Watch);
        let ids: BTreeSet<_> = watch.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), watch.len(), "each member once");
        assert_eq!(ids.len(), franchise.anime.len(), "every member");
        let main: Vec<_> = watch.iter().filter(|o| o.main).map(|o| o.id).collect();
        assert!(main.len() >= 2, "a main story for {}: {main:?}", f.root);
        // (An undated entry keeps its place on the story line.)
        let main_dates: Vec<_> = main.iter().filter_map(|id| date(*id)).collect();
        assert!(
            main_dates.windows(2).all(|w| w[0] <= w[1]),
            "the main story as it aired: {main_dates:?}"
        );
        let at = |id: franchise::AnimeId| watch.iter().position(|o| o.id == id);
        for o in watch.iter().filter(|o| !o.main) {
            let (Some(parent), Some(relation)) = (o.follows, o.relation.as_deref()) else {
                continue;
            };
            if relation != "PREQUEL" && relation != "PARENT" {
                assert!(at(parent) < at(o.id), "{o:?} comes after what it follows");
            }
        }

        let release = franchise.in_order(Order::Release);
        let dates: Vec<_> = release.iter().filter_map(|o| date(o.id)).collect();
        assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
        assert_eq!(release.len(), franchise.anime.len());
    }
    importer.close().await;
}

/// A franchise streamed item by item is the franchise `Importer::franchise` returns, and its
/// JSON written piece by piece is, byte for byte, what the view serializes; from the store
/// (filling the cache) and then from the cache. An anime never stored streams nothing.
#[tokio::test]
async fn a_streamed_franchise_is_the_stored_one_and_writes_the_same_json() {
    use franchise::{FranchiseItem, FranchiseJson};
    use futures::TryStreamExt;

    let world = World::single_franchise(30, 65);
    let root = world.franchises()[0].root;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let importer = Importer::open(builder(dir.path(), &fake).build().unwrap())
        .await
        .unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    wait_done(&importer, id, Duration::from_secs(30)).await;

    let mut texts = Vec::new();
    for read in ["from the store", "from the cache"] {
        let items: Vec<FranchiseItem> = importer
            .franchise_items(aid(root))
            .try_collect()
            .await
            .unwrap();
        let mut json = FranchiseJson::new(aid(root));
        let mut text = Vec::new();
        for item in &items {
            json.push(item).unwrap();
            // Chunks taken at every size still join to the same text.
            text.extend(json.take_chunk(1).unwrap());
        }
        text.extend(json.finish());
        texts.push(text);
        let (members, relations): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|i| matches!(i, FranchiseItem::Member(_)));
        let whole = importer.franchise(aid(root)).await.unwrap().unwrap();
        let members: Vec<_> = members
            .into_iter()
            .filter_map(|i| match i {
                FranchiseItem::Member(a) => Some(a),
                FranchiseItem::Relation(_) => None,
            })
            .collect();
        let relations: Vec<_> = relations
            .into_iter()
            .filter_map(|i| match i {
                FranchiseItem::Relation(r) => Some(r),
                FranchiseItem::Member(_) => None,
            })
            .collect();
        assert_eq!(members, whole.anime, "{read}");
        assert_eq!(relations, whole.relations, "{read}");
        assert_eq!(members.len(), 30, "{read}");
        assert!(!relations.is_empty(), "{read}");
        let view = serde_json::to_vec(&whole.view(Order::Id)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(texts.last().unwrap()),
            String::from_utf8_lossy(&view),
            "{read}"
        );
        // The same text in the chunks `franchise_json` hands on (what show and the API write).
        let chunks: Vec<Vec<u8>> = importer
            .franchise_json(aid(root))
            .await
            .unwrap()
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.concat(), view, "{read}");
    }
    // The first stream read the store and filled the cache; the reads after it hit.
    let stats = importer.cache_stats().franchise;
    assert_eq!((stats.misses, stats.hits), (1, 5), "{stats:?}");

    let unknown: Vec<FranchiseItem> = importer
        .franchise_items(aid(999_999_999))
        .try_collect()
        .await
        .unwrap();
    assert!(unknown.is_empty());
    assert!(
        importer
            .franchise_json(aid(999_999_999))
            .await
            .unwrap()
            .is_none()
    );
    importer.close().await;
}
