//! Driving the `franchise` binary as a child process against a fake AniList, and looking at a
//! data dir's SQLite store from outside (read-only): shared by tests/cli.rs and tests/chaos.rs.

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel, World};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_franchise");

/// Starts the fake on a free loopback port, rate limiting off, with a fixed latency.
pub async fn start_fake(world: World, latency: Duration) -> FakeAniList {
    start_fake_with(world, Latency::new(latency, Duration::ZERO)).await
}

/// Starts the fake on a free loopback port, rate limiting off, with `latency` (jitter allowed).
pub async fn start_fake_with(world: World, latency: Latency) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency,
        ..FakeConfig::default()
    })
    .await
    .expect("start fake-anilist")
}

/// The binary with a clean FRANCHISE_* environment (fast heartbeat and spacing, a generous
/// budget), pointed at `data_dir` and the fake. Global flags go before the subcommand.
pub fn franchise(data_dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FRANCHISE_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("FRANCHISE_QUEUE__HEARTBEAT_MS", "1000")
        .env("FRANCHISE_ANILIST__MIN_SPACING_MS", "20")
        // Below the flag layer, so a `--budget` flag in a test still wins.
        .env("FRANCHISE_ANILIST__BUDGET_PER_MINUTE", "1000")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--anilist-url")
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs to completion within `within`, capturing stdout and stderr. One that does not finish
/// is killed, and the panic carries what it had printed: a hang in CI says where it stood.
pub async fn run(mut cmd: Command, args: &[&str], within: Duration) -> Output {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let what = format!("franchise {}", args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let waited = tokio::time::timeout(within, child.wait()).await;
    if waited.is_err() {
        let _ = child.kill().await;
    }
    let output = Output {
        status: child
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: cannot wait: {e}")),
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
    };
    if waited.is_err() {
        panic!(
            "{what} did not finish within {within:?}; killed\n{}",
            describe(&output)
        );
    }
    output
}

/// Reads a child's pipe to its end in a task of its own, so a child that fills the pipe never
/// blocks on it while `run` waits.
fn drain<R>(pipe: Option<R>) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
        }
        bytes
    })
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

pub fn assert_success(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// Spawns a long-running child whose stdout/stderr go to files in `logs` (a pipe nobody
/// reads could fill up and stall it).
pub fn spawn(mut cmd: Command, args: &[&str], logs: &Path, name: &str) -> Child {
    let out = std::fs::File::create(logs.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{name}.err"))).unwrap();
    cmd.args(args)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn franchise {}: {e}", args.join(" ")))
}

/// Runs `work --until-idle` with every fetch aborting its process (the `fetch.crash` failure
/// point, one attempt per job) again after each crash, at most `runs` times. Returns how many
/// runs crashed before one exited 0.
pub async fn work_through_crashes(make: impl Fn() -> Command, logs: &Path, runs: u32) -> u32 {
    let mut crashes = 0;
    for run in 0..runs {
        let mut cmd = make();
        cmd.env("FRANCHISE_FAILPOINTS", "fetch.crash=crash")
            .env("FRANCHISE_QUEUE__MAX_ATTEMPTS", "1");
        let mut worker = spawn(
            cmd,
            &["work", "--until-idle", "--report-every", "0"],
            logs,
            &format!("w{run}"),
        );
        let exit = wait_child(&mut worker, Duration::from_secs(60), "work").await;
        if exit.success() {
            break;
        }
        crashes += 1;
    }
    crashes
}

pub fn child_log(logs: &Path, name: &str) -> String {
    let read = |ext: &str| std::fs::read_to_string(logs.join(format!("{name}.{ext}")));
    format!(
        "--- {name} stdout\n{}--- {name} stderr\n{}",
        read("out").unwrap_or_default(),
        read("err").unwrap_or_default()
    )
}

pub async fn wait_child(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    match tokio::time::timeout(within, child.wait()).await {
        Ok(status) => status.unwrap_or_else(|e| panic!("{what}: wait: {e}")),
        Err(_) => panic!("{what} did not exit within {within:?}"),
    }
}

/// A read-only look at a data dir's SQLite store (WAL mode: readers never block the writer).
pub async fn open_store(data_dir: &Path) -> SqlitePool {
    let path = data_dir.join("franchise.sqlite");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()))
}

/// Waits until the store file exists, then opens it read-only.
pub async fn open_store_when_created(data_dir: &Path, within: Duration) -> SqlitePool {
    let deadline = Instant::now() + within;
    while !data_dir.join("franchise.sqlite").exists() {
        assert!(
            Instant::now() < deadline,
            "no store in {}",
            data_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the creating process finish its migrations before we read tables.
    let deadline = Instant::now() + within;
    loop {
        let pool = open_store(data_dir).await;
        if sqlx::query("SELECT COUNT(*) FROM import_item")
            .fetch_one(&pool)
            .await
            .is_ok()
        {
            return pool;
        }
        pool.close().await;
        assert!(Instant::now() < deadline, "store never got its tables");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each row of `sql` (which selects one `json_array(...)`) as its JSON text.
pub async fn rows(pool: &SqlitePool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The comparable contents of a store: anime without fetched_at, relations whole, and the
/// items of every import without timestamps. An item settled by its own request and one
/// settled because its anime came whole in a relation's answer (a walk of several levels per
/// request) read the same: which of the two happened depends on how requests were cut.
pub async fn snapshot(pool: &SqlitePool) -> [Vec<String>; 3] {
    [
        rows(
            pool,
            "SELECT json_array(id, id_mal, kind, title_romaji, title_english, title_native, \
             format, status, episodes, season, season_year, start_year, start_month, start_day) \
             FROM anime ORDER BY id",
        )
        .await,
        rows(
            pool,
            "SELECT json_array(anime_id, related_id, relation_type, derived, related_kind, \
             related_format, related_status, related_title, edge_id) \
             FROM anime_relation ORDER BY anime_id, related_id",
        )
        .await,
        rows(
            pool,
            "SELECT json_array(import_id, anime_id, depth, state, \
             NULLIF(reason, 'fetched with its relation''s request')) FROM import_item \
             ORDER BY import_id, anime_id",
        )
        .await,
    ]
}

/// Row counts of anime, anime_relation, import, import_item and anime_missing.
pub async fn store_counts(pool: &SqlitePool) -> [i64; 5] {
    [
        count(pool, "SELECT COUNT(*) FROM anime").await,
        count(pool, "SELECT COUNT(*) FROM anime_relation").await,
        count(pool, "SELECT COUNT(*) FROM import").await,
        count(pool, "SELECT COUNT(*) FROM import_item").await,
        count(pool, "SELECT COUNT(*) FROM anime_missing").await,
    ]
}

/// Sends `kill -NAME pid` (TERM, INT, KILL…).
pub async fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .await
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}: {status:?}");
}

/// Starts `cmd serve --listen 127.0.0.1:0` (logs in `logs/NAME.*`) and returns it with the
/// URL it printed once listening.
pub async fn spawn_serve(cmd: Command, logs: &Path, name: &str) -> (Child, String) {
    let child = spawn(cmd, &["serve", "--listen", "127.0.0.1:0"], logs, name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = std::fs::read_to_string(logs.join(format!("{name}.out"))).unwrap_or_default();
        if let Some(url) = out.lines().find_map(|l| l.strip_prefix("serving ")) {
            return (child, url.trim().to_string());
        }
        assert!(Instant::now() < deadline, "{}", child_log(logs, name));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
