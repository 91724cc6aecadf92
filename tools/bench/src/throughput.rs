//! Throughput mode: the fake with zero latency and no limit, one big import of a giant
//! franchise of 10,000 or 100,000 anime, from enqueue to flushed in SQLite; peak RSS; and the
//! time to push 100,000 jobs into a fresh queue.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel, WorldSpec};
use franchise::{AnimeId, ImportOptions, Importer};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::franchise_run::{anime_id, count_anime, default_builder, wait_finished};
use crate::machine;
use crate::report::{Report, mib, secs};
use crate::scenario::{TimeScale, depth_for};

#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Vec<usize>,
    pub runs: usize,
    pub workers: i64,
    pub enqueue: usize,
    pub seed: u64,
    /// The `fake-anilist` binary; `None` runs the fake in this process.
    pub fake_bin: Option<PathBuf>,
}

/// Where the fake runs: a child process (RSS is the importer's alone) or in-process.
pub enum Fake {
    Child {
        child: tokio::process::Child,
        url: String,
    },
    InProcess(FakeAniList),
}

impl Fake {
    pub fn url(&self) -> String {
        match self {
            Fake::Child { url, .. } => url.clone(),
            Fake::InProcess(f) => f.url(),
        }
    }

    pub async fn requests(&self) -> anyhow::Result<u64> {
        match self {
            Fake::InProcess(f) => Ok(f.stats().requests),
            Fake::Child { url, .. } => {
                let stats: serde_json::Value = reqwest::get(format!("{url}stats"))
                    .await
                    .context("GET /stats")?
                    .json()
                    .await
                    .context("reading /stats")?;
                stats["requests"]
                    .as_u64()
                    .context("/stats has no request count")
            }
        }
    }

    pub async fn stop(self) {
        match self {
            Fake::Child { mut child, .. } => {
                let _ = child.kill().await;
            }
            Fake::InProcess(f) => f.shutdown().await,
        }
    }
}

/// Starts the fake with a clean giant of `size` anime and returns it with the giant's root.
pub async fn start_fake(opts: &Options, size: usize) -> anyhow::Result<(Fake, i32)> {
    let depth = depth_for(size);
    if let Some(bin) = &opts.fake_bin {
        return spawn_child(
            bin,
            opts.seed,
            size,
            depth,
            &["--no-rate-limit".to_string()],
        )
        .await;
    }
    let world = WorldSpec::default()
        .seed(opts.seed)
        .franchises(0)
        .giant(size, depth)
        .cross_link_rate(0.0)
        .clean()
        .build();
    let root = world
        .giants()
        .next()
        .map(|g| g.root)
        .context("the world has no giant")?;
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency: Latency::default(),
        ..FakeConfig::default()
    })
    .await?;
    Ok((Fake::InProcess(fake), root))
}

/// The fake-anilist binary serving one clean giant, with `extra` flags (rate, latency).
pub async fn spawn_child(
    bin: &Path,
    seed: u64,
    size: usize,
    depth: usize,
    extra: &[String],
) -> anyhow::Result<(Fake, i32)> {
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--port",
            "0",
            "--seed",
            &seed.to_string(),
            "--franchises",
            "0",
        ])
        .args(["--giant", &format!("{size}:{depth}")])
        .args(extra)
        .args([
            "--dead-rate",
            "0",
            "--adult-rate",
            "0",
            "--cross-links",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout from the fake")?;
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        let mut url = None;
        while let Some(line) = lines.next_line().await? {
            if let Some(u) = line.split("serving AniList GraphQL at ").nth(1) {
                url = Some(u.trim().to_string());
            }
            // "  Giant { depth: 25 } root 1 (100000 anime)"
            if line.contains("Giant")
                && let Some(rest) = line.split(" root ").nth(1)
                && let Some(root) = rest.split_whitespace().next()
            {
                let root: i32 = root.parse().context("parsing the giant's root")?;
                let url = url.context("the fake printed no URL")?;
                return Ok::<_, anyhow::Error>((url, root));
            }
        }
        bail!("the fake exited before printing its giant")
    };
    let (url, root) = tokio::time::timeout(Duration::from_secs(300), read)
        .await
        .context("the fake did not start within 300 s")??;
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((Fake::Child { child, url }, root))
}

pub struct Outcome {
    pub size: usize,
    pub wall: Duration,
    pub anime: usize,
    pub failed: usize,
    pub requests: u64,
    pub peak_rss_kib: Option<u64>,
}

pub async fn one(opts: &Options, size: usize) -> anyhow::Result<Outcome> {
    let (fake, root) = start_fake(opts, size).await?;
    let result = import(opts, size, root, &fake).await;
    fake.stop().await;
    result
}

async fn import(opts: &Options, size: usize, root: i32, fake: &Fake) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let settings = default_builder(dir.path(), fake.url(), TimeScale(1.0))
        .workers(opts.workers)
        .budget_per_minute(1_000_000)
        .min_spacing_ms(0)
        // One level per request: at zero latency a deeper walk saves no time, and the giant's
        // hubs (shallow members with hundreds of children) make a 4-level answer for 50 ids
        // pass the 16 MiB answer cap; the fake, building several such answers at once on the
        // same cores, then answers nothing within the timeout, and the import parks.
        .walk_levels(1)
        .build()?;
    let options = ImportOptions::default()
        .with_max_depth(1000)
        .with_max_items(1_000_000);
    machine::reset_peak_rss();
    let importer = Importer::open(settings).await?;
    importer.start().await?;
    let started = Instant::now();
    let import_id = importer.import(anime_id(root)?, &options).await?;
    let pool = crate::franchise_run::store_pool(&importer).await?;
    let done = wait_finished(
        &pool,
        import_id,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    )
    .await;
    let wall = started.elapsed();
    let peak_rss_kib = machine::peak_rss_kib();
    let anime = count_anime(&pool).await;
    let failed: anyhow::Result<i64> =
        sqlx::query_scalar("SELECT COUNT(*) FROM import_item WHERE state = 'failed'")
            .fetch_one(&pool)
            .await
            .context("counting failed items");
    importer.stop().await;
    done?;
    Ok(Outcome {
        size,
        wall,
        anime: anime?,
        failed: usize::try_from(failed?).unwrap_or(0),
        requests: fake.requests().await?,
        peak_rss_kib,
    })
}

