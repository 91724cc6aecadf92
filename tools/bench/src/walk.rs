//! Walk mode: franchises of the shapes (478 anime in 11 levels, 46 in 7, 35 in 5)
//! imported with 1, 2 and 3 levels of relations per request and with the adaptive depth, at
//! 1 s ± 0.3 s under the degraded 30/min behind the Referer gate; wall time against the level
//! limit (one round trip per level of the walk), requests, bytes and CPU per anime.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use fake_anilist::WorldSpec;
use franchise::Importer;

use crate::franchise_run::{default_builder, timed_import};
use crate::report::{Report, median, ratio, secs};
use crate::scenario::{PAGE, TimeScale};
use crate::throughput::Fake;

#[derive(Debug, Clone)]
pub struct Options {
    /// (anime, levels of the walk) per franchise.
    pub shapes: Vec<(usize, usize)>,
    pub runs: usize,
    pub scale: TimeScale,
    pub seed: u64,
    /// The fake-anilist binary: with it the fake runs in its own process, so the CPU figure
    /// is franchise's alone.
    pub fake_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Depth {
    Fixed(i64),
    Auto,
    /// The adaptive walk against an AniList that answers 500 to every query nesting
    /// relations more than one level.
    AutoDeepFails,
}

impl Depth {
    const ALL: [Depth; 5] = [
        Depth::Fixed(1),
        Depth::Fixed(2),
        Depth::Fixed(3),
        Depth::Auto,
        Depth::AutoDeepFails,
    ];

