//! Every path by which a job could end in the queue while its item stayed queued in SQL, each
//! triggered deterministically with a named failure point: a panicking handler, batcher or
//! flusher, a store commit that fails (on a job's last attempt), and graceful stops while
//! jobs wait for their answer. The rule: a job that ends, ends its item too; a graceful stop
//! or a store problem never spends an attempt; nothing is ever left "running" forever.

mod common;

use std::time::Duration;

use common::run::{aid, builder, fake, items, wait_done};
use fake_anilist::{Faults, Latency, RateModel, World};
use franchise::testing::{FailAction, FailPoints};
use franchise::{ImportOptions, ImportState, Importer, Settings};

/// A 30-anime franchise over a fake answering in 30 ms.
async fn world_and_fake() -> (fake_anilist::FakeAniList, i32) {
    let world = World::single_franchise(30, 21);
    let root = world.franchises()[0].root;
    let fake = fake(
        world,
        RateModel::disabled(),
        Latency::new(Duration::from_millis(30), Duration::ZERO),
        Faults::default(),
    )
    .await;
    (fake, root)
}

/// Settings with ONE attempt per job: any attempt spent by something other than AniList's
/// own answer would fail an item, so every test below would see it.
fn one_attempt(dir: &std::path::Path, fake: &fake_anilist::FakeAniList) -> Settings {
    builder(dir, fake).max_attempts(1).build().unwrap()
}

async fn open_with(settings: Settings, points: &FailPoints) -> Importer {
    Importer::builder(settings)
        .failpoints(points.clone())
        .open()
        .await
        .unwrap()
}

/// Every item is settled, and (the queue records its acks just after the commit) soon
/// nothing is pending or running in the queue.
async fn assert_settled(importer: &Importer, import_id: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = importer
            .status(&franchise::ImportFilter::one(import_id))
            .await
            .unwrap();
        let queue = status.queue.expect("this process owns the queue");
        if queue.background.pending + queue.background.running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs still pending or running: {queue:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        items(importer, import_id)
            .await
            .iter()
            .all(|(_, state, _)| state != "queued"),
        "an item is still queued"
    );
}

#[tokio::test]
async fn a_panicking_handler_fails_its_item_with_the_reason_and_the_rest_finish() {
    let (fake, root) = world_and_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let points = FailPoints::new();
    points.arm("handler.panic", FailAction::Panic, Some(1));
    let importer = open_with(one_attempt(dir.path(), &fake), &points).await;
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(points.fired("handler.panic"), 1);
    assert_eq!(p.state, ImportState::DoneWithFailures);
    assert_eq!(p.failed, 1, "{p:?}");
    assert!(
        p.failures[0].0.contains("panicked"),
        "the reason says so: {:?}",
        p.failures
    );
    // The root's job panicked, so the walk stopped there: one item, failed, and its job
    // ended in the queue with it (failed, not pending or running).
    assert_settled(&importer, id).await;
    let queue = importer
        .status(&franchise::ImportFilter::all())
        .await
        .unwrap()
        .queue
        .unwrap();
    assert_eq!(queue.background.failed, 1, "{queue:?}");
    importer.close().await;
}

#[tokio::test]
async fn a_batcher_or_flusher_that_panics_is_restarted_and_the_import_completes() {
    for point in ["batcher.panic", "flusher.panic"] {
        let (fake, root) = world_and_fake().await;
        let dir = tempfile::tempdir().unwrap();
        let points = FailPoints::new();
        points.arm(point, FailAction::Panic, Some(2));
        let importer = open_with(one_attempt(dir.path(), &fake), &points).await;
        importer.start().await.unwrap();
        let id = importer
            .import(aid(root), &ImportOptions::default())
            .await
            .unwrap();
        let p = wait_done(&importer, id, Duration::from_secs(60)).await;
        assert_eq!(points.fired(point), 2, "{point}");
        assert_eq!(
            (p.state, p.done, p.failed),
            (ImportState::Done, 30, 0),
            "{point}: {p:?}"
        );
        assert_settled(&importer, id).await;
        assert!(importer.halted().is_none(), "{point}");
        importer.close().await;
    }
}

