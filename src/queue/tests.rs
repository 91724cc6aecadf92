//! ONE suite for every queue backend: idempotent bulk pushes, exactly one delivery per job,
//! the interactive lane overtaking a backlog, retries and aborts, the graceful stop, and where
//! a job stands. Then what only the embedded (redb) queue has: the cross-process lock, orphan
//! recovery after a crash, and a corrupt file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::embedded::EmbeddedQueue;
use super::postgres::PgQueue;
use super::{
    FetchJob, JobContext, JobFailure, JobHandler, JobPresence, JobQueue, Lane, QueueDepth,
    QueueDriver, QueueError, RunOptions,
};
use crate::anime::AnimeId;
use crate::halt::HaltSwitch;

/// Set in the child process of `a_second_process_is_refused_with_the_owners_pid`.
const HOLD_ENV: &str = "FRANCHISE_TEST_HOLD_QUEUE";
const HOLDING_MARKER: &str = "FRANCHISE-QUEUE-HELD";

fn job(import_id: Option<i64>, anime: i64) -> FetchJob {
    FetchJob {
        import_id,
        anime_id: AnimeId::new(anime).unwrap(),
        depth: 0,
        round: 0,
    }
}

/// A queue under test, whichever backend holds it (the guard cleans up when dropped).
pub(crate) struct Kit {
    pub queue: JobQueue,
    /// The same queue, pushing jobs that may run this many times.
    pub with_attempts: Box<dyn Fn(usize) -> JobQueue + Send>,
    _guard: Box<dyn std::any::Any + Send>,
}

pub(crate) async fn embedded_kit() -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedQueue::open(&dir.path().join("queue.redb"), 5)
        .await
        .unwrap();
    let queue = JobQueue::new(Arc::new(embedded.clone()));
    Kit {
        queue,
        with_attempts: Box::new(move |n| JobQueue::new(Arc::new(embedded.with_max_attempts(n)))),
        _guard: Box::new(dir),
    }
}

pub(crate) async fn postgres_kit() -> Kit {
    let (db, store) = crate::store::testing::postgres_store().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    drop(store);
    let location = "the test database".to_string();
    let queue = JobQueue::new(Arc::new(PgQueue::new(pool.clone(), location.clone(), 5)));
    Kit {
        queue,
        with_attempts: Box::new(move |n| {
            JobQueue::new(Arc::new(PgQueue::new(pool.clone(), location.clone(), n)))
        }),
        _guard: Box::new(db),
    }
}

/// An embedded queue on a file, as a `JobQueue`.
pub(crate) async fn open_embedded(
    path: &Path,
    max_attempts: usize,
) -> Result<JobQueue, QueueError> {
    Ok(JobQueue::new(Arc::new(
        EmbeddedQueue::open(path, max_attempts).await?,
    )))
}

fn run(
    queue: &JobQueue,
    options: RunOptions,
    handler: JobHandler,
    shutdown: CancellationToken,
) -> Result<super::WorkerSet, QueueError> {
    queue.run(
        options,
        handler,
        shutdown,
        HaltSwitch::default(),
        crate::outage::DatabaseOutage::default(),
    )
}

fn queue_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("queue.redb")
}

fn handler<F, Fut>(f: F) -> JobHandler
where
    F: Fn(FetchJob, JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    Arc::new(move |job, ctx| f(job, ctx).boxed())
}

/// What the shipped settings give, for tests to adjust.
pub(crate) fn test_options() -> RunOptions {
    crate::Settings::default().run_options()
}

fn fast_options() -> RunOptions {
    RunOptions {
        concurrency: 5,
        heartbeat: Duration::from_secs(1),
        ..test_options()
    }
}