/// Pushes `n` fetch jobs into a fresh queue in one call; returns the time and peak RSS.
async fn enqueue(n: usize) -> anyhow::Result<(Duration, Option<u64>)> {
    let dir = tempfile::tempdir()?;
    let ids = (1..=n)
        .map(|i| Ok(AnimeId::new(i as i64)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    machine::reset_peak_rss();
    let started = Instant::now();
    let pushed = franchise::bench::push_jobs(&dir.path().join("queue.redb"), &ids).await?;
    let took = started.elapsed();
    if pushed != n {
        bail!("pushed {pushed} of {n} jobs");
    }
    Ok((took, machine::peak_rss_kib()))
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for &size in &opts.sizes {
        for i in 1..=opts.runs {
            match one(opts, size).await {
                Ok(o) => {
                    eprintln!(
                        "throughput {size} run {i}/{}: {} anime in {} = {:.0} anime/s, {} requests, peak RSS {}",
                        opts.runs,
                        o.anime,
                        secs(o.wall),
                        o.anime as f64 / o.wall.as_secs_f64(),
                        o.requests,
                        o.peak_rss_kib.map_or("?".into(), mib)
                    );
                    outcomes.push(o);
                }
                Err(e) => eprintln!("throughput {size} run {i}/{} failed: {e:#}", opts.runs),
            }
        }
    }
    let enqueued = if opts.enqueue > 0 {
        let e = enqueue(opts.enqueue).await;
        if let Err(err) = &e {
            eprintln!("enqueue of {} jobs failed: {err:#}", opts.enqueue);
        }
        e.ok()
    } else {
        None
    };
    render(opts, report, &outcomes, enqueued);
    Ok(())
}

fn render(
    opts: &Options,
    report: &mut Report,
    outcomes: &[Outcome],
    enqueued: Option<(Duration, Option<u64>)>,
) {
    let mut out = String::new();
    let place = if opts.fake_bin.is_some() {
        "in a child process (`fake-anilist`), so peak RSS is the importer's alone"
    } else {
        "IN THIS PROCESS (no fake-anilist binary found), so peak RSS includes the fake and its world"
    };
    let _ = writeln!(
        out,
        "## Throughput: fake with zero latency and no rate limit\n\n\
         One import of a clean giant franchise (walk depth from `depth_for`: 25 levels at these \
         sizes), from `import()` until the last item is committed to SQLite. The fake runs {place}. \
         Settings: defaults plus workers = {}, budget 1,000,000/min, spacing 0, max_items \
         1,000,000. Peak RSS is VmHWM of this process, reset (clear_refs) before opening the \
         importer. Median of {} run(s).\n",
        opts.workers, opts.runs
    );
    out.push_str(
        "| anime | wall | anime/s | requests | ids/request | failed items | peak RSS |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut medians = Vec::new();
    for &size in &opts.sizes {
        let mut runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.size == size).collect();
        if runs.is_empty() {
            let _ = writeln!(out, "| {size} | every run failed | | | | | |");
            continue;
        }
        runs.sort_by_key(|o| o.wall);
        let o = runs[(runs.len() - 1) / 2];
        let rate = o.anime as f64 / o.wall.as_secs_f64();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {:.1} | {} | {} |",
            o.anime,
            secs(o.wall),
            rate,
            o.requests,
            o.anime as f64 / o.requests.max(1) as f64,
            o.failed,
            o.peak_rss_kib.map_or("?".into(), mib)
        );
        medians.push((size, rate, o.peak_rss_kib));
    }
    if let Some((took, peak)) = enqueued {
        let _ = writeln!(
            out,
            "\nEnqueue: one bulk push of {} fetch jobs (each with its own task id) into a fresh \
             queue in one call took {} ({:.0} jobs/s); peak RSS {}.",
            opts.enqueue,
            secs(took),
            opts.enqueue as f64 / took.as_secs_f64(),
            peak.map_or("?".into(), mib)
        );
    }
    report.sections.push(out);
    for (size, rate, _) in &medians {
        report.target(
            &format!("throughput ≥ 10,000 anime/s ({size} anime)"),
            Some(*rate >= 10_000.0),
            format!("{rate:.0} anime/s on {} cores", machine::cores()),
        );
    }
    let at_100k = medians.iter().find(|(size, _, _)| *size == 100_000);
    let enqueue_peak = enqueued.and_then(|(_, p)| p);
    let peaks: Vec<u64> = at_100k
        .and_then(|(_, _, p)| *p)
        .into_iter()
        .chain(enqueue_peak.filter(|_| opts.enqueue >= 100_000))
        .collect();
    match peaks.iter().max() {
        Some(&peak) => report.target(
            "peak RSS ≤ 100 MiB at 100,000 queued",
            Some(peak <= 100 * 1024),
            format!(
                "100k import: {}; push of {} jobs: {}",
                at_100k.and_then(|(_, _, p)| *p).map_or("–".into(), mib),
                opts.enqueue,
                enqueue_peak.map_or("–".into(), mib)
            ),
        ),
        None => report.target(
            "peak RSS ≤ 100 MiB at 100,000 queued",
            None,
            "not measured".into(),
        ),
    }
}
