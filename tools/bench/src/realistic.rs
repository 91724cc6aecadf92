//! Realistic mode: franchises of 10, 60 and 300 anime against the fake at 1 s ± 0.3 s and the
//! degraded 30/min limit; (a) the original app, (b) its plan, (c) franchise; T_min.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Measured, Report, Runs, eta_at, ratio, secs};
use crate::scenario::{self, Bound, TimeScale};
use crate::{baseline_buffered, baseline_sequential, franchise_run};

#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Vec<usize>,
    pub runs: usize,
    pub skip_baseline_above: usize,
    pub scale: TimeScale,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    Sequential,
    Buffered,
    Franchise,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Sequential, Variant::Buffered, Variant::Franchise];

    fn label(self) -> &'static str {
        match self {
            Variant::Sequential => "(a) original: 1 request/anime, sequential, single-row INSERTs",
            Variant::Buffered => {
                "(b) plan: buffer_unordered(3), 1 request/anime, batch INSERT/level"
            }
            Variant::Franchise => "(c) franchise (Importer, default settings)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Variant::Sequential => "(a)",
            Variant::Buffered => "(b)",
            Variant::Franchise => "(c)",
        }
    }
}

struct SizeResult {
    bound: Bound,
    runs: BTreeMap<Variant, Option<Runs>>,
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let world = scenario::realistic_world(opts.seed, &opts.sizes)?;
    let mut results = BTreeMap::new();
    for (&size, &root) in &world.roots {
        let bound = scenario::bound(&world.world, root, opts.scale);
        eprintln!(
            "realistic {size}: root {root}, levels {:?}, R = {}, T_min = {}",
            bound.levels,
            bound.requests,
            secs(bound.t_min)
        );
        let mut runs = BTreeMap::new();
        for variant in Variant::ALL {
            if variant != Variant::Franchise && size > opts.skip_baseline_above {
                runs.insert(variant, None);
                continue;
            }
            let mut all = Runs::default();
            for i in 1..=opts.runs {
                let outcome = one_run(variant, &world.world, root, opts.scale).await;
                match outcome {
                    Ok(m) => {
                        eprintln!(
                            "  {} run {i}/{}: {} for {} anime, {} requests, {} 429s",
                            variant.short(),
                            opts.runs,
                            secs(m.wall),
                            m.anime,
                            m.requests,
                            m.rate_limited
                        );
                        all.ok.push(m);
                    }
                    Err(e) => {
                        eprintln!("  {} run {i}/{} failed: {e:#}", variant.short(), opts.runs);
                        all.errors.push(format!("{e:#}"));
                    }
                }
            }
            runs.insert(variant, Some(all));
        }
        results.insert(size, SizeResult { bound, runs });
    }
    report.sections.push(render(opts, &results));
    targets(report, &results);
    Ok(())
}

async fn one_run(
    variant: Variant,
    world: &fake_anilist::World,
    root: i32,
    scale: TimeScale,
) -> anyhow::Result<Measured> {
    // A fresh fake per run: fresh stats, a fresh rate window, no ban left over.
    let fake = scenario::start_fake(world, scale).await?;
    let result = match variant {
        Variant::Sequential => baseline_sequential::run(&fake, root).await,
        Variant::Buffered => baseline_buffered::run(&fake, root).await,
        Variant::Franchise => franchise_run::run(&fake, root, scale).await,
    };
    fake.shutdown().await;
    result
}

fn render(opts: &Options, results: &BTreeMap<usize, SizeResult>) -> String {
    let mut out = String::new();
    let rtt = secs(opts.scale.rtt());
    let _ = writeln!(
        out,
        "## Realistic: fake AniList at {rtt} ± {}, degraded 30 per {} window, burst 6 per {}, \
         {} s ban\n",
        secs(opts.scale.jitter()),
        secs(opts.scale.window()),
        secs(opts.scale.window() / 60),
        opts.scale.ban_secs()
    );
    let _ = writeln!(
        out,
        "Median of {} run(s) each (min–max in brackets); requests and 429s are medians too, \
         counted by the fake. Wall time runs from the first request (the import call for (c)) \
         until the last anime is committed to SQLite; opening the store is not counted.\n",
        opts.runs
    );
    out.push_str(
        "| anime | levels | R | T_min = max(R·RTT, rate) | variant | wall | requests | 429s | stored | (a)÷this | (b)÷this | this÷T_min |\n\
         |---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for result in results.values() {
        let b = &result.bound;
        let wall_of = |v: Variant| {
            result
                .runs
                .get(&v)
                .and_then(|r| r.as_ref())
                .and_then(Runs::wall)
        };
        let (a, bb) = (wall_of(Variant::Sequential), wall_of(Variant::Buffered));
        for variant in Variant::ALL {
            let cells = match result.runs.get(&variant).and_then(|r| r.as_ref()) {
                None => format!(
                    "skipped (size > --skip-baseline-above {}) | | | | | | |",
                    opts.skip_baseline_above
                ),
                Some(runs) => match (runs.wall(), runs.range()) {
                    (Some(wall), Some((min, max))) => {
                        let vs = |other: Option<std::time::Duration>| {
                            other.map_or("–".to_string(), |o| format!("{:.1}×", ratio(o, wall)))
                        };
                        let failed = if runs.errors.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} failed run(s))", runs.errors.len())
                        };
                        format!(
                            "{} [{}–{}]{failed} | {} | {} | {} | {} | {} | {:.2} |",
                            secs(wall),
                            secs(min),
                            secs(max),
                            runs.requests().unwrap_or(0),
                            runs.rate_limited().unwrap_or(0),
                            runs.anime(),
                            vs(a),
                            vs(bb),
                            ratio(wall, b.t_min)
                        )
                    }
                    _ => format!(
                        "every run failed: {} | | | | | | |",
                        runs.errors.first().map_or("", String::as_str)
                    ),
                },
            };
            let _ = writeln!(
                out,
                "| {} | {} ({:?}) | {} | {} = max({}, {}) | {} | {cells}",
                b.anime,
                b.levels.len(),
                b.levels,
                b.requests,
                secs(b.t_min),
                secs(b.latency_bound),
                secs(b.rate_bound),
                variant.label()
            );
        }
    }
    eta_table(&mut out, results);
    let _ = writeln!(
        out,
        "\nT_min = max(R·RTT, rate bound), R = Σ⌈level/50⌉ over the walk's levels, RTT = {rtt}; \
         rate bound = 0 if R ≤ 30 (a whole window's budget may be spent at once), else \
         (⌈R/30⌉ − 1)·window + RTT (the last request cannot start before the last window \
         opens, and takes one RTT)."
    );
    out
}