    fn label(self) -> String {
        match self {
            Depth::Fixed(h) => format!("h = {h}"),
            Depth::Auto => "adaptive (default)".into(),
            Depth::AutoDeepFails => "adaptive, AniList 500s deeper than 1 level".into(),
        }
    }
}

/// One import, as measured.
#[derive(Debug, Clone)]
struct WalkRun {
    wall: Duration,
    anime: usize,
    requests: u64,
    bytes: u64,
    largest_answer: u64,
    rate_limited: u64,
    client_errors: u64,
    server_errors: u64,
    /// This process's CPU time over the import (user + system).
    cpu: Duration,
}

/// The giant's parameter that gives `size` anime in `levels` levels (depth 0 to levels − 1).
fn giant_depth(seed: u64, size: usize, levels: usize) -> anyhow::Result<(usize, i32)> {
    for depth in 1..=size {
        let world = spec(seed, size, depth).build();
        let Some(giant) = world.giants().next() else {
            continue;
        };
        let walk = world.walk(giant.root);
        let deepest = walk.values().max().copied().unwrap_or(0);
        if walk.len() == size && deepest + 1 == levels {
            return Ok((depth, giant.root));
        }
    }
    bail!("no generated giant of {size} anime has exactly {levels} levels")
}

fn spec(seed: u64, size: usize, depth: usize) -> WorldSpec {
    WorldSpec::default()
        .seed(seed)
        .franchises(0)
        .giant(size, depth)
        .cross_link_rate(0.0)
        .clean()
}

/// Anime per level of the walk from `root`.
fn levels_of(seed: u64, size: usize, depth: usize, root: i32) -> Vec<usize> {
    let world = spec(seed, size, depth).build();
    let mut by_depth: BTreeMap<usize, usize> = BTreeMap::new();
    for d in world.walk(root).values() {
        *by_depth.entry(*d).or_default() += 1;
    }
    by_depth.into_values().collect()
}

/// User plus system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let mut out = String::new();
    let rtt = opts.scale.rtt();
    let _ = writeln!(
        out,
        "## Walk depth: levels of relations per request, at {} ± {} under the degraded 30 per \
         {} window, behind the Referer gate\n",
        secs(rtt),
        secs(opts.scale.jitter()),
        secs(opts.scale.window())
    );
    let _ = writeln!(
        out,
        "Median of {} run(s) each; a fresh data dir and a fresh fake window per run. The level \
         limit is one round trip ({}) per level of the walk. Wall time runs from the import call \
         until its last item is committed. Bytes are the answers' bodies as the fake sent them. \
         CPU is this process's user + system time over the import, per anime stored ({}).\n",
        opts.runs,
        secs(rtt),
        if opts.fake_bin.is_some() {
            "the fake runs in its own process, so this is franchise's alone"
        } else {
            "the fake runs in this process: its serialising is included"
        }
    );
    out.push_str(
        "| anime | levels (anime per level) | level limit | Σ⌈level/50⌉ | depth | wall | ÷ level limit | requests | bytes received | largest answer | 429s | 4xx/5xx | CPU per anime |\n\
         |---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &(size, want_levels) in &opts.shapes {
        let (depth, root) = giant_depth(opts.seed, size, want_levels)?;
        let levels = levels_of(opts.seed, size, depth, root);
        let limit = rtt * levels.len() as u32;
        let batched: usize = levels.iter().map(|n| n.div_ceil(PAGE)).sum();
        eprintln!(
            "walk {size}: root {root}, levels {levels:?}, level limit {}",
            secs(limit)
        );
        for variant in Depth::ALL {
            let mut runs = Vec::new();
            for i in 1..=opts.runs {
                match one_run(opts, size, depth, root, variant).await {
                    Ok(m) => {
                        eprintln!(
                            "  {} run {i}/{}: {} ({:.2}× level limit), {} anime, {} requests, \
                             {} bytes, largest {}",
                            variant.label(),
                            opts.runs,
                            secs(m.wall),
                            ratio(m.wall, limit),
                            m.anime,
                            m.requests,
                            m.bytes,
                            m.largest_answer
                        );
                        runs.push(m);
                    }
                    Err(e) => eprintln!("  {} run {i} failed: {e:#}", variant.label()),
                }
            }
            let row = summarise(&runs);
            let Some(row) = row else {
                let _ = writeln!(
                    out,
                    "| {size} | {} | {} | {batched} | {} | every run failed | | | | | | | | |",
                    levels.len(),
                    secs(limit),
                    variant.label()
                );
                continue;
            };
            let x = ratio(row.wall, limit);
            let _ = writeln!(
                out,
                "| {size} | {} ({levels:?}) | {} | {batched} | {} | {} | {x:.2} | {} | {:.2} MB | {:.2} MB | {} | {} | {:.2} ms |",
                levels.len(),
                secs(limit),
                variant.label(),
                secs(row.wall),
                row.requests,
                row.bytes as f64 / 1e6,
                row.largest_answer as f64 / 1e6,
                row.rate_limited,
                row.client_errors + row.server_errors,
                row.cpu.as_secs_f64() * 1000.0 / row.anime.max(1) as f64,
            );
            if variant == Depth::AutoDeepFails {
                let failed_deep = runs.iter().map(|r| r.server_errors).max().unwrap_or(0);
                let exact = runs.iter().all(|r| r.anime == size);
                report.target(
                    &format!(
                        "{size} anime ({} levels), deep queries failing",
                        levels.len()
                    ),
                    Some(x <= 1.25 && failed_deep <= 3 && exact),
                    format!(
                        "{} = {x:.2}× the level limit (≤ 1.25); {failed_deep} failed deep \
                         requests (≤ 3); {size} anime stored in every run: {exact}",
                        secs(row.wall)
                    ),
                );
            }
            if variant == Depth::Auto {
                let worst_requests = runs.iter().map(|r| r.requests).max().unwrap_or(0);
                let worst_answer = runs.iter().map(|r| r.largest_answer).max().unwrap_or(0);
                let limited: u64 = runs.iter().map(|r| r.rate_limited + r.client_errors).sum();
                let exact = runs.iter().all(|r| r.anime == size);
                let max_requests = batched as u64 + 3;
                report.target(
                    &format!("{size} anime ({} levels), adaptive depth", levels.len()),
                    Some(
                        x <= 0.55
                            && worst_requests <= max_requests
                            && worst_answer <= 2_000_000
                            && limited == 0
                            && exact,
                    ),
                    format!(
                        "{} = {x:.2}× the level limit {} (≤ 0.55); ≤ {worst_requests} requests \
                         (≤ {max_requests}); largest answer {:.2} MB (≤ 2); {limited} 429s or \
                         4xx; {} anime stored in every run: {exact}",
                        secs(row.wall),
                        secs(limit),
                        worst_answer as f64 / 1e6,
                        size
                    ),
                );
            }
        }
    }
    report.sections.push(out);
    Ok(())
}

/// The median of each figure over the runs (None if every run failed).
fn summarise(runs: &[WalkRun]) -> Option<WalkRun> {
    let pick = |f: fn(&WalkRun) -> u64| median(runs.iter().map(f).collect());
    Some(WalkRun {
        wall: median(runs.iter().map(|r| r.wall).collect())?,
        anime: median(runs.iter().map(|r| r.anime).collect())?,
        requests: pick(|r| r.requests)?,
        bytes: pick(|r| r.bytes)?,
        largest_answer: runs.iter().map(|r| r.largest_answer).max()?,
        rate_limited: runs.iter().map(|r| r.rate_limited).max()?,
        client_errors: runs.iter().map(|r| r.client_errors).max()?,
        server_errors: runs.iter().map(|r| r.server_errors).max()?,
        cpu: median(runs.iter().map(|r| r.cpu).collect())?,
    })
}

