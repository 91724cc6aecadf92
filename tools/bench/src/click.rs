//! On-click latency: `open_anime(id)` of an anime of another franchise while the 300-anime
//! import runs in realistic mode, at several moments of the import.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use fake_anilist::FranchiseKind;
use franchise::{ImportOptions, Importer};

use crate::franchise_run::{anime_id, default_settings, wait_finished};
use crate::report::{Report, median, secs};
use crate::scenario::{self, TimeScale};

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub clicks: usize,
    pub import_size: usize,
    pub scale: TimeScale,
    pub seed: u64,
}

struct Click {
    run: usize,
    at: Duration,
    import_running: bool,
    latency: Duration,
    error: Option<String>,
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let world = scenario::realistic_world(opts.seed, &[opts.import_size])?;
    let root = *world
        .roots
        .get(&opts.import_size)
        .ok_or_else(|| anyhow::anyhow!("no giant of {} anime", opts.import_size))?;
    let walk = world.world.walk(root);
    let others: Vec<i32> = world
        .world
        .franchises()
        .iter()
        .filter(|f| f.kind == FranchiseKind::Normal && !walk.contains_key(&f.root))
        .map(|f| f.root)
        .take(opts.clicks)
        .collect();
    let first = opts.scale.apply(Duration::from_millis(500));
    let every = opts.scale.apply(Duration::from_secs(2));
    let mut clicks = Vec::new();
    let mut imports = Vec::new();
    for run in 1..=opts.runs {
        let fake = scenario::start_fake(&world.world, opts.scale).await?;
        let dir = tempfile::tempdir()?;
        let importer =
            Importer::open(default_settings(dir.path(), fake.url(), opts.scale)?).await?;
        importer.start().await?;
        let started = Instant::now();
        let import_id = importer
            .import(anime_id(root)?, &ImportOptions::default())
            .await?;
        for (i, &id) in others.iter().enumerate() {
            tokio::time::sleep_until((started + first + every * i as u32).into()).await;
            let import_running = !finished(&importer, import_id).await?;
            let at = started.elapsed();
            let t = Instant::now();
            let outcome = importer.open_anime(anime_id(id)?).await;
            let latency = t.elapsed();
            eprintln!(
                "click run {run}: anime {id} at {} (import running: {import_running}) took {}",
                secs(at),
                secs(latency)
            );
            clicks.push(Click {
                run,
                at,
                import_running,
                latency,
                error: outcome.err().map(|e| e.to_string()),
            });
        }
        let pool = crate::franchise_run::store_pool(&importer).await?;
        let done = wait_finished(
            &pool,
            import_id,
            Duration::from_millis(5),
            Duration::from_secs(3600),
        )
        .await;
        let wall = started.elapsed();
        importer.stop().await;
        done?;
        let stats = fake.stats();
        imports.push((wall, stats.requests, stats.rate_limited));
        fake.shutdown().await;
    }
    render(opts, report, &clicks, &imports);
    Ok(())
}

async fn finished(importer: &Importer, import_id: i64) -> anyhow::Result<bool> {
    Ok(importer.progress(import_id).await?.is_finished())
}

fn render(opts: &Options, report: &mut Report, clicks: &[Click], imports: &[(Duration, u64, u64)]) {
    let rtt = opts.scale.rtt();
    let slot = opts.scale.apply(Duration::from_millis(500));
    let target = rtt + slot;
    let worst_target = rtt + opts.scale.jitter() + slot;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## On-click latency during a {}-anime import (realistic fake)\n\n\
         `importer.open_anime(id)` for the root of another franchise (not stored), first at \
         {} after `import()`, then every {}; {} run(s), fresh fake and data dir each.\n",
        opts.import_size,
        secs(opts.scale.apply(Duration::from_millis(500))),
        secs(opts.scale.apply(Duration::from_secs(2))),
        opts.runs
    );
    out.push_str("| run | click at | import still running | latency |\n|---:|---:|---|---:|\n");
    for c in clicks {
        let latency = match &c.error {
            None => secs(c.latency),
            Some(e) => format!("{} (error: {e})", secs(c.latency)),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {latency} |",
            c.run,
            secs(c.at),
            if c.import_running { "yes" } else { "no" }
        );
    }
    let ok: Vec<Duration> = clicks
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| c.latency)
        .collect();
    let during = clicks.iter().filter(|c| c.import_running).count();
    let med = median(ok.clone());
    let max = ok.iter().max().copied();
    for (run, (wall, requests, limited)) in imports.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nRun {}: the import with the clicks took {}, {requests} requests, {limited} 429s.",
            run + 1,
            secs(*wall)
        );
    }
    let _ = writeln!(
        out,
        "\nClicks: median {}, max {} ({} of {} while the import was running); RTT + one budget \
         slot = {} + {} = {} ({} with the worst jitter).",
        med.map_or("–".into(), secs),
        max.map_or("–".into(), secs),
        during,
        clicks.len(),
        secs(rtt),
        secs(slot),
        secs(target),
        secs(worst_target)
    );
    report.sections.push(out);
    let errors = clicks.len() - ok.len();
    match (med, max) {
        (Some(med), Some(max)) => report.target(
            "open(id) during an import within RTT + one budget slot",
            Some(med <= target && max <= worst_target && errors == 0),
            format!(
                "median {} ≤ {}, max {} ≤ {} (jittered RTT), {errors} errors",
                secs(med),
                secs(target),
                secs(max),
                secs(worst_target)
            ),
        ),
        _ => report.target(
            "open(id) during an import within RTT + one budget slot",
            Some(false),
            "no click succeeded".into(),
        ),
    }
}