/// The estimate's error at 25 %, 50 % and 75 % of each franchise run: what `status` said was
/// left (the last sample before that moment) against what was left.
fn eta_table(out: &mut String, results: &BTreeMap<usize, SizeResult>) {
    let _ = writeln!(
        out,
        "\n### The ETA against the time really left (franchise, every run)\n\n\
         `importer.status()` sampled every 100 ms during the import; at each fraction of the \
         run, the last estimate before it against the time that was left, and the floor (what \
         the known part of the walk alone takes) likewise. Negative: short.\n\n\
         | anime | run | wall | at 25 % | at 50 % | at 75 % |\n|---:|---:|---:|---|---|---|"
    );
    for result in results.values() {
        let Some(Some(runs)) = result.runs.get(&Variant::Franchise) else {
            continue;
        };
        for (i, m) in runs.ok.iter().enumerate() {
            let cell = |fraction: f64| match eta_at(&m.eta, m.wall, fraction) {
                Some((said, left)) => match said.at_least_secs {
                    Some(floor) => format!(
                        "said ~{:.1} s (≥ {floor:.1} s), left {left:.1} s: {:+.1} s (floor {:+.1} s)",
                        said.eta_secs,
                        said.eta_secs - left,
                        floor - left
                    ),
                    None => format!(
                        "said ~{:.1} s, left {left:.1} s: {:+.1} s",
                        said.eta_secs,
                        said.eta_secs - left
                    ),
                },
                None => "no estimate yet".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                result.bound.anime,
                i + 1,
                secs(m.wall),
                cell(0.25),
                cell(0.50),
                cell(0.75)
            );
        }
    }
}

fn targets(report: &mut Report, results: &BTreeMap<usize, SizeResult>) {
    let runs_of = |size: usize, v: Variant| {
        results
            .get(&size)
            .and_then(|r| r.runs.get(&v))
            .and_then(|r| r.as_ref())
    };
    match (results.get(&300), runs_of(300, Variant::Franchise)) {
        (Some(r), Some(c)) => match (c.wall(), c.max_rate_limited()) {
            (Some(wall), Some(limited)) => {
                let x = ratio(wall, r.bound.t_min);
                report.target(
                    "300 anime within 1.25 × T_min, zero 429s",
                    Some(x <= 1.25 && limited == 0),
                    format!(
                        "{} = {x:.2} × T_min ({}), 429s in the worst run: {limited}",
                        secs(wall),
                        secs(r.bound.t_min)
                    ),
                );
            }
            _ => report.target(
                "300 anime within 1.25 × T_min, zero 429s",
                Some(false),
                "every run failed".into(),
            ),
        },
        _ => report.target(
            "300 anime within 1.25 × T_min, zero 429s",
            None,
            "size 300 not run".into(),
        ),
    }
    let c = runs_of(60, Variant::Franchise).and_then(Runs::wall);
    for (variant, factor, name) in [
        (
            Variant::Sequential,
            20.0,
            "≥ 20× faster than (a) at 60 anime",
        ),
        (Variant::Buffered, 5.0, "≥ 5× faster than (b) at 60 anime"),
    ] {
        match (runs_of(60, variant).and_then(Runs::wall), c) {
            (Some(base), Some(c)) => {
                let x = ratio(base, c);
                report.target(
                    name,
                    Some(x >= factor),
                    format!("{x:.1}× ({} vs {})", secs(base), secs(c)),
                );
            }
            _ => report.target(name, None, "not measured".into()),
        }
    }
}
