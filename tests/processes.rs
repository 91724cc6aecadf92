//! Several `franchise` processes on one data dir, and processes stopped or starved: the
//! fresh-dir race, one rate budget for every process, repeated graceful stops, SIGTERM, a
//! read-only data dir and a full disk. Each runs the real binary against the fake AniList.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{
    child_log, count, describe, franchise, open_store, run, signal, snapshot, spawn, start_fake,
    text, wait_child, work_through_crashes,
};
use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel, World, WorldSpec};
use serde_json::Value;
use tokio::process::Command;

async fn status_json(data: &Path, url: &str) -> Value {
    let out = run(
        franchise(data, url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The most requests the fake's log shows inside any `window`.
fn max_in_any_window(fake: &FakeAniList, window: Duration) -> usize {
    let at: Vec<u64> = fake.stats().log.iter().map(|e| e.at_ms).collect();
    let window = window.as_millis() as u64;
    at.iter()
        .map(|start| {
            at.iter()
                .filter(|t| **t >= *start && **t < start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_started_at_once_on_a_fresh_data_dir_all_finish() {
    let world = WorldSpec::default()
        .seed(31)
        .franchises(12)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let roots: Vec<i32> = world.franchises().iter().map(|f| f.root).collect();
    let fake = start_fake(world.clone(), Duration::from_millis(10)).await;
    let url = fake.url();
    for n in [2usize, 10] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("fresh");
        let mut children = Vec::new();
        for (i, root) in roots.iter().take(n).enumerate() {
            let child = spawn(
                franchise(&data, &url),
                &["import", &root.to_string(), "--wait"],
                dir.path(),
                &format!("import-{i}"),
            );
            children.push(child);
        }
        for (i, child) in children.iter_mut().enumerate() {
            let status = wait_child(child, Duration::from_secs(120), "import --wait").await;
            assert!(
                status.success(),
                "{n} at once: process {i} failed: {status:?}\n{}",
                child_log(dir.path(), &format!("import-{i}"))
            );
        }
        let status = status_json(&data, &url).await;
        let imports = status["imports"].as_array().unwrap();
        assert_eq!(imports.len(), n, "{status:#}");
        for import in imports {
            assert_eq!(import["state"], "done", "{import:#}");
        }
        let pool = open_store(&data).await;
        let stored = count(&pool, "SELECT COUNT(*) FROM anime").await;
        let expected: usize = world
            .franchises()
            .iter()
            .take(n)
            .map(|f| world.walk(f.root).len())
            .sum();
        assert_eq!(stored as usize, expected, "{n} at once");
        pool.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_budget_for_every_process_on_a_data_dir_and_nobody_sends_during_a_ban() {
    // AniList degraded: 30 per 60 s while the headers say 90; a ban of 6 s after a 429.
    let world = WorldSpec::default()
        .seed(32)
        .franchises(10)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::degraded().ban_secs(6),
        latency: Latency::new(Duration::from_millis(20), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let budget = ["--budget", "30"];
    // AniList's burst limiter wants requests at least 500 ms apart, across processes too.
    let shipped = |data: &Path| {
        let mut cmd = franchise(data, &url);
        cmd.env("FRANCHISE_ANILIST__MIN_SPACING_MS", "500");
        cmd
    };
    let out = run(
        franchise(&data, &url),
        &[&budget[..], &["import", &giant.to_string()]].concat(),
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));

    // A restart loop of workers (each killed after 1.5 s), and a `fetch` beside each.
    let ids: Vec<String> = world
        .franchises()
        .iter()
        .skip(1)
        .map(|f| f.root.to_string())
        .collect();
    let started = Instant::now();
    for round in 0..10 {
        if round == 4 {
            // The next request, from whichever process, gets a 429 and starts the ban.
            fake.force_rate_limit();
        }
        let mut worker = spawn(
            shipped(&data),
            &[&budget[..], &["work", "--report-every", "0"]].concat(),
            dir.path(),
            &format!("work-{round}"),
        );
        let fetch_args = [&budget[..], &["fetch", &ids[round % ids.len()]]].concat();
        let fetch = run(shipped(&data), &fetch_args, Duration::from_secs(120));
        let (out, _) = tokio::join!(fetch, tokio::time::sleep(Duration::from_millis(1500)));
        let _ = worker.kill().await;
        let _ = worker.wait().await;
        assert!(
            out.status.code().is_some(),
            "fetch must exit, not crash: {}",
            describe(&out)
        );
    }
    let stats = fake.stats();
    let busiest = max_in_any_window(&fake, Duration::from_secs(60));
    println!(
        "shared budget: {} requests in {:.1} s from 20 processes, {} × 429, {} during a ban, \
         at most {busiest} in any 60 s",
        stats.requests,
        started.elapsed().as_secs_f64(),
        stats.rate_limited,
        stats.arrived_during_ban
    );
    assert_eq!(stats.arrived_during_ban, 0, "nobody sends during a ban");
    assert!(
        stats.rate_limited <= 1,
        "only the forced 429, never one earned: {}",
        stats.rate_limited
    );
    assert!(busiest <= 30, "{busiest} requests in one 60 s window");
    assert!(
        stats.requests >= 5,
        "the processes did work: {}",
        stats.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_graceful_stops_of_a_starved_worker_leave_nothing_stuck() {
    // A root with 120 relations: its level is wider than one request, so jobs of it are
    // still waiting for the budget at the next stop, and the one after.
    let world = WorldSpec::default()
        .seed(33)
        .franchises(0)
        .fan_out(120)
        .clean()
        .build();
    let root = world.franchises()[0].root;
    let size = world.walk(root).len();
    assert!(size > 100, "{size}");
    let fake = start_fake(world.clone(), Duration::from_millis(10)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(
        franchise(&data, &url),
        &["import", &root.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    // One request a minute: after the first, every job waits for the budget when stopped.
    // Two attempts per job: on the old code, the second stop exhausted them.
    for round in 0..6 {
        let mut cmd = franchise(&data, &url);
        cmd.env("FRANCHISE_QUEUE__MAX_ATTEMPTS", "2");
        let mut worker = spawn(
            cmd,
            &["--budget", "1", "work", "--report-every", "0"],
            dir.path(),
            &format!("work-{round}"),
        );
        let pid = worker.id().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal(pid, if round % 2 == 0 { "INT" } else { "TERM" }).await;
        let exit = wait_child(&mut worker, Duration::from_secs(30), "work after a signal").await;
        assert!(
            exit.success(),
            "round {round}: a graceful stop exits 0: {exit:?}\n{}",
            child_log(dir.path(), &format!("work-{round}"))
        );
    }
    // With a normal budget the queue drains, and every item is done.
    let out = run(
        franchise(&data, &url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let status = status_json(&data, &url).await;
    let import = &status["imports"][0];
    assert_eq!(import["state"], "done", "{status:#}");
    assert_eq!(import["done"], size as u64, "{status:#}");
    assert_eq!(import["failed"], 0, "{status:#}");
    let queue = &status["queue"]["background"];
    assert_eq!(queue["pending"], 0, "{status:#}");
    assert_eq!(queue["running"], 0, "{status:#}");
    assert_eq!(queue["failed"], 0, "no job failed: {status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_import_wait_gracefully_and_the_next_run_finishes() {
    let world = World::single_franchise(60, 34);
    let root = world.franchises()[0].root;
    let fake = start_fake(world.clone(), Duration::from_millis(300)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = spawn(
        franchise(&data, &url),
        &["import", &root.to_string(), "--wait"],
        dir.path(),
        "import",
    );
    let pid = child.id().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.stats().requests < 2 {
        assert!(Instant::now() < deadline, "no requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(pid, "TERM").await;
    let exit = wait_child(
        &mut child,
        Duration::from_secs(30),
        "import --wait after SIGTERM",
    )
    .await;
    let log = child_log(dir.path(), "import");
    assert_eq!(
        exit.code(),
        Some(130),
        "SIGTERM is an interruption, not a kill: {log}"
    );
    assert!(log.contains("interrupted"), "{log}");
    let out = run(
        franchise(&data, &url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(120),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let status = status_json(&data, &url).await;
    assert_eq!(status["imports"][0]["state"], "done", "{status:#}");
    assert_eq!(status["imports"][0]["done"], 60, "{status:#}");
}

/// A crash between a flush's commit and its jobs' acknowledgement leaves every import done and
/// the jobs orphaned in the queue. `work --until-idle` drains them (as no-ops) before it exits,
/// so it leaves the queue empty, not jobs the next process finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_until_idle_drains_the_jobs_a_crash_after_commit_left_behind() {
    let world = World::single_franchise(5, 8);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world, Duration::from_millis(20)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = franchise(&data, &url);
    cmd.env("FRANCHISE_FAILPOINTS", "flusher.committed=crash*1");
    let out = run(
        cmd,
        &["import", &root, "--depth", "0", "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !out.status.success(),
        "the crash point fired: {}",
        describe(&out)
    );
    assert!(
        text(&out.stderr).contains("flusher.committed fired"),
        "{}",
        describe(&out)
    );
    let status = status_json(&data, &url).await;
    // Depth 0 leaves the root's edges unwalked: the import ends capped, not running.
    assert_eq!(
        status["imports"][0]["state"], "capped",
        "the commit landed: {status:#}"
    );
    assert_eq!(status["imports"][0]["done"], 1, "{status:#}");
    assert_eq!(fake.stats().requests, 1);

    let out = run(
        franchise(&data, &url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let status = status_json(&data, &url).await;
    for lane in ["interactive", "background"] {
        for field in ["pending", "running", "failed"] {
            assert_eq!(
                status["queue"][lane][field], 0,
                "queue {lane} {field}: {status:#}"
            );
        }
    }
    assert_eq!(status["queue"]["background"]["done"], 1, "{status:#}");
    assert_eq!(
        fake.stats().requests,
        1,
        "the orphan's anime was stored: its re-run asks for nothing"
    );
}

/// A job that kills its process every time (the `fetch.crash` failure point) comes back from
/// the queue as an orphan without an attempt counted; the item's own fetch counter in the store
/// fails it instead of letting it loop forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_process_is_failed_instead_of_looping() {
    let world = World::single_franchise(5, 75);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world, Duration::from_millis(20)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = quick(&data, &url, &["import", &root]).await;
    assert!(out.status.success(), "{}", describe(&out));
    // apalis-redb counts no attempt for an orphan: the store's fetch counter (at least ten
    // requests per item) is what ends it.
    let crashes = work_through_crashes(|| franchise(&data, &url), dir.path(), 14).await;
    let status = status_json(&data, &url).await;
    let import = &status["imports"][0];
    println!(
        "a job that crashes its worker (embedded): {crashes} crashes, then {}",
        import["state"]
    );
    assert!((1..14).contains(&crashes), "{crashes} crashes: {status:#}");
    assert_eq!(import["state"], "done_with_failures", "{status:#}");
    let reason = import["failures"][0][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("deliveries") || reason.contains("sent to AniList"),
        "{reason}"
    );
    for field in ["pending", "running"] {
        assert_eq!(status["queue"]["background"][field], 0, "{status:#}");
    }
}

/// Runs `args` and returns its output within 30 s.
async fn quick(data: &Path, url: &str, args: &[&str]) -> Output {
    run(franchise(data, url), args, Duration::from_secs(30)).await
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A folder the test can mount things on, undone on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    /// A tmpfs of `size` at `at`, if this machine lets the test mount one.
    fn tmpfs(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Self(at.to_path_buf()))
    }

    fn remount(&self, options: &str) -> bool {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_dir_is_read_by_status_and_show_and_refused_by_work() {
    let world = World::single_franchise(12, 35);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world, Duration::ZERO).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ro");
    // A root user ignores permission bits, so it gets a read-only mount instead.
    let mount = if is_root() {
        Some(Mount::tmpfs(&data, "64m").expect("root can mount a tmpfs"))
    } else {
        None
    };
    let out = quick(&data, &url, &["import", &root, "--wait"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let pool = open_store(&data).await;
    let before = snapshot(&pool).await;
    pool.close().await;
    match &mount {
        Some(mount) => assert!(mount.remount("ro"), "remount read-only"),
        None => {
            for entry in std::fs::read_dir(&data).unwrap() {
                let path = entry.unwrap().path();
                let mut p = std::fs::metadata(&path).unwrap().permissions();
                p.set_readonly(true);
                std::fs::set_permissions(&path, p).unwrap();
            }
            let mut p = std::fs::metadata(&data).unwrap().permissions();
            p.set_readonly(true);
            std::fs::set_permissions(&data, p).unwrap();
        }
    }
    let out = quick(&data, &url, &["status"]).await;
    assert!(
        out.status.success(),
        "status on a read-only dir: {}",
        describe(&out)
    );
    assert!(
        text(&out.stdout).contains("12/12 done"),
        "{}",
        describe(&out)
    );
    let out = quick(&data, &url, &["show", &root]).await;
    assert!(
        out.status.success(),
        "show on a read-only dir: {}",
        describe(&out)
    );
    let started = Instant::now();
    let out = quick(&data, &url, &["work", "--until-idle"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("read-only"),
        "work says why: {}",
        describe(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    let pool = open_store(&data).await;
    assert_eq!(snapshot(&pool).await, before, "nothing changed");
    pool.close().await;
    if mount.is_none() {
        let mut p = std::fs::metadata(&data).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        p.set_readonly(false);
        std::fs::set_permissions(&data, p).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_with_a_clear_error_and_the_import_finishes_elsewhere() {
    let world = WorldSpec::default()
        .seed(36)
        .franchises(5)
        .giant(300, 12)
        .build();
    let giant = world.giants().next().unwrap().root;
    let fake = start_fake(world.clone(), Duration::from_millis(5)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    // 700 KiB: the store and queue outgrow it mid-import (at 143 of 171 anime here, in the
    // store or in the queue, whichever writes first). At 600 KiB, since the store's schema
    // rebuilds import_item once more, the store filled at the import's first flush instead.
    let mount = Mount::tmpfs(&small, "700k");
    let mut cmd = if mount.is_some() {
        franchise(&small, &url)
    } else {
        // No mounting here: a file-size limit does the same to each file (SIGXFSZ ignored,
        // so writes fail with EFBIG instead of killing the process).
        std::fs::create_dir_all(&small).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -f 600; exec {} \"$@\"",
                common::process::BIN
            ))
            .arg("franchise")
            .arg("--data-dir")
            .arg(&small)
            .arg("--anilist-url")
            .arg(&url)
            .env("FRANCHISE_QUEUE__HEARTBEAT_MS", "1000")
            .env("FRANCHISE_ANILIST__MIN_SPACING_MS", "20")
            .env("FRANCHISE_ANILIST__BUDGET_PER_MINUTE", "1000")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    cmd.args(["import", &giant.to_string(), "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("a full disk must not hang")
        .unwrap();
    let err = text(&out.stderr);
    println!(
        "full disk: exit {:?} after {:.1} s",
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains("full") || err.contains("File too large"),
        "says the disk is full: {err}"
    );
    assert!(err.contains(small.to_str().unwrap()), "and where: {err}");
    // Not the old restart loop (about 70 of these): at most apalis' own report and our
    // supervisor's warning, once for each of the two lanes.
    assert!(
        err.matches("Previous I/O error").count() <= 4,
        "no restart loop: {err}"
    );
    // The store stays readable, and nothing stored is lost: moved to a bigger disk, the
    // import finishes exactly.
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    for entry in std::fs::read_dir(&small).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, big.join(path.file_name().unwrap())).unwrap();
        }
    }
    drop(mount);
    let out = quick(&big, &url, &["status", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(
        franchise(&big, &url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(120),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let status = status_json(&big, &url).await;
    let import = &status["imports"][0];
    let walk = world.walk(giant);
    let hidden = walk
        .keys()
        .filter(|id| world.get(**id).is_some_and(|e| e.dead || e.is_adult))
        .count();
    assert_eq!(
        import["state"],
        if hidden > 0 {
            "done_with_failures"
        } else {
            "done"
        }
    );
    assert_eq!(import["discovered"], walk.len() as u64, "{status:#}");
    assert_eq!(import["done"], (walk.len() - hidden) as u64, "{status:#}");
    let pool = open_store(&big).await;
    let ids: BTreeSet<i64> = sqlx::query_scalar("SELECT id FROM anime")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), walk.len() - hidden);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_from_another_process_stops_the_requests_and_lets_work_exit() {
    let world = WorldSpec::default()
        .seed(37)
        .franchises(3)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root.to_string();
    // 400 ms per answer: a 300-anime walk takes a good while.
    let fake = start_fake(world, Duration::from_millis(400)).await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = quick(&data, &url, &["import", &giant, "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let mut worker = spawn(
        franchise(&data, &url),
        &["work", "--until-idle", "--report-every", "0"],
        dir.path(),
        "work",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.stats().requests < 3 {
        assert!(Instant::now() < deadline, "the worker never fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = quick(&data, &url, &["cancel", "1", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let cancelled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    let at_cancel = fake.stats().requests;
    // Whatever was in flight lands within a round trip or two; then nothing more.
    let exit = wait_child(&mut worker, Duration::from_secs(30), "work --until-idle").await;
    assert!(exit.success(), "{}", child_log(dir.path(), "work"));
    let after = fake.stats().requests;
    println!("cancel: {at_cancel} requests when cancelled, {after} in all");
    assert!(
        after <= at_cancel + 2,
        "{} requests after the cancel",
        after - at_cancel
    );
    let status = status_json(&data, &url).await;
    let import = &status["imports"][0];
    assert_eq!(import["state"], "cancelled", "{status:#}");
    assert_eq!(import["queued"], 0, "{status:#}");
    assert!(import["cancelled"].as_u64().unwrap() > 0, "{status:#}");
}