#[tokio::test]
async fn a_store_commit_that_fails_on_the_last_attempt_is_retried_not_counted() {
    let (fake, root) = world_and_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let points = FailPoints::new();
    // Every job has one attempt; the first five commits fail.
    points.arm("flusher.commit", FailAction::Error, Some(5));
    let importer = open_with(one_attempt(dir.path(), &fake), &points).await;
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(points.fired("flusher.commit"), 5);
    assert_eq!(
        (p.state, p.done, p.failed),
        (ImportState::Done, 30, 0),
        "{p:?}"
    );
    assert_settled(&importer, id).await;
    importer.close().await;
}

#[tokio::test]
async fn a_store_that_keeps_failing_halts_with_one_clear_error_and_loses_nothing() {
    let (fake, root) = world_and_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let points = FailPoints::new();
    points.arm("flusher.commit", FailAction::Error, None);
    let importer = open_with(one_attempt(dir.path(), &fake), &points).await;
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let halt = tokio::time::timeout(Duration::from_secs(120), importer.until_halted())
        .await
        .expect("the pipeline halts instead of retrying forever");
    assert!(halt.message.contains("kept failing"), "{halt}");
    importer.stop().await;
    assert_eq!(importer.halted().map(|h| h.kind), Some(halt.kind));
    importer.close().await;

    // Nothing was lost: a new run without the fault finishes the import exactly.
    let importer = Importer::open(one_attempt(dir.path(), &fake))
        .await
        .unwrap();
    importer.start().await.unwrap();
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(
        (p.state, p.done, p.failed),
        (ImportState::Done, 30, 0),
        "{p:?}"
    );
    assert_settled(&importer, id).await;
    importer.close().await;
}

#[tokio::test]
async fn a_halted_importer_says_why_at_once_and_start_runs_it_again() {
    let (fake, root) = world_and_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let points = FailPoints::new();
    // Exactly the commits it takes to halt (the flusher gives up after ten), then none.
    points.arm("flusher.commit", FailAction::Error, Some(10));
    let importer = open_with(one_attempt(dir.path(), &fake), &points).await;
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let halt = tokio::time::timeout(Duration::from_secs(120), importer.until_halted())
        .await
        .expect("the pipeline halts");
    // Without stop(): halted() says why, and the workers are not said to run.
    assert_eq!(importer.halted().map(|h| h.message), Some(halt.message));
    assert!(!importer.is_running().await);
    // start() after a halt starts again (it used to return Ok and do nothing).
    importer.start().await.unwrap();
    assert!(importer.is_running().await);
    assert!(importer.halted().is_none());
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(
        (p.state, p.done, p.failed),
        (ImportState::Done, 30, 0),
        "{p:?}"
    );
    assert_settled(&importer, id).await;
    importer.close().await;
}

#[tokio::test]
async fn repeated_graceful_stops_while_answers_are_in_flight_spend_no_attempt() {
    let (fake, root) = world_and_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = one_attempt(dir.path(), &fake);
    let mut import_id = None;
    // Five runs, each stopped while its first answer is held back (in flight).
    for run in 0..5 {
        let points = FailPoints::new();
        points.arm("fetch.stall", FailAction::Stall, None);
        let importer = open_with(settings.clone(), &points).await;
        importer.start().await.unwrap();
        let id = match import_id {
            Some(id) => id,
            None => {
                let id = importer
                    .import(aid(root), &ImportOptions::default())
                    .await
                    .unwrap();
                import_id = Some(id);
                id
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while points.fired("fetch.stall") == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run}: no request was sent"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        importer.close().await;
        let p = Importer::builder(settings.clone())
            .read_only()
            .open()
            .await
            .unwrap()
            .progress(id)
            .await
            .unwrap();
        assert_eq!(
            p.failed, 0,
            "run {run}: a stop must not fail an item: {p:?}"
        );
    }
    // Then a run without the stall finishes everything, with one attempt per job.
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = import_id.unwrap();
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(
        (p.state, p.done, p.failed),
        (ImportState::Done, 30, 0),
        "{p:?}"
    );
    assert_settled(&importer, id).await;
    importer.close().await;
}
