//! The `franchise` binary end to end, against an in-process fake AniList over loopback: a
//! kill -9 in the middle of an import resumes to the very store an uninterrupted run builds,
//! the JSON shapes of `status`, `show` and `import`, a second process while another owns the
//! queue (or has just stopped answering), and bad input refused with a message that names it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::{
    assert_success, child_log, count, describe, franchise, open_store, open_store_when_created,
    run, snapshot, spawn, start_fake, store_counts, text, wait_child,
};
use fake_anilist::world::WorldSpec;
use fake_anilist::{FakeAniList, World};
use serde_json::{Value, json};
use sqlx::sqlite::SqlitePool;
use tokio::process::{Child, Command};

/// (done, queued, finished) of one import.
async fn progress(pool: &SqlitePool, import_id: i64) -> (i64, i64, bool) {
    let (done, queued): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(state = 'done'), 0), COALESCE(SUM(state = 'queued'), 0) \
         FROM import_item WHERE import_id = $1",
    )
    .bind(import_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let finished: Option<Option<i64>> =
        sqlx::query_scalar("SELECT finished_at FROM import WHERE id = $1")
            .bind(import_id)
            .fetch_optional(pool)
            .await
            .unwrap();
    (done, queued, matches!(finished, Some(Some(_))))
}

/// The anime ids an import reached, as (id, depth), with every item's state.
async fn items(pool: &SqlitePool, import_id: i64) -> BTreeMap<i32, (usize, String)> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT anime_id, depth, state FROM import_item WHERE import_id = $1 ORDER BY anime_id",
    )
    .bind(import_id)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, depth, state)| (id as i32, (depth as usize, state)))
        .collect()
}