async fn one_run(
    opts: &Options,
    size: usize,
    depth: usize,
    root: i32,
    variant: Depth,
) -> anyhow::Result<WalkRun> {
    let fake = start_fake(opts, size, depth, variant == Depth::AutoDeepFails).await?;
    let result = measure(opts, &fake, root, variant).await;
    fake.stop().await;
    result
}

async fn start_fake(
    opts: &Options,
    size: usize,
    depth: usize,
    deep_fails: bool,
) -> anyhow::Result<Fake> {
    let scale = opts.scale;
    let hops = if deep_fails {
        1
    } else {
        fake_anilist::graphql::DEFAULT_MAX_RELATION_HOPS
    };
    if let Some(bin) = &opts.fake_bin {
        let window = scale.window().as_secs_f64();
        let args = vec![
            "--max-relation-hops".to_string(),
            hops.to_string(),
            "--degraded".into(),
            "--window-secs".into(),
            format!("{window}"),
            "--ban-secs".into(),
            scale.ban_secs().to_string(),
            "--latency-ms".into(),
            scale.rtt().as_millis().to_string(),
            "--jitter-ms".into(),
            scale.jitter().as_millis().to_string(),
        ];
        let (fake, _) = crate::throughput::spawn_child(bin, opts.seed, size, depth, &args).await?;
        return Ok(fake);
    }
    let world = spec(opts.seed, size, depth).build();
    let fake = fake_anilist::FakeAniList::start(fake_anilist::FakeConfig {
        world,
        rate: scale.rate(),
        latency: scale.latency(),
        max_relation_hops: hops,
        ..fake_anilist::FakeConfig::default()
    })
    .await
    .context("starting the fake AniList")?;
    Ok(Fake::InProcess(fake))
}

/// What the fake counted.
struct Served {
    requests: u64,
    bytes_out: u64,
    rate_limited: u64,
    by_status: BTreeMap<u16, u64>,
    largest_answer: u64,
}

async fn served(fake: &Fake) -> anyhow::Result<Served> {
    let stats = match fake {
        Fake::InProcess(f) => serde_json::to_value(f.stats())?,
        Fake::Child { url, .. } => reqwest::get(format!("{url}stats"))
            .await
            .context("asking the fake for its stats")?
            .json()
            .await
            .context("reading the fake's stats")?,
    };
    let count = |key: &str| stats[key].as_u64().unwrap_or(0);
    let by_status = stats["by_status"]
        .as_object()
        .map(|codes| {
            codes
                .iter()
                .filter_map(|(code, n)| Some((code.parse().ok()?, n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let largest_answer = stats["log"]
        .as_array()
        .map(|log| {
            log.iter()
                .filter_map(|e| e["bytes"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    Ok(Served {
        requests: count("requests"),
        bytes_out: count("bytes_out"),
        rate_limited: count("rate_limited"),
        by_status,
        largest_answer,
    })
}

async fn measure(
    opts: &Options,
    fake: &Fake,
    root: i32,
    variant: Depth,
) -> anyhow::Result<WalkRun> {
    let dir = tempfile::tempdir()?;
    let builder = default_builder(dir.path(), fake.url(), opts.scale);
    let builder = match variant {
        Depth::Fixed(h) => builder.walk_levels(h),
        Depth::Auto | Depth::AutoDeepFails => builder.walk_levels_auto(),
    };
    let importer = Importer::open(builder.build().context("franchise settings")?).await?;
    importer.start().await?;
    let cpu_before = cpu_time().context("reading /proc/self/stat")?;
    let timed = timed_import(&importer, root, Duration::from_secs(600)).await;
    let cpu = cpu_time()
        .context("reading /proc/self/stat")?
        .saturating_sub(cpu_before);
    let (wall, anime) = timed?;
    let stats = served(fake).await?;
    let status = |range: std::ops::Range<u16>| -> u64 {
        stats
            .by_status
            .iter()
            .filter(|(code, _)| range.contains(code) && **code != 429)
            .map(|(_, n)| *n)
            .sum()
    };
    Ok(WalkRun {
        wall,
        anime,
        requests: stats.requests,
        bytes: stats.bytes_out,
        largest_answer: stats.largest_answer,
        rate_limited: stats.rate_limited,
        client_errors: status(400..500),
        server_errors: status(500..600),
        cpu,
    })
}
