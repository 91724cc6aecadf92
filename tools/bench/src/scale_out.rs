//! `--backend postgres`: the same imports with the store, queue and budget in PostgreSQL and
//! the work spread over 1, 2 or 4 `franchise work` processes, beside the embedded figure.
//! Throughput against the unlimited fake; the realistic import under one shared budget.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_anilist::FakeAniList;
use franchise::{ImportFilter, ImportOptions, Importer, Settings};
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::franchise_run::anime_id;
use crate::report::{Report, median, mib, secs};
use crate::scenario::{self, TimeScale};
use crate::throughput;

#[derive(Debug, Clone)]
pub struct Options {
    /// A PostgreSQL server URL; each run creates its own database there and drops it.
    pub server_url: String,
    /// The `franchise` binary the worker processes run.
    pub franchise_bin: PathBuf,
    /// Worker process counts to measure.
    pub processes: Vec<usize>,
    pub runs: usize,
    pub seed: u64,
    /// `database_pool_size` of each worker process (`None`: franchise's default).
    pub pool_size: Option<u32>,
}

/// A database of our own on the server, dropped (with its connections) by `drop`.
struct Database {
    admin: PgPool,
    name: String,
    url: String,
}

impl Database {
    async fn create(server_url: &str) -> anyhow::Result<Self> {
        let admin = PgPool::connect(server_url).await.with_context(|| {
            format!("cannot reach PostgreSQL at {server_url}: pass --database-url or start it")
        })?;
        let name = format!(
            "franchise_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() % 1_000_000_000)
        );
        // The name is ours (digits), never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let mut url = reqwest::Url::parse(server_url)
            .with_context(|| format!("{server_url} is not a postgres:// URL"))?;
        url.set_path(&name);
        Ok(Self {
            admin,
            name,
            url: url.to_string(),
        })
    }

    async fn drop(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
        {
            eprintln!("could not drop database {}: {e}", self.name);
        }
        self.admin.close().await;
    }
}

/// `n` `franchise work` processes on one database.
struct Workers {
    children: Vec<Child>,
}