/// Polls the queue depth until `done` holds, or fails with the last depth seen.
async fn wait_for_depth(
    queue: &JobQueue,
    within: Duration,
    done: impl Fn(&QueueDepth) -> bool,
) -> QueueDepth {
    let deadline = Instant::now() + within;
    loop {
        let depth = queue.depth().await.unwrap();
        if done(&depth) {
            return depth;
        }
        assert!(
            Instant::now() < deadline,
            "queue did not reach the expected depth within {within:?}; last seen {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn a_repushed_import_job_is_skipped_and_open_jobs_are_not(kit: Kit) {
    let queue = kit.queue.clone();

    let jobs: Vec<FetchJob> = (1..=3).map(|id| job(Some(7), id)).collect();
    assert_eq!(
        queue.push(Lane::Background, &jobs.clone()).await.unwrap(),
        3
    );
    assert_eq!(queue.push(Lane::Background, &jobs).await.unwrap(), 0);
    // The same anime in another import is another item.
    assert_eq!(
        queue
            .push(Lane::Background, &[job(Some(8), 1)])
            .await
            .unwrap(),
        1
    );
    // Open jobs carry no key: every click is answered.
    assert_eq!(
        queue
            .push(Lane::Interactive, &[job(None, 1), job(None, 1)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(queue.push(Lane::Interactive, &[]).await.unwrap(), 0);

    let depth = queue.depth().await.unwrap();
    assert_eq!(depth.background.pending, 4, "{depth:?}");
    assert_eq!(depth.interactive.pending, 2, "{depth:?}");
    assert_eq!(depth.background.running + depth.background.done, 0);
}

pub(crate) async fn every_pushed_job_is_handled_exactly_once_and_ends_done(kit: Kit) {
    let queue = kit.queue.clone();
    let background: Vec<FetchJob> = (1..=40).map(|id| job(Some(1), id)).collect();
    queue.push(Lane::Background, &background).await.unwrap();
    queue
        .push(Lane::Interactive, &[job(None, 1001), job(None, 1002)])
        .await
        .unwrap();

    let calls: Arc<Mutex<HashMap<(Lane, u32), usize>>> = Arc::default();
    let seen = calls.clone();
    let count = handler(move |job, ctx| {
        *seen
            .lock()
            .unwrap()
            .entry((ctx.lane, job.anime_id.get()))
            .or_default() += 1;
        assert_eq!(ctx.attempt, 1);
        assert_eq!(ctx.max_attempts, 5);
        async { Ok(()) }
    });
    let shutdown = CancellationToken::new();
    let options = RunOptions {
        workers: 2,
        ..fast_options()
    };
    let workers = run(&queue, options, count, shutdown.clone()).unwrap();

    let depth = wait_for_depth(&queue, Duration::from_secs(30), |d| {
        d.background.done == 40 && d.interactive.done == 2
    })
    .await;
    assert_eq!(depth.background.pending + depth.background.running, 0);
    shutdown.cancel();
    workers.join().await;

    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 42);
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    assert_eq!(calls[&(Lane::Interactive, 1001)], 1);
}

pub(crate) async fn an_interactive_job_overtakes_a_background_backlog(kit: Kit) {
    let queue = kit.queue.clone();
    let backlog: Vec<FetchJob> = (1..=500).map(|id| job(Some(1), id)).collect();
    assert_eq!(queue.push(Lane::Background, &backlog).await.unwrap(), 500);

    let background_started = Arc::new(AtomicUsize::new(0));
    let interactive_seen: Arc<Mutex<Option<usize>>> = Arc::default();
    let (started, seen) = (background_started.clone(), interactive_seen.clone());
    let slow = handler(move |_job, ctx| {
        let started = started.clone();
        let seen = seen.clone();
        async move {
            match ctx.lane {
                Lane::Background => {
                    started.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Lane::Interactive => {
                    *seen.lock().unwrap() = Some(started.load(Ordering::SeqCst));
                }
            }
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let options = RunOptions {
        workers: 1,
        concurrency: 2,
        ..fast_options()
    };
    let workers = run(&queue, options, slow, shutdown.clone()).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while background_started.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "background jobs never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = background_started.load(Ordering::SeqCst);
    queue
        .push(Lane::Interactive, &[job(None, 9999)])
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let at_interactive = loop {
        if let Some(n) = *interactive_seen.lock().unwrap() {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "interactive job not handled within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Two background jobs run at a time, 50 ms each: a few more may start while the
    // interactive one is fetched, never a large share of the backlog.
    assert!(
        at_interactive - before <= 8,
        "{} background jobs started before the interactive one",
        at_interactive - before
    );
    let depth = queue.depth().await.unwrap();
    assert!(depth.background.pending >= 400, "{depth:?}");
    shutdown.cancel();
    workers.join().await;
}

pub(crate) async fn retries_run_again_aborts_do_not_and_attempts_are_bounded(kit: Kit) {
    let queue = kit.queue.clone();
    queue
        .push(Lane::Background, &[job(Some(1), 1), job(Some(1), 2)])
        .await
        .unwrap();
    // The limit travels with each job: one pushed with 2 attempts keeps them.
    (kit.with_attempts)(2)
        .push(Lane::Background, &[job(Some(1), 3)])
        .await
        .unwrap();

    let calls: Arc<Mutex<Vec<(u32, JobContext)>>> = Arc::default();
    let seen = calls.clone();
    let flaky = handler(move |job, ctx| {
        let id = job.anime_id.get();
        let earlier = {
            let mut calls = seen.lock().unwrap();
            let earlier = calls.iter().filter(|(a, _)| *a == id).count();
            calls.push((id, ctx));
            earlier
        };
        async move {
            match id {
                1 if earlier < 2 => Err(JobFailure::Retry("upstream timed out".into())),
                1 => Ok(()),
                2 => Err(JobFailure::Abort("anime not found".into())),
                _ => Err(JobFailure::Retry("still down".into())),
            }
        }
    });
    let shutdown = CancellationToken::new();
    let workers = run(&queue, fast_options(), flaky, shutdown.clone()).unwrap();
    let depth = wait_for_depth(&queue, Duration::from_secs(30), |d| {
        d.background.done == 1 && d.background.failed == 2
    })
    .await;
    assert_eq!(depth.background.pending + depth.background.running, 0);
    shutdown.cancel();
    workers.join().await;

    let calls = calls.lock().unwrap();
    let of = |id: u32| -> Vec<JobContext> {
        calls
            .iter()
            .filter(|(a, _)| *a == id)
            .map(|(_, c)| *c)
            .collect()
    };
    let retried = of(1);
    assert_eq!(
        retried.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(retried.iter().all(|c| c.max_attempts == 5));
    assert_eq!(of(2).len(), 1, "an aborted job runs once");
    let exhausted = of(3);
    assert_eq!(
        exhausted.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(exhausted[1].is_last_attempt() && !exhausted[0].is_last_attempt());
}

pub(crate) async fn graceful_stop_lets_an_in_flight_job_finish(kit: Kit) {
    let queue = kit.queue.clone();
    queue
        .push(Lane::Background, &[job(Some(1), 1)])
        .await
        .unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), finished.clone());
    let slow = handler(move |_job, _ctx| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            s.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let workers = run(&queue, fast_options(), slow, shutdown.clone()).unwrap();
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), workers.join())
        .await
        .expect("join returns after the graceful stop");
    assert!(finished.load(Ordering::SeqCst), "the in-flight job was cut");
    let depth = queue.depth().await.unwrap();
    assert_eq!(depth.background.done, 1, "{depth:?}");
    assert_eq!(depth.background.running, 0, "{depth:?}");
}

pub(crate) async fn options_apalis_would_panic_on_are_refused(kit: Kit) {
    let queue = kit.queue.clone();
    let noop = handler(|_job, _ctx| async { Ok(()) });
    let options = RunOptions {
        concurrency: 0,
        ..test_options()
    };
    let err = run(&queue, options, noop, CancellationToken::new()).unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::InvalidOption {
                name: "concurrency",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[tokio::test]
async fn a_second_open_in_the_same_process_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = queue_path(&dir);
    let _owner = open_embedded(&path, 5).await.unwrap();
    let err = open_embedded(&path, 5).await.unwrap_err();
    match &err {
        QueueError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains("already open in this process"),
        "{err}"
    );
}

/// The child half of the cross-process test: holds the queue until killed.
#[tokio::test]
#[ignore = "not a test: the child process of a_second_process_is_refused_with_the_owners_pid, \
            which runs it with --ignored"]
async fn hold_queue_child() {
    let path =
        std::env::var(HOLD_ENV).expect("run by a_second_process_is_refused_with_the_owners_pid");
    let _queue = open_embedded(Path::new(&path), 5).await.unwrap();
    println!("{HOLDING_MARKER}");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_second_process_is_refused_with_the_owners_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = queue_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "queue::tests::hold_queue_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let held = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(HOLDING_MARKER))
    })
    .await
    .unwrap();
    assert!(held, "the child never opened the queue");

    let err = open_embedded(&path, 5).await.unwrap_err();
    let child_pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    match &err {
        QueueError::Locked { pid, path: p } => {
            assert_eq!(*pid, Some(child_pid));
            assert_eq!(p, &path);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("pid {child_pid}")), "{text}");
    assert!(text.contains("another franchise process"), "{text}");
    assert!(text.contains("franchise status"), "{text}");

    // Once the owner is gone, the file opens again.
    open_embedded(&path, 5).await.unwrap();
}

#[test]
fn a_job_in_flight_when_its_process_died_is_handled_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = queue_path(&dir);
    let options = RunOptions {
        heartbeat: Duration::from_secs(1),
        ..fast_options()
    };

    // First "process": takes the job, then dies mid-job without any graceful stop.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    doomed.block_on(async {
        let queue = open_embedded(&path, 5).await.unwrap();
        queue
            .push(Lane::Background, &[job(Some(3), 42)])
            .await
            .unwrap();
        let s = started.clone();
        let stuck = handler(move |_job, _ctx| {
            s.store(true, Ordering::SeqCst);
            futures::future::pending()
        });
        let workers = run(&queue, options.clone(), stuck, CancellationToken::new()).unwrap();
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::mem::forget(workers);
    });
    doomed.shutdown_background();

    // Second "process": reopens the file and must re-run the orphaned job.
    let next = tokio::runtime::Runtime::new().unwrap();
    next.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        let queue = loop {
            // The dead runtime's blocking threads may hold the file for a moment.
            match open_embedded(&path, 5).await {
                Ok(queue) => break queue,
                Err(QueueError::Locked { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("reopen failed: {other}"),
            }
        };
        let depth = queue.depth().await.unwrap();
        assert_eq!(depth.background.running, 1, "{depth:?}");

        let calls: Arc<Mutex<Vec<(u32, usize)>>> = Arc::default();
        let seen = calls.clone();
        let record = handler(move |job, ctx| {
            seen.lock().unwrap().push((job.anime_id.get(), ctx.attempt));
            async { Ok(()) }
        });
        let shutdown = CancellationToken::new();
        let started_at = Instant::now();
        let workers = run(&queue, options, record, shutdown.clone()).unwrap();
        wait_for_depth(&queue, Duration::from_secs(20), |d| d.background.done == 1).await;
        let took = started_at.elapsed();
        shutdown.cancel();
        workers.join().await;
        // heartbeat 1 s × 3 missed heartbeats, checked on each 1 s heartbeat, whole seconds.
        assert!(
            took <= Duration::from_secs(8),
            "orphan recovery took {took:?}"
        );
        // A crash does not consume an attempt: the count is only stored with a result.
        assert_eq!(*calls.lock().unwrap(), [(42, 1)]);
    });
}

#[tokio::test]
async fn a_file_of_random_bytes_is_reported_corrupt_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = queue_path(&dir);
    let noise: Vec<u8> = (0..65_536).map(|_| rand::random::<u8>()).collect();
    std::fs::write(&path, noise).unwrap();
    let err = open_embedded(&path, 5).await.unwrap_err();
    assert!(
        matches!(&err, QueueError::Corrupt { path: p, .. } if p == &path),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("Move it aside"), "{text}");
    assert!(text.contains("re-queued from the SQL store"), "{text}");
}

pub(crate) async fn presence_says_whether_a_job_is_live_finished_or_unknown(kit: Kit) {
    let queue = kit.queue.clone();
    let live = job(Some(1), 1);
    let finished = job(Some(1), 2);
    let mut later_round = job(Some(1), 2);
    later_round.round = 1;
    queue
        .push(Lane::Background, &[live.clone(), finished.clone()])
        .await
        .unwrap();
    let only_two = handler(|job, _ctx| async move {
        if job.anime_id.get() == 2 {
            Ok(())
        } else {
            futures::future::pending().await
        }
    });
    let shutdown = CancellationToken::new();
    let workers = run(&queue, fast_options(), only_two, shutdown.clone()).unwrap();
    wait_for_depth(&queue, Duration::from_secs(20), |d| d.background.done == 1).await;
    let presence = queue
        .presence(&[live.clone(), finished.clone(), later_round.clone()])
        .await
        .unwrap();
    assert_eq!(
        presence,
        vec![
            JobPresence::Live,
            JobPresence::Finished,
            JobPresence::Absent
        ]
    );
    // A new round of a finished job is a new job.
    assert_eq!(queue.push(Lane::Background, &[finished]).await.unwrap(), 0);
    assert_eq!(
        queue.push(Lane::Background, &[later_round]).await.unwrap(),
        1
    );
    queue.health().await.unwrap();
    shutdown.cancel();
    drop(workers);
}

pub(crate) async fn finished_jobs_past_the_retention_are_pruned_and_live_ones_stay(kit: Kit) {
    let queue = kit.queue.clone();
    let (live, done, failed) = (job(Some(1), 1), job(Some(1), 2), job(Some(1), 3));
    queue
        .push(
            Lane::Background,
            &[live.clone(), done.clone(), failed.clone()],
        )
        .await
        .unwrap();
    let work = handler(|job, _ctx| async move {
        match job.anime_id.get() {
            2 => Ok(()),
            3 => Err(JobFailure::Abort("anime not found".into())),
            _ => futures::future::pending().await,
        }
    });
    let shutdown = CancellationToken::new();
    let workers = run(&queue, fast_options(), work, shutdown.clone()).unwrap();
    let before = wait_for_depth(&queue, Duration::from_secs(20), |d| {
        d.background.done == 1 && d.background.failed == 1
    })
    .await;
    // Younger than the retention: kept.
    assert_eq!(queue.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    let kept = queue.depth().await.unwrap();
    assert_eq!((kept.background.done, kept.background.failed), (1, 1));
    // Past it: the done and the failed job go; the running one stays, and is still live.
    assert_eq!(queue.prune(Duration::ZERO).await.unwrap(), 2);
    let after = queue.depth().await.unwrap();
    assert_eq!((after.background.done, after.background.failed), (0, 0));
    assert_eq!(
        after.background.pending + after.background.running,
        before.background.pending + before.background.running
    );
    assert_eq!(
        queue
            .presence(&[live.clone(), done.clone(), failed])
            .await
            .unwrap(),
        vec![JobPresence::Live, JobPresence::Absent, JobPresence::Absent]
    );
    // A live job is still known to a push; a pruned one is forgotten, so an item the store
    // still holds queued can be pushed again.
    assert_eq!(
        queue
            .push(Lane::Background, std::slice::from_ref(&live))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        queue
            .push(Lane::Background, std::slice::from_ref(&done))
            .await
            .unwrap(),
        1
    );
    // The workers still run, so the pushed-again job ends done; a second prune takes it and
    // only it, however often it runs.
    wait_for_depth(&queue, Duration::from_secs(20), |d| d.background.done == 1).await;
    assert_eq!(queue.prune(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(queue.prune(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(
        queue.presence(&[live, done]).await.unwrap(),
        vec![JobPresence::Live, JobPresence::Absent]
    );
    shutdown.cancel();
    drop(workers);
}

/// A database from before the finished-job counts (its triggers and table dropped here)
/// gets them counted once when a process sets them up, and setting up again counts nothing
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_of_an_older_database_are_counted_once_at_setup() {
    let (db, store) = crate::store::testing::postgres_store().await;
    drop(store);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let queue = JobQueue::new(Arc::new(PgQueue::new(
        pool.clone(),
        "the test database".to_string(),
        1,
    )));
    let jobs: Vec<FetchJob> = (1..=4).map(|anime| job(Some(1), anime)).collect();
    queue.push(Lane::Background, &jobs).await.unwrap();
    let work = handler(|job, _ctx| async move {
        match job.anime_id.get() {
            1 | 2 => Ok(()),
            3 => Err(JobFailure::Abort("anime not found".into())),
            _ => futures::future::pending().await,
        }
    });
    let shutdown = CancellationToken::new();
    let workers = run(&queue, fast_options(), work, shutdown.clone()).unwrap();
    wait_for_depth(&queue, Duration::from_secs(20), |d| {
        d.background.done == 2 && d.background.failed == 1
    })
    .await;
    shutdown.cancel();
    drop(workers);

    for event in ["insert", "update", "delete"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TRIGGER franchise_count_finished_on_{event} ON apalis.jobs"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("DROP TABLE apalis.franchise_finished_jobs")
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..2 {
        let mut tx = pool.begin().await.unwrap();
        super::postgres::count_finished_jobs(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let depth = queue.depth().await.unwrap();
        assert_eq!(
            (depth.background.done, depth.background.failed),
            (2, 1),
            "{depth:?}"
        );
    }
    // The counts follow a prune.
    assert_eq!(queue.prune(Duration::ZERO).await.unwrap(), 3);
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.background.done, depth.background.failed), (0, 0));
}

#[tokio::test]
async fn a_job_pushed_before_keys_existed_is_still_found_by_its_old_id() {
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(&queue_path(&dir), 5).await.unwrap();
    let old = job(Some(4), 16498);
    queue
        .push_with_packed_ids(Lane::Background, std::slice::from_ref(&old))
        .await;
    assert_eq!(
        queue.presence(std::slice::from_ref(&old)).await.unwrap(),
        vec![JobPresence::Live]
    );
    let mut next_round = old;
    next_round.round = 1;
    assert_eq!(
        queue.presence(&[next_round]).await.unwrap(),
        vec![JobPresence::Absent]
    );
}

#[tokio::test]
async fn the_embedded_queue_records_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = queue_path(&dir);
    let _queue = open_embedded(&path, 5).await.unwrap();
    let pid = std::fs::read_to_string(dir.path().join("queue.redb.pid")).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
}

/// Turns every backend-neutral case above into a test for one backend.
macro_rules! queue_suite {
    ($kit:path) => {
        queue_suite!(@cases $kit,
            a_repushed_import_job_is_skipped_and_open_jobs_are_not,
            every_pushed_job_is_handled_exactly_once_and_ends_done,
            an_interactive_job_overtakes_a_background_backlog,
            retries_run_again_aborts_do_not_and_attempts_are_bounded,
            graceful_stop_lets_an_in_flight_job_finish,
            options_apalis_would_panic_on_are_refused,
            presence_says_whether_a_job_is_live_finished_or_unknown,
            finished_jobs_past_the_retention_are_pruned_and_live_ones_stay
        );
    };
    (@cases $kit:path, $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($kit().await).await;
            }
        )*
    };
}

mod embedded {
    queue_suite!(super::embedded_kit);
}

mod postgres {
    queue_suite!(super::postgres_kit);
}
