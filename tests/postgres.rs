//! Scale-out on PostgreSQL: many `franchise` processes on one database and one AniList budget,
//! a click from yet another process, kill -9 across processes, and the database going away
//! and coming back (through a proxy: the machine's server is shared and never stopped).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::process::{
    BIN, child_log, describe, run, signal, spawn, spawn_serve, start_fake, text, wait_child,
    work_through_crashes,
};
use common::proxy::Proxy;
use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel, World, WorldSpec};
use franchise::{AnimeId, ImportFilter, ImportOptions, ImportState, Importer, Settings};
use serde_json::Value;
use tokio::process::Command;

/// The binary on `db`, against `url`, with a clean FRANCHISE_* environment and AniList's
/// shipped pace (500 ms between requests, across processes).
fn franchise_pg(db: &str, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FRANCHISE_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("FRANCHISE_QUEUE__HEARTBEAT_MS", "1000")
        .arg("--database-url")
        .arg(db)
        .arg("--anilist-url")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Σ⌈level/50⌉ over the walk from `root`: the fewest requests its import can take.
fn request_bound(world: &World, root: i32) -> usize {
    let mut levels: BTreeMap<usize, usize> = BTreeMap::new();
    for depth in world.walk(root).values() {
        *levels.entry(*depth).or_default() += 1;
    }
    levels.values().map(|n| n.div_ceil(50)).sum()
}

fn max_in_any_window(fake: &FakeAniList, window: Duration) -> usize {
    let at: Vec<u64> = fake.stats().log.iter().map(|e| e.at_ms).collect();
    let window = window.as_millis() as u64;
    at.iter()
        .map(|s| at.iter().filter(|t| **t >= *s && **t < s + window).count())
        .max()
        .unwrap_or(0)
}

async fn status(db: &str, url: &str) -> Value {
    let out = run(
        franchise_pg(db, url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn stored_ids(db: &TestDb) -> BTreeSet<i64> {
    let pool = db.pool().await;
    let ids = sqlx::query_scalar("SELECT id FROM anime")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    pool.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_share_one_queue_one_store_and_one_budget() {
    // AniList degraded: 30 per 60 s while the headers say 90, a burst limit, 300 ms answers.
    let world = WorldSpec::default()
        .seed(71)
        .franchises(10)
        .giant(300, 12)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root;
    let ordinary: Vec<i32> = world
        .franchises()
        .iter()
        .map(|f| f.root)
        .filter(|r| *r != giant)
        .take(10)
        .collect();
    assert_eq!(ordinary.len(), 10);
    let other = ordinary[9];
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::degraded(),
        latency: Latency::new(Duration::from_millis(300), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();

    let mut workers: Vec<_> = (0..4)
        .map(|i| {
            spawn(
                franchise_pg(&db.url, &url),
                &["work", "--report-every", "0"],
                dir.path(),
                &format!("work-{i}"),
            )
        })
        .collect();
    // Every worker is up: four heartbeat rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = status(&db.url, &url).await["workers"]
            .as_array()
            .map_or(0, Vec::len);
        if live == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{live} of 4 workers reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The giant first, then ten ordinary franchises, recorded by yet another process.
    let started = Instant::now();
    let mut args = vec!["import".to_string(), giant.to_string()];
    args.extend(ordinary.iter().take(9).map(|r| r.to_string()));
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(franchise_pg(&db.url, &url), &args, Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", describe(&out));

    // A click from a fifth process (this one), a few seconds into the drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settings = Settings::builder()
        .database_url(db.url.clone())
        .anilist_url(url.clone())
        .heartbeat_ms(1000)
        .build()
        .unwrap();
    let clicker = Importer::open(settings).await.unwrap();
    clicker.start().await.unwrap();
    let clicked = Instant::now();
    let anime = clicker
        .open_anime(AnimeId::new(i64::from(other)).unwrap())
        .await
        .unwrap();
    let click = clicked.elapsed();
    assert_eq!(anime.id.get(), other as u32);
    // The tenth ordinary franchise, imported by the clicking process alongside.
    let tenth = clicker
        .import(
            AnimeId::new(i64::from(other)).unwrap(),
            &ImportOptions::default(),
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let imports = clicker.imports(&ImportFilter::all()).await.unwrap();
        if imports.len() == 11 && imports.iter().all(|p| p.is_finished()) {
            for p in &imports {
                assert_eq!(p.state, ImportState::Done, "{p:?}");
            }
            break;
        }
        for (i, w) in workers.iter_mut().enumerate() {
            if let Some(status) = w.try_wait().unwrap() {
                panic!(
                    "worker {i} exited: {status:?}\n{}",
                    child_log(dir.path(), &format!("work-{i}"))
                );
            }
        }
        assert!(Instant::now() < deadline, "imports unfinished: {imports:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall = started.elapsed();
    clicker.close().await;
    assert!(tenth > 0);

    // Each franchise stored exactly; the budget held across all five processes.
    let mut expected: BTreeSet<i64> = world.walk(giant).keys().map(|i| i64::from(*i)).collect();
    for root in &ordinary {
        expected.extend(world.walk(*root).keys().map(|i| i64::from(*i)));
    }
    assert_eq!(stored_ids(&db).await, expected);
    let stats = fake.stats();
    let busiest = max_in_any_window(&fake, Duration::from_secs(60));
    let bound: usize = std::iter::once(giant)
        .chain(ordinary.iter().copied())
        .map(|root| request_bound(&world, root) + 3)
        .sum();
    // One round trip (300 ms) plus one budget slot (500 ms spacing), plus the
    // interactive worker noticing the job.
    let slot = Duration::from_millis(300 + 500);
    println!(
        "4 workers + 1 clicker on PostgreSQL: {} anime in {:.1} s, {} requests (bound {bound}), \
         {} × 429, {} during a ban, at most {busiest} in any 60 s; click answered in {} ms",
        expected.len(),
        wall.as_secs_f64(),
        stats.requests,
        stats.rate_limited,
        stats.arrived_during_ban,
        click.as_millis()
    );
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.arrived_during_ban, 0);
    assert!(busiest <= 30, "{busiest} requests in one 60 s window");
    assert!(
        stats.requests as usize <= bound,
        "{} requests, bound {bound}",
        stats.requests
    );
    assert!(
        click <= slot + Duration::from_millis(1200),
        "click took {click:?}"
    );

    // status sees every live worker, with host, pid and heartbeat.
    let status = status(&db.url, &url).await;
    let listed = status["workers"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{status:#}");
    let pids: BTreeSet<u64> = listed.iter().map(|w| w["pid"].as_u64().unwrap()).collect();
    let spawned: BTreeSet<u64> = workers.iter().map(|w| u64::from(w.id().unwrap())).collect();
    assert_eq!(pids, spawned);
    assert!(
        listed
            .iter()
            .all(|w| w["host"].is_string() && w["heartbeat_at_ms"].is_i64())
    );
    for w in &mut workers {
        let _ = w.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_mid_import_backs_off_reconnects_and_loses_nothing() {
    let world = World::single_franchise(60, 72);
    let root = world.franchises()[0].root;
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(150), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let db = TestDb::create().await;
    let proxy = Proxy::start(db.server_addr()).await;
    let settings = Settings::builder()
        .database_url(db.url_through(proxy.addr()))
        .anilist_url(fake.url())
        .min_spacing_ms(20)
        .heartbeat_ms(1000)
        .build()
        .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(
            AnimeId::new(i64::from(root)).unwrap(),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    // Cut mid-import, for five seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while importer.progress(id).await.unwrap().done < 10 {
        assert!(Instant::now() < deadline, "the import never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.cut();
    let requests_at_cut = fake.stats().requests;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(120);
    let progress = loop {
        match importer.progress(id).await {
            Ok(p) if p.is_finished() => break p,
            _ => {}
        }
        assert!(
            importer.halted().is_none(),
            "a lost connection must not halt: {:?}",
            importer.halted()
        );
        assert!(Instant::now() < deadline, "the import never resumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    importer.close().await;
    println!(
        "database cut for 5 s mid-import: {} requests before the cut, {} in all; {}",
        requests_at_cut,
        fake.stats().requests,
        describe_progress(&progress)
    );
    assert_eq!(progress.state, ImportState::Done, "{progress:?}");
    assert_eq!((progress.done, progress.failed), (60, 0));
    let expected: BTreeSet<i64> = world.walk(root).keys().map(|i| i64::from(*i)).collect();
    assert_eq!(stored_ids(&db).await, expected, "nothing lost");
}

fn describe_progress(p: &franchise::ImportProgress) -> String {
    format!(
        "{} {}/{} done, {} failed",
        p.state, p.done, p.discovered, p.failed
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_killed_at_seeded_moments_lose_and_duplicate_nothing() {
    let kills: usize = std::env::var("PG_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = 0x5eed_0fc0;
    let world = WorldSpec::default()
        .seed(73)
        .franchises(6)
        .giant(300, 12)
        .clean()
        .build();
    let roots: Vec<String> = world
        .franchises()
        .iter()
        .map(|f| f.root.to_string())
        .collect();
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(60), Duration::from_millis(30)),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let quick = |db: &str| {
        let mut cmd = franchise_pg(db, &url);
        cmd.env("FRANCHISE_ANILIST__MIN_SPACING_MS", "20")
            .env("FRANCHISE_ANILIST__BUDGET_PER_MINUTE", "1000");
        cmd
    };
    let mut import: Vec<&str> = vec!["import"];
    import.extend(roots.iter().map(String::as_str));

    // The reference: one uninterrupted process.
    let reference = TestDb::create().await;
    let out = run(quick(&reference.url), &import, Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(
        quick(&reference.url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(300),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    fake.reset_stats();

    // Chaos: three workers, one killed and restarted at seeded moments.
    let db = TestDb::create().await;
    let out = run(quick(&db.url), &import, Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let started = Instant::now();
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let work = ["work", "--report-every", "0"];
    let mut workers: Vec<_> = (0..3)
        .map(|i| spawn(quick(&db.url), &work, dir.path(), &format!("w{i}-0")))
        .collect();
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(100 + next() % 700)).await;
        let victim = (next() % 3) as usize;
        workers[victim].kill().await.unwrap();
        let _ = workers[victim].wait().await;
        workers[victim] = spawn(
            quick(&db.url),
            &work,
            dir.path(),
            &format!("w{victim}-{}", k + 1),
        );
    }
    let killing = started.elapsed();
    // Then the survivors drain what is left.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = status(&db.url, &url).await;
        let imports = status["imports"].as_array().unwrap();
        let queue = &status["queue"]["background"];
        if imports.iter().all(|i| i["state"] != "running")
            && queue["pending"] == 0
            && queue["running"] == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stuck after the kills: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for w in &mut workers {
        let _ = w.kill().await;
    }
    let stats = fake.stats();
    let asked: Vec<i32> = stats.log.iter().flat_map(|e| e.ids.clone()).collect();
    let unique: BTreeSet<i32> = asked.iter().copied().collect();
    let same = snapshot(&reference).await == snapshot(&db).await;
    let expected = stored_ids(&reference).await;
    let got = stored_ids(&db).await;
    let lost = expected.difference(&got).count();
    println!(
        "PostgreSQL chaos (seed {seed:#x}): {kills} kills over {:.1} s across 3 workers; {} ids \
         asked, {} refetched; lost {lost}, duplicates {}; total {:.1} s",
        killing.as_secs_f64(),
        asked.len(),
        asked.len() - unique.len(),
        got.len().saturating_sub(expected.len()),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0);
    assert!(same, "the store differs from the uninterrupted run's");
    // Every item of every import is done, as in the reference.
    let pool = db.pool().await;
    let unsettled: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM import_item WHERE state <> 'done'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(unsettled, 0);
}

/// The comparable contents of a store: anime (no fetch time), relations, items (settled by
/// their own request or by a relation's deeper answer alike; see `common::process::snapshot`).
async fn snapshot(db: &TestDb) -> [Vec<String>; 3] {
    let pool = db.pool().await;
    let rows = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let snapshot = [
        rows(
            "SELECT json_build_array(id, id_mal, kind, title_romaji, title_english, title_native, \
             format, status, episodes, season, season_year, start_year, start_month, start_day)::text \
             FROM anime ORDER BY id",
        )
        .await,
        rows(
            "SELECT json_build_array(anime_id, related_id, relation_type, derived, related_kind, \
             related_format, related_status, related_title, edge_id)::text \
             FROM anime_relation ORDER BY anime_id, related_id",
        )
        .await,
        rows(
            "SELECT json_build_array(import_id, anime_id, depth, state, \
             NULLIF(reason, 'fetched with its relation''s request'))::text \
             FROM import_item ORDER BY import_id, anime_id",
        )
        .await,
    ];
    pool.close().await;
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_from_any_process_while_workers_run() {
    let world = World::single_franchise(20, 74);
    let root = world.franchises()[0].root.to_string();
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(100), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = spawn(
        franchise_pg(&db.url, &url),
        &["work", "--report-every", "0"],
        dir.path(),
        "work",
    );
    let out = run(
        franchise_pg(&db.url, &url),
        &["import", &root, "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(
        out.status.success(),
        "import --wait beside a worker: {}",
        describe(&out)
    );
    for args in [
        vec!["open", root.as_str()],
        vec!["show", root.as_str()],
        vec!["status"],
    ] {
        let out = run(franchise_pg(&db.url, &url), &args, Duration::from_secs(60)).await;
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        assert!(
            !text(&out.stderr).contains("owned by"),
            "{args:?}: {}",
            describe(&out)
        );
    }
    // The import is done: cancel and retry are refused for its state, not for the owner.
    for (args, says) in [
        (vec!["cancel", "1"], "import 1 already finished (done)"),
        (
            vec!["retry", "1"],
            "import 1 has no failed or cancelled anime to retry",
        ),
    ] {
        let out = run(franchise_pg(&db.url, &url), &args, Duration::from_secs(60)).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            describe(&out)
        );
    }
    let _ = worker.kill().await;
    let _ = wait_child(&mut worker, Duration::from_secs(10), "work").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_process_is_failed_instead_of_looping() {
    let world = World::single_franchise(5, 75);
    let root = world.franchises()[0].root.to_string();
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        franchise_pg(&db.url, &url),
        &["import", &root],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    // Every worker aborts right after sending its first request, as a crash would. apalis
    // puts a dead worker's jobs back without checking their attempts.
    let crashes = work_through_crashes(|| franchise_pg(&db.url, &url), dir.path(), 8).await;
    let status = status(&db.url, &url).await;
    let import = &status["imports"][0];
    println!(
        "a job that crashes its worker: {crashes} crashes, then {}",
        import["state"]
    );
    assert!((1..8).contains(&crashes), "{crashes} crashes: {status:#}");
    assert_eq!(import["state"], "done_with_failures", "{status:#}");
    let reason = import["failures"][0][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("deliveries") || reason.contains("sent to AniList"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_database_answer_for_the_same_imports() {
    let db = TestDb::create().await;
    let world = World::single_franchise(40, 37);
    let root = world.franchises()[0].root;
    let fake = start_fake(world, Duration::from_millis(100)).await;
    let logs = tempfile::tempdir().unwrap();
    let (mut a, api_a) = spawn_serve(franchise_pg(&db.url, &fake.url()), logs.path(), "a").await;
    let (mut b, api_b) = spawn_serve(franchise_pg(&db.url, &fake.url()), logs.path(), "b").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // B's event stream tells of an import started through A, up to its finish.
    let mut events = http.get(format!("{api_b}api/events")).send().await.unwrap();
    let started: Value = http
        .post(format!("{api_a}api/imports"))
        .json(&serde_json::json!({ "root": root }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["import_id"].as_i64().unwrap();
    let mut seen = String::new();
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: finished") {
                return;
            }
        }
    })
    .await;
    assert!(finished.is_ok(), "B never told the finish: {seen}");
    let import: Value = http
        .get(format!("{api_b}api/imports/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(import["state"], "done", "{import}");
    assert_eq!(import["done"], 40);
    let status: Value = http
        .get(format!("{api_a}api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let apis: BTreeSet<String> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["api_url"].as_str().map(str::to_string))
        .collect();
    assert_eq!(apis, BTreeSet::from([api_a.clone(), api_b.clone()]));
    for (child, name) in [(&mut a, "a"), (&mut b, "b")] {
        signal(child.id().unwrap(), "TERM").await;
        let exit = wait_child(child, Duration::from_secs(30), name).await;
        assert_eq!(exit.code(), Some(0), "{}", child_log(logs.path(), name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_wait_out_an_unreachable_anilist_and_book_no_phantom_requests() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on yet: AniList is unreachable from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let world = World::single_franchise(7, 91);
    let root = world.franchises()[0].root;
    let members = world.franchises()[0].members.len() as u64;
    let quick = |db: &str| {
        let mut cmd = franchise_pg(db, &url);
        cmd.env("FRANCHISE_ANILIST__MIN_SPACING_MS", "100")
            .env("FRANCHISE_ANILIST__OUTAGE_PAUSE_MIN_SECS", "0.5")
            .env("FRANCHISE_ANILIST__OUTAGE_PAUSE_MAX_SECS", "2");
        cmd
    };
    let work = ["work", "--report-every", "0"];
    let mut workers: Vec<_> = (0..2)
        .map(|i| spawn(quick(&db.url), &work, dir.path(), &format!("w{i}")))
        .collect();
    let out = run(
        quick(&db.url),
        &["import", &root.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));

    // Both find AniList unreachable, probe one at a time, and book nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let down = loop {
        let s = status(&db.url, &url).await;
        if s["upstream"]["state"] == "unreachable" {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = status(&db.url, &url).await;
    println!(
        "two workers, AniList unreachable: {} probes failed in ~4 s, {} requests booked",
        later["budget"]["outages_seen"].as_u64().unwrap_or(0)
            - down["budget"]["outages_seen"].as_u64().unwrap_or(0),
        later["budget"]["requests_made"]
    );
    assert_eq!(later["budget"]["requests_made"], 0, "{later:#}");
    assert_eq!(later["imports"][0]["failed"], 0, "{later:#}");
    for (i, w) in workers.iter_mut().enumerate() {
        assert!(
            w.try_wait().unwrap().is_none(),
            "w{i} exited: {}",
            child_log(dir.path(), &format!("w{i}"))
        );
    }

    // AniList comes back: the import finishes exactly, and the budget booked exactly the
    // requests that reached it.
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        port,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let back = Instant::now();
    let done = loop {
        let s = status(&db.url, &url).await;
        if s["imports"][0]["state"] != "running" {
            break s;
        }
        assert!(back.elapsed() < Duration::from_secs(60), "{s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "finished {:.1} s after AniList came back, {} requests",
        back.elapsed().as_secs_f64(),
        fake.stats().requests
    );
    assert_eq!(done["imports"][0]["done"], members, "{done:#}");
    assert_eq!(done["imports"][0]["failed"], 0, "{done:#}");
    assert_eq!(done["upstream"]["state"], "ok", "{done:#}");
    assert_eq!(
        done["budget"]["requests_made"].as_u64().unwrap(),
        fake.stats().requests,
        "{done:#}"
    );
    for mut w in workers {
        let _ = w.kill().await;
    }
}

/// A queue that keeps refusing the flush's in-transaction push (failure point `store.enqueue`)
/// halts the pipeline after the flusher's ten tries, with one message that names the job
/// queue, not the store or a lost connection (it used to be read as one, and retried forever).
/// Every flush rolled back whole: a run without the fault finishes the import exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_keeps_refusing_the_flush_halts_with_one_message_naming_it() {
    use franchise::testing::{FailAction, FailPoints};
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let world = World::single_franchise(8, 12);
    let root = world.franchises()[0].root;
    let members = world.franchises()[0].members.len() as u64;
    let fake = start_fake(world, Duration::ZERO).await;
    // One level per request, so each flush has the next level's jobs to push.
    let settings = common::run::builder(dir.path(), &fake)
        .database_url(&db.url)
        .walk_levels(1)
        .build()
        .unwrap();
    let points = FailPoints::new();
    let importer = Importer::builder(settings.clone())
        .failpoints(points.clone())
        .open()
        .await
        .unwrap();
    let id = importer
        .import(common::run::aid(root), &ImportOptions::default())
        .await
        .unwrap();
    // Armed once the root's job is pushed: only the flushes' pushes fail.
    points.arm("store.enqueue", FailAction::Error, None);
    importer.start().await.unwrap();
    let halt = tokio::time::timeout(Duration::from_secs(120), importer.until_halted())
        .await
        .expect("the pipeline halts instead of retrying forever");
    println!("halted: {halt}");
    assert!(
        halt.message.contains("job queue kept refusing")
            && halt.message.contains("failure point store.enqueue fired"),
        "{halt}"
    );
    assert!(!halt.message.contains("connection"), "{halt}");
    assert_eq!(points.fired("store.enqueue"), 10, "the flusher's ten tries");
    importer.stop().await;
    let p = importer.progress(id).await.unwrap();
    assert_eq!((p.done, p.failed), (0, 0), "every flush rolled back: {p:?}");
    importer.close().await;

    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let p = common::run::wait_done(&importer, id, Duration::from_secs(60)).await;
    assert_eq!(
        (p.state, p.done, p.failed),
        (ImportState::Done, members, 0),
        "{p:?}"
    );
    importer.close().await;
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// GETs `url` and reads its JSON.
async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls an import through `api` until it is finished.
async fn wait_finished(http: &reqwest::Client, api: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let import = get_json(http, format!("{api}api/imports/{id}")).await;
        if !import["finished_at_ms"].is_null() {
            return import;
        }
        assert!(
            Instant::now() < deadline,
            "import {id} never finished: {import}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_import_through_one_serve_process_reaches_the_others_cache_within_a_second() {
    let db = TestDb::create().await;
    let world = World::single_franchise(12, 41);
    let root = world.franchises()[0].root;
    let fake = start_fake(world, Duration::from_millis(20)).await;
    let logs = tempfile::tempdir().unwrap();
    let quick = || {
        let mut cmd = franchise_pg(&db.url, &fake.url());
        cmd.env("FRANCHISE_ANILIST__MIN_SPACING_MS", "50");
        cmd
    };
    let (mut a, api_a) = spawn_serve(quick(), logs.path(), "a").await;
    let (mut b, api_b) = spawn_serve(quick(), logs.path(), "b").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = |api: &str, force: bool| {
        let request = http
            .post(format!("{api}api/imports"))
            .json(&serde_json::json!({ "root": root, "force_refresh": force }));
        async move {
            let started: Value = request.send().await.unwrap().json().await.unwrap();
            started["import_id"].as_i64().unwrap()
        }
    };
    let id = start(&api_a, false).await;
    assert_eq!(wait_finished(&http, &api_a, id).await["state"], "done");

    // Each process reads the root and its franchise twice: a miss, then a hit.
    let mut before = Value::Null;
    for api in [&api_a, &api_b] {
        for _ in 0..2 {
            before = get_json(&http, format!("{api}api/anime/{root}")).await;
            let franchise = get_json(&http, format!("{api}api/franchise/{root}")).await;
            assert_eq!(franchise["anime"].as_array().map(Vec::len), Some(12));
        }
    }
    let fetched_before = before["fetched_at_ms"].as_i64().unwrap();
    for api in [&api_a, &api_b] {
        let cache = &get_json(&http, format!("{api}api/status")).await["cache"];
        assert_eq!(cache["enabled"], true, "{api}: {cache}");
        assert_eq!(
            cache["short_ttl_ms"],
            Value::Null,
            "{api} hears rewrites: {cache}"
        );
        for tier in ["basic", "franchise"] {
            assert_eq!(cache[tier]["misses"], 1, "{api} {tier}: {cache}");
            assert_eq!(cache[tier]["hits"], 1, "{api} {tier}: {cache}");
        }
    }

    // A forced re-import through B rewrites every member; A's next read shows it.
    let again = start(&api_b, true).await;
    assert_eq!(wait_finished(&http, &api_b, again).await["state"], "done");
    let finished = Instant::now();
    let seen = loop {
        let anime = get_json(&http, format!("{api_a}api/anime/{root}")).await;
        if anime["fetched_at_ms"].as_i64().unwrap() > fetched_before {
            break finished.elapsed();
        }
        assert!(
            finished.elapsed() < Duration::from_secs(1),
            "A still answers the copy from before B's re-import: {anime}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let franchise = get_json(&http, format!("{api_a}api/franchise/{root}")).await;
    assert_eq!(franchise["anime"].as_array().map(Vec::len), Some(12));
    let cache = &get_json(&http, format!("{api_a}api/status")).await["cache"];
    assert!(
        cache["franchise"]["misses"].as_u64() >= Some(2),
        "the franchise was read afresh: {cache}"
    );
    println!(
        "B's re-import seen by A's cache {:.0} ms after it finished",
        seen.as_secs_f64() * 1000.0
    );
    for (child, name) in [(&mut a, "a"), (&mut b, "b")] {
        signal(child.id().unwrap(), "TERM").await;
        let exit = wait_child(child, Duration::from_secs(30), name).await;
        assert_eq!(exit.code(), Some(0), "{}", child_log(logs.path(), name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_rewrite_feed_shortens_the_cache_until_it_is_heard_again() {
    use franchise::testing::{FailAction, FailPoints};

    let db = TestDb::create().await;
    let fake = start_fake(World::single_franchise(3, 43), Duration::ZERO).await;
    let settings = Settings::builder()
        .database_url(&db.url)
        .anilist_url(fake.url())
        .build()
        .unwrap();
    let points = FailPoints::new();
    let importer = Importer::builder(settings)
        .failpoints(points.clone())
        .open()
        .await
        .unwrap();
    let short = || importer.cache_stats().short_ttl_ms;
    until("the feed is heard", || short().is_none()).await;
    assert!(importer.cache_stats().enabled);

    // The listener's connection dies, and the database refuses a new one for a while.
    points.arm("rewrites.listen", FailAction::Error, None);
    let pool = db.pool().await;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(cut, vec![true], "one listener connection");
    until("the cache falls back to a short TTL", || {
        short() == Some(1000)
    })
    .await;
    until("it tries to listen again", || {
        points.fired("rewrites.listen") >= 2
    })
    .await;
    assert_eq!(short(), Some(1000), "still short while it cannot hear");

    points.disarm("rewrites.listen");
    until("the feed is heard again", || short().is_none()).await;
    importer.close().await;
}

/// The README promises that a lost database is waited out: `import --wait` rides out a 30 s
/// cut of every connection (the database restarting, the network gone), says so once, and
/// ends exit 0 with the franchise stored exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_wait_rides_out_a_30_s_database_cut_and_ends_exact() {
    let world = World::single_franchise(60, 75);
    let root = world.franchises()[0].root;
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(150), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let db = TestDb::create().await;
    let proxy = Proxy::start(db.server_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut import = spawn(
        franchise_pg(&db.url_through(proxy.addr()), &fake.url()),
        &["import", &root.to_string(), "--wait"],
        dir.path(),
        "import",
    );
    until("a few requests made", || fake.stats().requests >= 3).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(30)).await;
    proxy.restore();
    let out = wait_child(&mut import, Duration::from_secs(120), "import").await;
    let log = child_log(dir.path(), "import");
    assert!(out.success(), "import --wait exited {out:?}: {log}");
    let expected: BTreeSet<i64> = world.walk(root).keys().map(|i| i64::from(*i)).collect();
    assert_eq!(stored_ids(&db).await, expected, "nothing lost");
    // Said once each way, whatever the workers, retries and ticks met meanwhile.
    assert_eq!(log.matches("lost the database").count(), 1, "{log}");
    assert_eq!(
        log.matches("the database answers again").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}

/// Twenty processes at once on a fresh database, with the server's stock max_connections of
/// 100 shared with whatever else runs: every pool is small by default, and a server with no
/// connection free is waited for, so every process exits 0 and every franchise is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_at_once_fit_a_server_of_100_connections() {
    // Fourteen imports big enough that each process's workers want every connection its pool
    // allows.
    let world = (0..14)
        .fold(WorldSpec::default().seed(76).franchises(0), |spec, _| {
            spec.giant(60, 6)
        })
        .clean()
        .build();
    let roots: Vec<i32> = world.giants().map(|f| f.root).collect();
    assert_eq!(roots.len(), 14);
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(50), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let name = format!("import{i}");
        let child = spawn(
            franchise_pg(&db.url, &fake.url()),
            &["import", &root.to_string(), "--wait"],
            dir.path(),
            &name,
        );
        children.push((name, child));
    }
    for i in 0..6 {
        let name = format!("status{i}");
        let child = spawn(
            franchise_pg(&db.url, &fake.url()),
            &["status", "--json"],
            dir.path(),
            &name,
        );
        children.push((name, child));
    }
    for (name, child) in &mut children {
        let status = wait_child(child, Duration::from_secs(180), name).await;
        assert!(status.success(), "{name}: {}", child_log(dir.path(), name));
    }
    let expected: BTreeSet<i64> = roots
        .iter()
        .flat_map(|root| world.walk(*root).into_keys())
        .map(i64::from)
        .collect();
    assert_eq!(stored_ids(&db).await, expected);
}