impl Workers {
    fn spawn(
        opts: &Options,
        n: usize,
        db: &Database,
        anilist: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut children = Vec::new();
        for _ in 0..n {
            let mut cmd = Command::new(&opts.franchise_bin);
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("FRANCHISE_") {
                    cmd.env_remove(&key);
                }
            }
            for (key, value) in env {
                cmd.env(key, value);
            }
            if let Some(size) = opts.pool_size {
                cmd.env("FRANCHISE_DATABASE_POOL_SIZE", size.to_string());
            }
            cmd.env("FRANCHISE_QUEUE__HEARTBEAT_MS", "1000")
                .args(["--database-url", &db.url, "--anilist-url", anilist, "work"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            children.push(cmd.spawn().with_context(|| {
                format!(
                    "starting {} (build it: cargo build --release -p franchise)",
                    opts.franchise_bin.display()
                )
            })?);
        }
        Ok(Self { children })
    }

    /// Waits until `importer`'s status lists every worker as live.
    async fn ready(&mut self, importer: &Importer) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for child in &mut self.children {
                if let Some(exit) = child.try_wait()? {
                    bail!("a worker process exited at start: {exit}");
                }
            }
            let status = importer
                .status(&ImportFilter {
                    limit: Some(1),
                    ..ImportFilter::all()
                })
                .await?;
            let workers = status
                .workers
                .iter()
                .filter(|p| p.role == franchise::ProcessRole::Worker)
                .count();
            if workers >= self.children.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {} worker processes registered within 60 s",
                    workers,
                    self.children.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak RSS (VmHWM) of each process over its life.
    fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        self.children
            .iter()
            .map(|c| c.id().and_then(vm_hwm_kib))
            .collect()
    }

    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// One measured import on PostgreSQL.
struct Outcome {
    processes: usize,
    size: usize,
    wall: Duration,
    anime: i64,
    failed: i64,
    requests: u64,
    rate_limited: u64,
    /// Most requests the fake saw in any 60 s window (realistic mode).
    max_per_minute: Option<usize>,
    rss_kib: Vec<Option<u64>>,
}

/// Imports `root` on a fresh database with `processes` workers; `env` sets their pace.
#[allow(clippy::too_many_arguments)]
async fn import_on_postgres(
    opts: &Options,
    processes: usize,
    size: usize,
    root: i32,
    anilist: &str,
    env: &[(&str, String)],
    options: &ImportOptions,
) -> anyhow::Result<(Outcome, Database)> {
    let db = Database::create(&opts.server_url).await?;
    // This process only records the import and watches it: it runs no workers. Opening it
    // first runs the migrations once, before the workers race for them.
    let settings = Settings::builder()
        .database_url(db.url.clone())
        .anilist_url(anilist)
        .build()
        .context("client settings")?;
    let client = Importer::open(settings).await?;
    let mut workers = Workers::spawn(opts, processes, &db, anilist, env)?;
    let measured = async {
        workers.ready(&client).await?;
        let pool = PgPool::connect(&db.url).await?;
        let started = Instant::now();
        let import_id = client.import(anime_id(root)?, options).await?;
        wait_finished(&pool, import_id, Duration::from_secs(3600)).await?;
        let wall = started.elapsed();
        let anime: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime")
            .fetch_one(&pool)
            .await?;
        let failed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM import_item WHERE state = 'failed'")
                .fetch_one(&pool)
                .await?;
        pool.close().await;
        anyhow::Ok(Outcome {
            processes,
            size,
            wall,
            anime,
            failed,
            requests: 0,
            rate_limited: 0,
            max_per_minute: None,
            rss_kib: workers.peak_rss_kib(),
        })
    }
    .await;
    workers.stop().await;
    client.stop().await;
    match measured {
        Ok(o) => Ok((o, db)),
        Err(e) => {
            db.drop().await;
            Err(e)
        }
    }
}

async fn wait_finished(pool: &PgPool, import_id: i64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let finished: Option<i64> =
            sqlx::query_scalar("SELECT finished_at FROM import WHERE id = $1")
                .bind(import_id)
                .fetch_one(pool)
                .await
                .context("reading import progress")?;
        if finished.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("import {import_id} did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Throughput: the unlimited fake (a child process), one giant of each size, embedded in
/// this process and then PostgreSQL with each process count.
pub async fn throughput(
    opts: &Options,
    tp: &throughput::Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut embedded = Vec::new();
    let mut outcomes = Vec::new();
    for &size in &tp.sizes {
        for i in 1..=opts.runs {
            match throughput::one(tp, size).await {
                Ok(o) => {
                    eprintln!(
                        "throughput {size} embedded run {i}/{}: {} in {}",
                        opts.runs,
                        o.anime,
                        secs(o.wall)
                    );
                    embedded.push(o);
                }
                Err(e) => eprintln!("throughput {size} embedded run {i} failed: {e:#}"),
            }
            for &n in &opts.processes {
                match throughput_pg(opts, tp, n, size).await {
                    Ok(o) => {
                        eprintln!(
                            "throughput {size} postgres×{n} run {i}/{}: {} in {} ({:.0}/s), {} requests, RSS {}",
                            opts.runs,
                            o.anime,
                            secs(o.wall),
                            o.anime as f64 / o.wall.as_secs_f64(),
                            o.requests,
                            rss_list(&o.rss_kib)
                        );
                        outcomes.push(o);
                    }
                    Err(e) => eprintln!("throughput {size} postgres×{n} run {i} failed: {e:#}"),
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Scale-out throughput on PostgreSQL: fake with zero latency and no rate limit\n\n\
         One import of a clean giant (as in throughput mode), from `import()` until the import's \
         `finished_at` is set. *embedded*: this process, SQLite + redb. *postgres × N*: N \
         `franchise work` processes on one fresh database (`{}` server), each with workers = {}, \
         budget 1,000,000/min, spacing 0; this process records the import and polls. RSS is \
         each worker process's VmHWM over its life (the fake runs in its own process). Median \
         of {} run(s); each cell one database.\n",
        redact(&opts.server_url),
        tp.workers,
        opts.runs
    );
    out.push_str(
        "| anime | backend | processes | wall | anime/s | ÷ embedded | requests | failed | RSS per process |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for &size in &tp.sizes {
        let emb: Vec<&throughput::Outcome> = embedded.iter().filter(|o| o.size == size).collect();
        let emb_wall = median(emb.iter().map(|o| o.wall).collect());
        if let Some(wall) = emb_wall
            && let Some(o) = emb.iter().find(|o| o.wall == wall)
        {
            let _ = writeln!(
                out,
                "| {} | embedded | 1 | {} | {:.0} | 1.00 | {} | {} | {} |",
                o.anime,
                secs(o.wall),
                o.anime as f64 / o.wall.as_secs_f64(),
                o.requests,
                o.failed,
                o.peak_rss_kib.map_or("?".into(), mib)
            );
        }
        for &n in &opts.processes {
            let runs: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.size == size && o.processes == n)
                .collect();
            let Some(wall) = median(runs.iter().map(|o| o.wall).collect()) else {
                let _ = writeln!(
                    out,
                    "| {size} | postgres | {n} | every run failed | | | | | |"
                );
                continue;
            };
            let Some(o) = runs.iter().find(|o| o.wall == wall) else {
                continue;
            };
            let rate = o.anime as f64 / o.wall.as_secs_f64();
            let _ = writeln!(
                out,
                "| {} | postgres | {n} | {} | {rate:.0} | {} | {} | {} | {} |",
                o.anime,
                secs(o.wall),
                emb_wall.map_or("–".into(), |e| format!(
                    "{:.2}",
                    o.wall.as_secs_f64() / e.as_secs_f64()
                )),
                o.requests,
                o.failed,
                rss_list(&o.rss_kib)
            );
        }
    }
    report.sections.push(out);
    Ok(())
}

async fn throughput_pg(
    opts: &Options,
    tp: &throughput::Options,
    processes: usize,
    size: usize,
) -> anyhow::Result<Outcome> {
    let (fake, root) = throughput::start_fake(tp, size).await?;
    let env = [
        ("FRANCHISE_WORKERS", tp.workers.to_string()),
        (
            "FRANCHISE_ANILIST__BUDGET_PER_MINUTE",
            "1000000".to_string(),
        ),
        ("FRANCHISE_ANILIST__MIN_SPACING_MS", "0".to_string()),
        // One level per request, as the embedded row is measured (`throughput.rs`).
        ("FRANCHISE_ANILIST__WALK_LEVELS", "1".to_string()),
    ];
    let options = ImportOptions::default()
        .with_max_depth(1000)
        .with_max_items(1_000_000);
    let result = import_on_postgres(opts, processes, size, root, &fake.url(), &env, &options).await;
    let requests = fake.requests().await;
    fake.stop().await;
    let (mut o, db) = result?;
    db.drop().await;
    o.requests = requests?;
    Ok(o)
}

/// The realistic import (1 s ± 300 ms, degraded 30/min) with 1..N processes under the one
/// budget, beside embedded.
pub async fn realistic(opts: &Options, size: usize, report: &mut Report) -> anyhow::Result<()> {
    let scale = TimeScale(1.0);
    let world = scenario::realistic_world(opts.seed, &[size])?;
    let root = *world
        .roots
        .get(&size)
        .context("the world has no giant of that size")?;
    let bound = scenario::bound(&world.world, root, scale);
    let mut outcomes = Vec::new();
    let mut embedded = Vec::new();
    for i in 1..=opts.runs {
        let fake = scenario::start_fake(&world.world, scale).await?;
        match crate::franchise_run::run(&fake, root, scale).await {
            Ok(m) => {
                eprintln!(
                    "realistic {size} embedded run {i}: {} {} requests",
                    secs(m.wall),
                    m.requests
                );
                embedded.push(m.wall);
            }
            Err(e) => eprintln!("realistic {size} embedded run {i} failed: {e:#}"),
        }
        fake.shutdown().await;
        for &n in &opts.processes {
            let fake = scenario::start_fake(&world.world, scale).await?;
            let result = import_on_postgres(
                opts,
                n,
                size,
                root,
                &fake.url(),
                &[],
                &ImportOptions::default(),
            )
            .await;
            let stats = fake.stats();
            let max_per_minute = max_in_any_window(&fake, Duration::from_secs(60));
            fake.shutdown().await;
            match result {
                Ok((mut o, db)) => {
                    db.drop().await;
                    o.requests = stats.requests;
                    o.rate_limited = stats.rate_limited;
                    o.max_per_minute = Some(max_per_minute);
                    eprintln!(
                        "realistic {size} postgres×{n} run {i}: {} {} requests {} 429s, max {max_per_minute}/60 s",
                        secs(o.wall),
                        o.requests,
                        o.rate_limited
                    );
                    outcomes.push(o);
                }
                Err(e) => eprintln!("realistic {size} postgres×{n} run {i} failed: {e:#}"),
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Scale-out under one budget: realistic {size}-anime import on PostgreSQL\n\n\
         The realistic fake (1.00 s ± 300 ms, degraded 30 per 60 s window, burst 6 per 1 s, \
         60 s ban), a fresh fake and database per cell; each worker process with the shipped \
         settings (budget 30/min and 500 ms spacing, held in the database and shared by all). \
         R = {}, T_min = {}. Median of {} run(s).\n",
        bound.requests,
        secs(bound.t_min),
        opts.runs
    );
    out.push_str(
        "| backend | processes | wall | ÷ T_min | requests | 429s | most in any 60 s | stored | failed | RSS per process |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    if let Some(wall) = median(embedded.clone()) {
        let _ = writeln!(
            out,
            "| embedded | 1 | {} | {:.2} | | | | | | |",
            secs(wall),
            wall.as_secs_f64() / bound.t_min.as_secs_f64()
        );
    }
    let mut walls = Vec::new();
    for &n in &opts.processes {
        let runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.processes == n).collect();
        let Some(wall) = median(runs.iter().map(|o| o.wall).collect()) else {
            let _ = writeln!(out, "| postgres | {n} | every run failed | | | | | | | |");
            continue;
        };
        let Some(o) = runs.iter().find(|o| o.wall == wall) else {
            continue;
        };
        let worst_429 = runs.iter().map(|o| o.rate_limited).max().unwrap_or(0);
        let worst_window = runs.iter().filter_map(|o| o.max_per_minute).max();
        walls.push((n, wall, worst_429, worst_window));
        let _ = writeln!(
            out,
            "| postgres | {n} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            secs(o.wall),
            o.wall.as_secs_f64() / bound.t_min.as_secs_f64(),
            o.requests,
            o.rate_limited,
            o.max_per_minute.map_or("?".into(), |m| m.to_string()),
            o.anime,
            o.failed,
            rss_list(&o.rss_kib)
        );
    }
    report.sections.push(out);
    if let (Some(first), Some(last)) = (walls.first(), walls.last())
        && first.0 != last.0
    {
        let ratio = last.1.as_secs_f64() / first.1.as_secs_f64();
        report.target(
            &format!(
                "{size} anime: {} processes take the same wall time as {} under one budget",
                last.0, first.0
            ),
            Some((0.8..=1.25).contains(&ratio)),
            format!("{} vs {} ({ratio:.2}×)", secs(last.1), secs(first.1)),
        );
    }
    let worst_429 = walls.iter().map(|w| w.2).max().unwrap_or(0);
    let worst_window = walls.iter().filter_map(|w| w.3).max().unwrap_or(0);
    report.target(
        "0 × 429 and ≤ 30 requests in any 60 s across processes",
        Some(worst_429 == 0 && worst_window <= 30),
        format!("worst run: {worst_429} × 429, {worst_window} in one window"),
    );
    Ok(())
}

fn max_in_any_window(fake: &FakeAniList, window: Duration) -> usize {
    let at: Vec<u64> = fake.stats().log.iter().map(|e| e.at_ms).collect();
    let window = window.as_millis() as u64;
    at.iter()
        .map(|s| at.iter().filter(|t| **t >= *s && **t < s + window).count())
        .max()
        .unwrap_or(0)
}

fn rss_list(rss: &[Option<u64>]) -> String {
    rss.iter()
        .map(|r| r.map_or("?".into(), mib))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server URL without a password, for the report.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "?".into(),
    }
}

/// The `franchise` binary next to this one, if built.
pub fn franchise_bin(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("franchise")))
            .unwrap_or_else(|| Path::new("franchise").to_path_buf())
    })
}
