//! Start-up reconciliation against a real store and queue: an item still queued in SQL whose
//! job the queue already finished (as older versions could leave it) gets a new job.

use std::sync::Arc;
use std::time::Duration;

use fake_anilist::{FakeAniList, FakeConfig, RateModel, World};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::halt::HaltSwitch;
use crate::producer::{ImportOptions, Push, create_import};
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::tests::test_options;
use crate::queue::{FetchJob, JobHandler, JobQueue, Lane, RunOptions};
use crate::store::sqlite::SqliteStore;
use crate::store::{ImportState, Store};
use crate::test_support::id;
use crate::{Importer, Settings};

#[tokio::test]
async fn an_item_whose_job_finished_without_it_is_queued_again_at_start() {
    let world = World::single_franchise(8, 51);
    let root = world.franchises()[0].root;
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::builder()
        .data_dir(dir.path())
        .anilist_url(fake.url())
        .min_spacing_ms(10)
        .heartbeat_ms(1000)
        .build()
        .unwrap();

    // The broken past: the root's job ran and ended as done, its item stayed queued.
    let import_id = {
        let store = Store::new(Arc::new(
            SqliteStore::open(&settings.store_path()).await.unwrap(),
        ));
        let queue = JobQueue::new(Arc::new(
            EmbeddedQueue::open(&settings.queue_path(), 5)
                .await
                .unwrap(),
        ));
        let (import_id, to_push) = create_import(
            &store,
            id(i64::from(root)),
            &ImportOptions::default().rules(),
            0,
            crate::clock::unix_ms_now(),
            Push::Caller,
        )
        .await
        .unwrap();
        let jobs: Vec<FetchJob> = to_push.iter().map(FetchJob::from).collect();
        queue.push(Lane::Background, &jobs).await.unwrap();
        let forgetful: JobHandler = Arc::new(|_job, _ctx| async { Ok(()) }.boxed());
        let shutdown = CancellationToken::new();
        let options = RunOptions {
            heartbeat: Duration::from_secs(1),
            ..test_options()
        };
        let workers = queue
            .run(
                options,
                forgetful,
                shutdown.clone(),
                HaltSwitch::default(),
                crate::outage::DatabaseOutage::default(),
            )
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while queue.depth().await.unwrap().background.done < 1 {
            assert!(tokio::time::Instant::now() < deadline, "the job never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        workers.join().await;
        store.close().await;
        import_id
    };

    // A new run sees the finished job, gives the item a new one, and the import completes.
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let p = importer.progress(import_id).await.unwrap();
        if p.is_finished() {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import stayed stuck: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(progress.state, ImportState::Done);
    assert_eq!(progress.done, 8);
    importer.close().await;
}