/// What a finished import of `root` must hold: every member of the walk, done, at its depth.
fn expected_items(world: &World, root: i32) -> BTreeMap<i32, (usize, String)> {
    world
        .walk(root)
        .into_iter()
        .map(|(id, depth)| (id, (depth, "done".to_string())))
        .collect()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn key_set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// Sends SIGTERM with the system's `kill` (the crate has no libc dependency).
/// The race a terminal can lose: the owner's API answered the probe, then the owner exited
/// before the request. Here the owner is frozen (SIGSTOP) and advertises a gate that accepts
/// one connection (the probe) and then closes, so every later connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_whose_owner_goes_between_probe_and_request_does_the_work_itself() {
    let world = World::single_franchise(12, 6);
    let root = world.franchises()[0].root;
    let fake = start_fake(world.clone(), Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = fake.url();

    let mut worker = spawn(
        franchise(&data, &url),
        &["work", "--report-every", "0"],
        dir.path(),
        "work",
    );
    let pid = worker.id().expect("worker pid");
    let pool = open_store_when_created(&data, Duration::from_secs(30)).await;
    advertised_api(&pool, &mut worker, dir.path(), "work").await;
    let writer = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(data.join("franchise.sqlite"))
                .busy_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap();

    // `import`: recorded here, handed off to the queue's owner.
    let gate = ProbeGate::open().await;
    freeze_advertising(pid, &writer, &gate.url).await;
    let out = run(
        franchise(&data, &url),
        &["import", &root.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_success("import whose owner went after the probe", &out);
    assert!(gate.probed().await, "the CLI took the API for live");
    assert!(
        text(&out.stdout).contains(&format!(
            "import 1 of anime {root} recorded; the franchise process that owns the queue \
             (pid {pid}) runs it"
        )),
        "{}",
        describe(&out)
    );

    // `status`: read from the store, without a note that something is wrong.
    let gate = ProbeGate::open().await;
    freeze_advertising(pid, &writer, &gate.url).await;
    let out = run(
        franchise(&data, &url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("status whose owner went after the probe", &out);
    assert!(gate.probed().await, "the CLI took the API for live");
    assert!(!text(&out.stderr).contains("note:"), "{}", describe(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["imports"][0]["import_id"], 1, "{status:#}");

    // Thawed, the owner takes the hand-off and finishes the import.
    kill(pid, "-CONT").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !progress(&pool, 1).await.2 {
        assert!(
            Instant::now() < deadline,
            "the owner never finished the handed-off import ({:?})\n{}",
            progress(&pool, 1).await,
            child_log(dir.path(), "work")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items(&pool, 1).await, expected_items(&world, root));

    sigterm(pid).await;
    let exit = wait_child(&mut worker, Duration::from_secs(30), "work after SIGTERM").await;
    assert!(
        exit.success(),
        "{exit:?}\n{}",
        child_log(dir.path(), "work")
    );
    writer.close().await;
    pool.close().await;
}

/// A loopback listener that accepts one connection, closes it and stops listening.
struct ProbeGate {
    url: String,
    probed: tokio::sync::oneshot::Receiver<()>,
}

impl ProbeGate {
    async fn open() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tell, probed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Ok((connection, _)) = listener.accept().await {
                drop(connection);
                drop(listener);
                let _ = tell.send(());
            }
        });
        Self { url, probed }
    }

    async fn probed(self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), self.probed)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Stops `pid` (so its heartbeat cannot write its own address back) and advertises `url` as
/// its API. A process stopped in the middle of a write holds the lock: let it finish, retry.
async fn freeze_advertising(pid: u32, writer: &SqlitePool, url: &str) {
    for _ in 0..50 {
        kill(pid, "-STOP").await;
        let written = sqlx::query("UPDATE worker_process SET api_url = $1 WHERE pid = $2")
            .bind(url)
            .bind(i64::from(pid))
            .execute(writer)
            .await;
        match written {
            Ok(done) => {
                assert_eq!(done.rows_affected(), 1, "the owner's row is there");
                return;
            }
            Err(_) => {
                kill(pid, "-CONT").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    panic!("could not write the advertised address beside process {pid}");
}

async fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .await
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}: {status:?}");
}

async fn sigterm(pid: u32) {
    kill(pid, "-TERM").await;
}

// ---------------------------------------------------------------------------------------------

/// Polls `data_dir`'s store while `child` runs and SIGKILLs it once at least `done_at_least`
/// items are done, some are still queued, and a request is in flight at the fake (so the
/// killed run leaves jobs it had taken). Requests logged before `log_since` are ignored. Returns the done count at the kill, or None if the
/// child exited by itself first (its status is checked to be success).
async fn kill_when(
    child: &mut Child,
    fake: &FakeAniList,
    log_since: usize,
    data_dir: &Path,
    done_at_least: i64,
    within: Duration,
    what: &str,
) -> Option<Kill> {
    let pool = open_store_when_created(data_dir, within).await;
    let deadline = Instant::now() + within;
    let result = loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} exited with {status:?}");
            break None;
        }
        let (done, queued, _) = progress(&pool, 1).await;
        if done >= done_at_least && queued > 0 {
            let log = fake.stats().log;
            // A request whose client was killed before stays unanswered in the log forever.
            let in_flight: Vec<i32> = log[log_since.min(log.len())..]
                .iter()
                .filter(|e| e.status.is_none())
                .flat_map(|e| e.ids.clone())
                .collect();
            if !in_flight.is_empty() {
                child.kill().await.expect("SIGKILL");
                break Some(Kill {
                    done,
                    in_flight,
                    log_len: log.len(),
                });
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never reached {done_at_least} done (at {done}, {queued} queued)"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    pool.close().await;
    result
}

/// Where a SIGKILL hit: the items done by then, the ids of the requests it cut off, and how
/// many requests the fake had logged.
#[derive(Debug)]
struct Kill {
    done: i64,
    in_flight: Vec<i32>,
    log_len: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_import_then_work_resumes_to_an_identical_store() {
    let world = WorldSpec::default()
        .seed(21)
        .franchises(0)
        .giant(120, 8)
        .clean()
        .build();
    let root = world.giants().next().expect("a giant").root;
    let walk = world.walk(root);
    assert_eq!(walk.len(), 120, "the giant's walk has its asked-for size");
    let latency = Duration::from_millis(150);
    let root_arg = root.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b, logs) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().to_path_buf(),
    );

    // (a) The reference: one uninterrupted run.
    let fake_a = start_fake(world.clone(), latency).await;
    let started = Instant::now();
    let out = run(
        franchise(&dir_a, &fake_a.url()),
        &["import", &root_arg, "--wait"],
        Duration::from_secs(120),
    )
    .await;
    assert_success("reference import --wait", &out);
    let reference_secs = started.elapsed().as_secs_f64();
    let requests_a = fake_a.stats().requests;

    // (b) The same import, SIGKILLed mid-walk, then drained by `work --until-idle`.
    let fake_b = start_fake(world.clone(), latency).await;
    let url_b = fake_b.url();
    let started = Instant::now();
    let mut kills = Vec::new();
    let mut child = spawn(
        franchise(&dir_b, &url_b),
        &["import", &root_arg, "--wait"],
        &logs,
        "crash-import",
    );
    let killed_at = kill_when(
        &mut child,
        &fake_b,
        0,
        &dir_b,
        5,
        Duration::from_secs(60),
        "import --wait",
    )
    .await;
    let killed_at = killed_at.unwrap_or_else(|| {
        panic!(
            "the import finished before it could be killed; slow the fake down\n{}",
            child_log(&logs, "crash-import")
        )
    });
    let (first_done, first_log_len) = (killed_at.done, killed_at.log_len);
    kills.push(killed_at);

    // A second kill, of the resuming worker, once it has made progress of its own.
    let mut child = spawn(
        franchise(&dir_b, &url_b),
        &["work", "--until-idle", "--report-every", "0"],
        &logs,
        "crash-work",
    );
    if let Some(kill) = kill_when(
        &mut child,
        &fake_b,
        first_log_len,
        &dir_b,
        first_done + 10,
        Duration::from_secs(60),
        "work --until-idle (to be killed)",
    )
    .await
    {
        kills.push(kill);
    }

    let out = run(
        franchise(&dir_b, &url_b),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(120),
    )
    .await;
    assert_success("resuming work --until-idle", &out);
    let crash_secs = started.elapsed().as_secs_f64();
    let requests_b = fake_b.stats().requests;

    // (c) Both stores hold the same thing.
    let a = open_store(&dir_a).await;
    let b = open_store(&dir_b).await;
    let (done_b, queued_b, finished_b) = progress(&b, 1).await;
    assert_eq!(queued_b, 0, "nothing left queued after the resume");
    assert!(finished_b, "the resumed import is marked finished");
    assert_eq!(done_b, 120);
    assert!(progress(&a, 1).await.2, "the reference import is finished");
    assert_eq!(count(&b, "SELECT COUNT(*) FROM import").await, 1);

    let ids_a: BTreeSet<i32> = sqlx::query_scalar::<_, i64>("SELECT id FROM anime")
        .fetch_all(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id as i32)
        .collect();
    let expected: BTreeSet<i32> = walk.keys().copied().collect();
    assert_eq!(ids_a, expected, "the stored anime are the world's walk");
    assert_eq!(items(&a, 1).await, expected_items(&world, root));

    let [anime_a, relations_a, items_a] = snapshot(&a).await;
    let [anime_b, relations_b, items_b] = snapshot(&b).await;
    assert_eq!(anime_a.len(), 120);
    assert!(relations_a.len() > 120, "{} relations", relations_a.len());
    assert_eq!(
        anime_b, anime_a,
        "anime rows differ after kill -9 and resume"
    );
    assert_eq!(
        relations_b, relations_a,
        "relation rows differ after kill -9 and resume"
    );
    assert_eq!(
        items_b, items_a,
        "import items differ after kill -9 and resume"
    );
    assert_eq!(store_counts(&b).await, store_counts(&a).await);
    // What each kill cut off was asked for again, and answered, by a later run.
    let log_b = fake_b.stats().log;
    for kill in &kills {
        let asked_again: BTreeSet<i32> = log_b[kill.log_len..]
            .iter()
            .filter(|e| e.status == Some(200))
            .flat_map(|e| e.ids.iter().copied())
            .collect();
        for id in &kill.in_flight {
            assert!(
                asked_again.contains(id),
                "{id}, in flight at {kill:?}, never re-fetched"
            );
        }
    }

    println!(
        "kill -9 resume: {} anime, {} relations; reference {reference_secs:.1} s, {requests_a} \
         requests; crash run {crash_secs:.1} s, {requests_b} requests, {} kills at {:?} done \
         with {:?} ids in flight",
        anime_a.len(),
        relations_a.len(),
        kills.len(),
        kills.iter().map(|k| k.done).collect::<Vec<_>>(),
        kills.iter().map(|k| k.in_flight.len()).collect::<Vec<_>>(),
    );
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_has_the_documented_shape_and_matches_the_store() {
    let world = World::single_franchise(12, 5);
    let root = world.franchises()[0].root;
    let fake = start_fake(world.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();

    let out = run(
        franchise(dir.path(), &url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("status --json on an empty data dir", &out);
    let empty: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(empty["imports"], Value::Array(vec![]), "{empty}");

    let out = run(
        franchise(dir.path(), &url),
        &["import", &root.to_string(), "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert_success("import --wait", &out);

    let out = run(
        franchise(dir.path(), &url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("status --json", &out);
    let status: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", describe(&out)));
    assert_eq!(
        keys(&status),
        key_set(&["imports", "queue", "budget", "upstream", "workers", "cache"]),
        "{status:#}"
    );
    assert_eq!(
        keys(&status["upstream"]),
        key_set(&["state", "message", "since_ms", "retry_at_ms"]),
        "{status:#}"
    );
    assert_eq!(status["upstream"]["state"], "ok", "{status:#}");
    let imports = status["imports"].as_array().expect("imports is an array");
    assert_eq!(imports.len(), 1, "{status:#}");
    let import = &imports[0];
    let have = keys(import);
    for key in [
        "import_id",
        "root",
        "discovered",
        "done",
        "failed",
        "queued",
        "cancelled",
        "unwalked_edges",
        "state",
        "eta_secs",
        "eta_at_least_secs",
        "failures",
    ] {
        assert!(have.contains(key), "import lacks {key}: {import:#}");
    }

    let pool = open_store(dir.path()).await;
    let done = count(
        &pool,
        "SELECT COUNT(*) FROM import_item WHERE import_id = 1 AND state = 'done'",
    )
    .await;
    let discovered = count(
        &pool,
        "SELECT COUNT(*) FROM import_item WHERE import_id = 1",
    )
    .await;
    assert_eq!(done, 12, "every anime of the franchise is done");
    assert_eq!(import["import_id"], 1);
    assert_eq!(import["root"], root);
    assert_eq!(import["done"], done);
    assert_eq!(import["discovered"], discovered);
    assert_eq!(import["failed"], 0);
    assert_eq!(import["queued"], 0);
    assert_eq!(import["state"], "done");
    assert_eq!(import["failures"], Value::Array(vec![]));
    assert!(import["eta_secs"].is_null(), "finished, no ETA: {import}");
    assert_eq!(
        status["workers"],
        Value::Array(vec![]),
        "no worker runs now: {status:#}"
    );
    // The budget lives in the store: any process reads the same one, requests and all.
    assert_eq!(
        status["budget"]["requests_made"],
        fake.stats().requests,
        "{status:#}"
    );
    assert_eq!(status["cache"]["enabled"], false, "{status:#}");
    // Nobody owns the queue, so status reads the queue file itself.
    let queue = &status["queue"];
    assert_eq!(
        keys(queue),
        key_set(&["interactive", "background"]),
        "{status:#}"
    );
    assert_eq!(queue["background"]["pending"], 0, "{queue}");
    assert_eq!(queue["background"]["running"], 0, "{queue}");

    let out = run(
        franchise(dir.path(), &url),
        &["status"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("status", &out);
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("import "))
        .unwrap_or_else(|| panic!("no import line: {stdout}"));
    assert!(
        line.contains(&format!("root {root}")) && line.contains("12/12 done"),
        "{line}"
    );
    assert!(stdout.contains("workers none running"), "{stdout}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_json_lists_the_franchise_and_every_edge_out_of_it() {
    let world = World::single_franchise(60, 11);
    let main = world.franchises()[0].clone();
    let linked = world.franchises()[1].clone();
    let root = main.root;
    let walk = world.walk(root);
    assert_eq!(walk.len(), 60);
    let fake = start_fake(world.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    // This chain is deeper than the default depth cap (25), so lift it to get it whole.
    assert!(walk.values().any(|&depth| depth > 25));
    let out = run(
        franchise(dir.path(), &url),
        &["import", &root.to_string(), "--wait", "--depth", "100"],
        Duration::from_secs(60),
    )
    .await;
    assert_success("import --wait", &out);

    let out = run(
        franchise(dir.path(), &url),
        &["show", &root.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("show --json", &out);
    let shown: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {}", describe(&out)));
    assert_eq!(
        keys(&shown),
        key_set(&["root", "order", "anime", "relations"])
    );
    assert_eq!(shown["root"], root);
    assert_eq!(shown["order"], "id");

    let anime = shown["anime"].as_array().expect("anime is an array");
    for a in anime {
        assert_eq!(
            keys(a),
            key_set(&[
                "id",
                "title",
                "format",
                "status",
                "season",
                "season_year",
                "start_date"
            ]),
            "{a}"
        );
    }
    let ids: BTreeSet<i32> = anime
        .iter()
        .map(|a| a["id"].as_i64().expect("numeric id") as i32)
        .collect();
    assert_eq!(ids.len(), anime.len(), "no anime listed twice");
    assert_eq!(
        ids,
        walk.keys().copied().collect::<BTreeSet<_>>(),
        "anime are the root's walk"
    );
    for other in linked.members.iter().chain(&main.sources) {
        assert!(!ids.contains(other), "{other} is not of this franchise");
    }
    let entry = world.get(root).unwrap();
    let shown_root = anime.iter().find(|a| a["id"] == root).unwrap();
    assert_eq!(shown_root["format"], entry.format.clone().unwrap());
    assert_eq!(shown_root["status"], entry.status.clone().unwrap());
    assert_eq!(
        shown_root["start_date"]["year"],
        json!(entry.start_date.year)
    );

    // The watch order: every member once, main story flagged, and as text one numbered line
    // per member with the rest indented after what it follows.
    let out = run(
        franchise(dir.path(), &url),
        &["show", &root.to_string(), "--json", "--order", "watch"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("show --json --order watch", &out);
    let watched: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(watched["order"], "watch");
    let in_order = watched["anime"].as_array().expect("anime");
    assert_eq!(in_order.len(), anime.len());
    assert!(in_order.iter().any(|a| a["main"] == true), "{watched:#}");
    assert!(
        in_order.iter().all(|a| a.get("follows").is_some()),
        "{watched:#}"
    );
    let out = run(
        franchise(dir.path(), &url),
        &["show", &root.to_string(), "--order", "watch"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("show --order watch", &out);
    let listed = text(&out.stdout);
    assert!(listed.contains("  1. "), "{listed}");
    assert!(
        listed.contains(&format!("{} anime, in watch order", anime.len())),
        "{listed}"
    );
    let out = run(
        franchise(dir.path(), &url),
        &["show", &root.to_string(), "--order", "chronological"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("expected one of id, release, watch"),
        "{}",
        describe(&out)
    );

    let relations = shown["relations"]
        .as_array()
        .expect("relations is an array");
    let mut got = BTreeMap::new();
    for r in relations {
        assert_eq!(
            keys(r),
            key_set(&[
                "from",
                "to",
                "type",
                "derived",
                "to_kind",
                "to_format",
                "to_title"
            ]),
            "{r}"
        );
        let from = r["from"].as_i64().unwrap() as i32;
        assert!(
            ids.contains(&from),
            "relation from outside the franchise: {r}"
        );
        let to = r["to"].as_i64().unwrap() as i32;
        let kind = r["type"].as_str().unwrap().to_string();
        assert!(r["derived"].is_boolean(), "{r}");
        assert!(
            got.insert((from, to), kind).is_none(),
            "edge listed twice: {r}"
        );
    }
    // Every edge AniList shows on a member, as observed (the world is symmetric, so no
    // derived row survives among fetched anime).
    let mut want = BTreeMap::new();
    for id in &ids {
        for rel in &world.get(*id).unwrap().relations {
            want.insert((*id, rel.target), rel.relation_type.clone());
        }
    }
    assert_eq!(got, want, "relations are every edge out of the franchise");
    assert!(
        relations.iter().all(|r| r["derived"] == false),
        "all observed"
    );
    let character = got
        .iter()
        .find(|((_, to), t)| *t == "CHARACTER" && linked.members.contains(to));
    assert!(
        character.is_some(),
        "the CHARACTER edge to the linked franchise"
    );
    let source = got
        .iter()
        .find(|((from, to), t)| *from == root && *t == "SOURCE" && main.sources.contains(to));
    assert!(source.is_some(), "the root's SOURCE edge to its manga");

    let out = run(
        franchise(dir.path(), &url),
        &["show", &root.to_string(), "--dot"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("show --dot", &out);
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert!(dot.contains(&format!("a{root} [label=")), "{dot}");
    // One edge per related pair, whichever way it was stored.
    let pairs: BTreeSet<(i64, i64)> = relations
        .iter()
        .map(|r| {
            let (a, b) = (r["from"].as_i64().unwrap(), r["to"].as_i64().unwrap());
            (a.min(b), a.max(b))
        })
        .collect();
    assert_eq!(dot.matches(" -> ").count(), pairs.len(), "{dot}");
    assert!(dot.contains("fillcolor=gold"), "the root stands out: {dot}");
    // Outside the franchise, a node says its format (MANGA, NOVEL, …), not just its kind.
    let source = relations
        .iter()
        .find(|r| r["from"] == root && r["type"] == "SOURCE")
        .expect("the root's SOURCE edge");
    let format = source["to_format"].as_str().expect("the source's format");
    assert!(
        dot.contains(&format!("#{} {format}\"", source["to"])),
        "{format}: {dot}"
    );

    let out = run(
        franchise(dir.path(), &url),
        &["show", "987654"],
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(text(&out.stderr).contains("987654"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_json_prints_one_id_per_root_and_work_completes_them() {
    let world = WorldSpec::default()
        .seed(4)
        .franchises(0)
        .sized(5)
        .sized(7)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let roots: Vec<i32> = world.franchises().iter().map(|f| f.root).collect();
    let fake = start_fake(world.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();

    let args = [
        "import".to_string(),
        roots[0].to_string(),
        roots[1].to_string(),
        "--json".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(franchise(dir.path(), &url), &args, Duration::from_secs(30)).await;
    assert_success("import --json", &out);
    assert_eq!(
        text(&out.stdout),
        "{\"import_id\":1}\n{\"import_id\":2}\n",
        "{}",
        describe(&out)
    );
    assert_eq!(
        fake.stats().requests,
        0,
        "without --wait nothing is fetched"
    );
    let pool = open_store(dir.path()).await;
    for id in [1, 2] {
        let (done, queued, finished) = progress(&pool, id).await;
        assert_eq!((done, queued, finished), (0, 1, false), "import {id}");
    }

    let out = run(
        franchise(dir.path(), &url),
        &["work", "--until-idle", "--report-every", "0"],
        Duration::from_secs(60),
    )
    .await;
    assert_success("work --until-idle", &out);
    for (import_id, root) in [(1, roots[0]), (2, roots[1])] {
        let (_, queued, finished) = progress(&pool, import_id).await;
        assert_eq!(queued, 0);
        assert!(finished, "import {import_id} finished");
        assert_eq!(
            items(&pool, import_id).await,
            expected_items(&world, root),
            "import {import_id}"
        );
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_terminal_imports_and_clicks_through_the_queue_owner() {
    let world = World::single_franchise(20, 8);
    let root = world.franchises()[0].root;
    let fake = start_fake(world.clone(), Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = fake.url();

    let mut worker = spawn(
        franchise(&data, &url),
        &["work", "--report-every", "0"],
        dir.path(),
        "work",
    );
    let pid = worker.id().expect("worker pid");

    // Ready once it published its heartbeat row (status reads it too).
    let pool = open_store_when_created(&data, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let owner: Option<i64> = sqlx::query_scalar("SELECT pid FROM worker_process")
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
        if owner == Some(i64::from(pid)) {
            break;
        }
        if let Some(status) = worker.try_wait().unwrap() {
            panic!(
                "worker exited: {status:?}\n{}",
                child_log(dir.path(), "work")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the worker never published itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = run(
        franchise(&data, &url),
        &["import", &root.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_success("import while another process owns the queue", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("started by the franchise process that owns the queue, at http://127.0.0.1:"),
        "the import goes to the owner's local API: {}",
        describe(&out)
    );

    // A click from this terminal is answered by the owner's workers, not refused.
    let out = run(
        franchise(&data, &url),
        &["open", &root.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("open while `work` owns the queue", &out);
    let clicked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(clicked["id"], root, "{}", describe(&out));

    // The owner finishes the import it was given.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, finished) = progress(&pool, 1).await;
        if finished {
            break;
        }
        if let Some(status) = worker.try_wait().unwrap() {
            panic!(
                "worker exited: {status:?}\n{}",
                child_log(dir.path(), "work")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the owner never finished the recorded import ({:?})\n{}",
            progress(&pool, 1).await,
            child_log(dir.path(), "work")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items(&pool, 1).await, expected_items(&world, root));

    // While it runs, status in yet another process sees the owner and its budget.
    let out = run(
        franchise(&data, &url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("status --json beside the worker", &out);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let workers = status["workers"].as_array().expect("workers is an array");
    assert_eq!(workers.len(), 1, "{status:#}");
    assert_eq!(workers[0]["pid"], pid, "{status:#}");
    assert_eq!(workers[0]["role"], "worker", "{status:#}");
    assert!(
        workers[0]["api_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "`work` advertises its local API: {status:#}"
    );
    assert!(workers[0]["heartbeat_at_ms"].is_i64(), "{status:#}");
    assert!(workers[0]["host"].is_string(), "{status:#}");
    assert!(
        status["queue"]["background"].is_object(),
        "the owner reports its queue: {status:#}"
    );
    assert!(status["budget"].is_object(), "{status:#}");
    assert_eq!(status["imports"][0]["state"], "done", "{status:#}");

    sigterm(pid).await;
    let exit = wait_child(&mut worker, Duration::from_secs(30), "work after SIGTERM").await;
    assert!(
        exit.success(),
        "SIGTERM stops gracefully: {exit:?}\n{}",
        child_log(dir.path(), "work")
    );
    let owner = count(&pool, "SELECT COUNT(*) FROM worker_process").await;
    assert_eq!(owner, 0, "a stopped worker retracts its heartbeat row");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_bad_value_and_leaves_the_store_alone() {
    let world = World::single_franchise(6, 2);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world.clone(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = fake.url();
    let out = run(
        franchise(&data, &url),
        &["import", &root, "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert_success("the good import", &out);
    let pool = open_store(&data).await;
    let before = store_counts(&pool).await;
    let snapshot_before = snapshot(&pool).await;
    pool.close().await;
    let requests_before = fake.stats().requests;

    let write = |name: &str, body: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let unknown_key = write("unknown.toml", "wrokers = 3\n");
    let wrong_type = write("wrong.toml", "workers = \"many\"\n");
    let broken = write("broken.toml", "workers = 4\n[anilist]\nurl = \"http://x\n");
    let missing = dir.path().join("no-such-dir").join("missing.toml");
    let (unknown_key, wrong_type, broken, missing) = (
        unknown_key.to_string_lossy().into_owned(),
        wrong_type.to_string_lossy().into_owned(),
        broken.to_string_lossy().into_owned(),
        missing.to_string_lossy().into_owned(),
    );

    // (args, what stderr must name)
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["import", "0"], vec!["\"0\""]),
        (vec!["import", "-1"], vec!["\"-1\""]),
        (vec!["import", "abc"], vec!["\"abc\""]),
        (
            vec!["import", "99999999999999999999"],
            vec!["\"99999999999999999999\""],
        ),
        (vec!["import", "2147483648"], vec!["\"2147483648\""]),
        (vec!["import", &root, "5", "0"], vec!["\"0\""]),
        (vec!["show", "0"], vec!["\"0\""]),
        (vec!["open", "abc"], vec!["\"abc\""]),
        (
            vec!["--workers", "0", "import", &root],
            vec!["workers", "0"],
        ),
        (
            vec!["import", &root, "--workers", "-3"],
            vec!["workers", "-3"],
        ),
        (
            vec!["--budget", "0", "import", &root],
            vec!["budget_per_minute", "0"],
        ),
        (
            vec!["--config", &unknown_key, "import", &root],
            vec!["wrokers"],
        ),
        (
            vec!["--config", &wrong_type, "import", &root],
            vec!["workers", "many"],
        ),
        (vec!["--config", &missing, "import", &root], vec![&missing]),
        (
            vec!["--config", &broken, "import", &root],
            vec![&broken, "line 3"],
        ),
        (
            vec!["--budget", "abc", "import", &root],
            vec!["\"abc\"", "requests per minute from 1 to 1000000"],
        ),
        (
            vec!["--workers", "many", "import", &root],
            vec!["\"many\"", "fetch jobs from 1 to 1000"],
        ),
        (
            vec!["--anilist-referer", "", "import", &root],
            vec!["anilist.referer", "Referer"],
        ),
        (
            vec!["show", &root, "--json", "--dot"],
            vec!["--json", "--dot"],
        ),
        (vec!["import"], vec!["<ID>"]),
        (vec!["import", &root, "--depth", "-1"], vec!["-1"]),
        (
            vec!["import", &root, "--max-items", "0"],
            vec!["--max-items", "0 is not in 1..=1000000"],
        ),
        (vec!["import", "+5"], vec!["\"+5\""]),
        (vec!["import", " 7"], vec!["\" 7\""]),
        (vec!["import", "00005"], vec!["\"00005\""]),
        (
            vec!["work", "--report-every", "18446744073709551615"],
            vec!["--report-every", "18446744073709551615"],
        ),
        (
            vec!["--config", "/dev/zero", "status"],
            vec!["/dev/zero", "not a regular file"],
        ),
        (
            vec!["--database-url", "postgres://:::::", "status"],
            vec!["database_url", "a well-formed PostgreSQL URL"],
        ),
        (vec!["cancel", "x"], vec!["\"x\"", "import id"]),
        (vec!["retry", "0"], vec!["\"0\"", "import id"]),
        (vec!["cancel", "404"], vec!["no import 404"]),
    ];
    let mut codes = Vec::new();
    for (args, needles) in &cases {
        let out = run(franchise(&data, &url), args, Duration::from_secs(30)).await;
        let stderr = text(&out.stderr);
        let code = out.status.code();
        codes.push(code);
        assert!(
            matches!(code, Some(1..=2)),
            "franchise {args:?} should fail with 1 or 2 (not crash or succeed): {}",
            describe(&out)
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "franchise {args:?}: stderr should name {needle:?}: {}",
                describe(&out)
            );
        }
        assert!(
            !stderr.contains("panicked"),
            "franchise {args:?} panicked: {}",
            describe(&out)
        );
    }
    println!(
        "bad input: {} cases, exit codes {:?}",
        cases.len(),
        codes.iter().map(|c| c.unwrap_or(-1)).collect::<Vec<_>>()
    );
    // A malformed database URL is bad usage (2); one that parses but answers nobody is not.
    let out = run(
        franchise(&data, &url),
        &["--database-url", "postgres://:::::", "status"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    let pool = open_store(&data).await;
    assert_eq!(store_counts(&pool).await, before, "the store is unchanged");
    assert_eq!(
        snapshot(&pool).await,
        snapshot_before,
        "the store is unchanged"
    );
    assert_eq!(
        fake.stats().requests,
        requests_before,
        "bad input reaches nobody"
    );
    pool.close().await;
}

#[tokio::test]
async fn completions_are_printed_for_each_shell_without_any_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _franchise"),
        ("zsh", "#compdef franchise"),
        ("fish", "complete -c franchise"),
    ] {
        // A broken config is no obstacle: completions read no settings.
        let mut cmd = franchise(dir.path(), "http://127.0.0.1:9/");
        cmd.env("FRANCHISE_WORKERS", "abc");
        let out = run(cmd, &["completions", shell], Duration::from_secs(30)).await;
        assert_success(shell, &out);
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["serve", "import", "status", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = run(
        franchise(dir.path(), "http://127.0.0.1:9/"),
        &["completions", "tcsh"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("tcsh"));
}

/// Polls `worker_process` until a live owner advertises its local API.
async fn advertised_api(pool: &SqlitePool, child: &mut Child, logs: &Path, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url: Option<Option<String>> =
            sqlx::query_scalar("SELECT api_url FROM worker_process LIMIT 1")
                .fetch_optional(pool)
                .await
                .unwrap_or(None);
        if let Some(Some(url)) = url {
            return url;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name} exited: {status:?}\n{}", child_log(logs, name));
        }
        assert!(
            Instant::now() < deadline,
            "{name} never advertised its API\n{}",
            child_log(logs, name)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_beside_import_wait_is_answered_and_the_cli_says_what_is_so() {
    // A 12-level giant walked one level per request at 300 ms a call: several seconds of
    // import, beside which another terminal clicks the root of a second franchise.
    let world = WorldSpec::default()
        .seed(5)
        .franchises(0)
        .giant(150, 12)
        .sized(3)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let giant = world.franchises()[0].root;
    let other = world.franchises()[1].root;
    let fake = start_fake(world.clone(), Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = fake.url();
    let mut slow = franchise(&data, &url);
    slow.env("FRANCHISE_ANILIST__WALK_LEVELS", "1");
    let mut importing = spawn(
        slow,
        &["-v", "import", &giant.to_string(), "--wait"],
        dir.path(),
        "import",
    );
    let pool = open_store_when_created(&data, Duration::from_secs(30)).await;
    let api = advertised_api(&pool, &mut importing, dir.path(), "import").await;
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");

    let out = run(
        franchise(&data, &url),
        &["open", &other.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("open beside `import --wait`", &out);
    let clicked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(clicked["id"], other, "{}", describe(&out));
    let (_, _, finished) = progress(&pool, 1).await;
    assert!(!finished, "the click came while the import still ran");

    // `status` beside it names the owner, its API and its heartbeat's age.
    let out = run(franchise(&data, &url), &["status"], Duration::from_secs(30)).await;
    assert_success("status beside `import --wait`", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("heartbeat") && stdout.contains(&format!("API at {api}")),
        "{}",
        describe(&out)
    );

    let exit = wait_child(&mut importing, Duration::from_secs(120), "import --wait").await;
    let log = child_log(dir.path(), "import");
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains("INFO") && !log.contains('\u{1b}'),
        "`-v` logs to a file are plain text:\n{log}"
    );

    // A finished import cannot be cancelled, nor retried when nothing failed: exit 1, and
    // the message says the import's state, as the API's 409 does.
    for (args, says) in [
        (["cancel", "1"], "import 1 already finished (done)"),
        (
            ["retry", "1"],
            "import 1 has no failed or cancelled anime to retry (done",
        ),
    ] {
        let out = run(franchise(&data, &url), &args, Duration::from_secs(30)).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            describe(&out)
        );
    }

    // An import nobody works on: `status` says so instead of an estimate.
    let out = run(
        franchise(&data, &url),
        &["import", &other.to_string(), "--force-refresh"],
        Duration::from_secs(30),
    )
    .await;
    assert_success("import without workers", &out);
    let out = run(franchise(&data, &url), &["status"], Duration::from_secs(30)).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("no worker runs it") && !stdout.contains("ETA"),
        "{}",
        describe(&out)
    );
    let out = run(
        franchise(&data, &url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["imports"][0]["state"], "running", "{status:#}");
    assert!(status["imports"][0]["eta_secs"].is_null(), "{status:#}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_requests_a_minute_the_eta_counts_the_wait_for_the_next_slot() {
    // Five levels walked one per request under a budget of 2 a minute: the first two go at
    // once, the third waits for the window to roll, about a minute later.
    let world = WorldSpec::default()
        .seed(9)
        .franchises(0)
        .giant(30, 5)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let root = world.franchises()[0].root;
    let fake = start_fake(world, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = fake.url();
    let mut slow = franchise(&data, &url);
    slow.env("FRANCHISE_ANILIST__WALK_LEVELS", "1");
    let mut importing = spawn(
        slow,
        &["--budget", "2", "import", &root.to_string(), "--wait"],
        dir.path(),
        "import",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = run(
            franchise(&data, &url),
            &["status", "--json"],
            Duration::from_secs(30),
        )
        .await;
        if let Ok(status) = serde_json::from_slice::<Value>(&out.stdout)
            && status["budget"]["used_in_window"] == 2
            && status["imports"][0]["state"] == "running"
            && status["imports"][0]["eta_secs"].is_f64()
        {
            break status;
        }
        if let Some(exit) = importing.try_wait().unwrap() {
            panic!(
                "import exited: {exit:?}\n{}",
                child_log(dir.path(), "import")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the budget never filled: {}",
            describe(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let import = &status["imports"][0];
    let eta = import["eta_secs"].as_f64().unwrap_or(0.0);
    assert!(eta >= 20.0, "eta {eta}: {status:#}");
    let waiting = import["eta_waiting_secs"].as_f64().unwrap_or(0.0);
    assert!(
        waiting >= 20.0 && waiting <= eta,
        "waiting {waiting}: {status:#}"
    );
    let out = run(franchise(&data, &url), &["status"], Duration::from_secs(30)).await;
    assert!(
        text(&out.stdout).contains("waiting for AniList's rate limit, resuming in"),
        "{}",
        describe(&out)
    );
    let _ = importing.kill().await;
}
