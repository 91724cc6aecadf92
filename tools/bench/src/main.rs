//! `franchise-bench`: the end-to-end benchmark of `franchise` against the fake AniList over
//! loopback. Prints a markdown report (machine, command line, tables, targets) on stdout and
//! progress on stderr. See docs/benchmarks.md.

mod baseline_buffered;
mod baseline_sequential;
mod click;
mod click_cli;
mod franchise_run;
mod machine;
mod naive;
mod realistic;
mod report;
mod scale_out;
mod scenario;
mod throughput;
mod walk;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use crate::report::Report;
use crate::scenario::TimeScale;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// One process: SQLite and redb in a temp data dir.
    Embedded,
    /// PostgreSQL (store, queue and budget) with `--processes` `franchise work` processes,
    /// beside the embedded figure from the same run.
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// (a) original app, (b) its plan, (c) franchise at 1 s ± 0.3 s under 30/min.
    Realistic,
    /// anime/s with zero latency and no limit, peak RSS, time to enqueue 100,000 jobs.
    Throughput,
    /// open(id) latency during a 300-anime realistic import.
    Click,
    /// `franchise open ID` from a second terminal beside `work` and `import --wait`.
    ClickCli,
    /// 1, 2, 3 and adaptive levels of relations per request, against the level limit.
    Walk,
    /// All five.
    All,
}

/// End-to-end benchmark of franchise against the fake AniList.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Where the store and queue live. `postgres` measures realistic and throughput modes with
    /// each of `--processes` worker processes (click mode is embedded only).
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    backend: Backend,
    /// The PostgreSQL server for `--backend postgres`; each run creates a database there and
    /// drops it [default: TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Worker process counts for `--backend postgres`.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    processes: Vec<usize>,
    /// The `franchise` binary the worker processes run [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    franchise_bin: Option<PathBuf>,
    /// PostgreSQL connections per worker process (`database_pool_size`) [default: franchise's
    /// own].
    #[arg(long, value_name = "N")]
    pool_size: Option<u32>,
    /// Franchise sizes for realistic mode.
    #[arg(long, value_delimiter = ',', default_value = "10,60,300")]
    sizes: Vec<usize>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run the baselines (a) and (b) only for sizes up to N (they take minutes above it).
    #[arg(long, value_name = "N", default_value_t = 60)]
    skip_baseline_above: usize,
    /// Divide latencies and the fake's windows and ban by K, for a quick smoke run
    /// (1 = the real measurement).
    #[arg(long, value_name = "K", default_value_t = 1.0)]
    time_scale: f64,
    /// Franchise sizes for throughput mode.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    throughput_sizes: Vec<usize>,
    /// Jobs in flight (`settings.workers`) in throughput mode.
    #[arg(long, default_value_t = 500)]
    workers: i64,
    /// Jobs pushed into a fresh queue to time enqueueing (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    enqueue: usize,
    /// Franchise shapes for walk mode, as ANIME:LEVELS (the 478 in 11 levels, 46 in
    /// 7, 35 in 5).
    #[arg(long, value_delimiter = ',', value_parser = parse_shape, default_value = "478:11,46:7,35:5")]
    walk_shapes: Vec<(usize, usize)>,
    /// Clicks per run in click mode.
    #[arg(long, default_value_t = 6)]
    clicks: usize,
    /// Seed of the generated worlds.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The fake-anilist binary for throughput mode [default: next to this binary]; if absent
    /// the fake runs in this process and the peak RSS includes it.
    #[arg(long, value_name = "PATH")]
    fake_bin: Option<PathBuf>,
}

fn parse_shape(raw: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{raw:?}: expected ANIME:LEVELS such as 478:11");
    let (anime, levels) = raw.split_once(':').ok_or_else(bad)?;
    let anime: usize = anime.trim().parse().map_err(|_| bad())?;
    let levels: usize = levels.trim().parse().map_err(|_| bad())?;
    if anime == 0 || levels == 0 || levels > anime {
        return Err(bad());
    }
    Ok((anime, levels))
}

fn fake_bin(given: Option<PathBuf>) -> Option<PathBuf> {
    if given.is_some() {
        return given;
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("fake-anilist");
    candidate.is_file().then_some(candidate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let args = Args::parse();
    let scale = TimeScale::new(args.time_scale)?;
    let runs = args.runs.max(1);
    let mut report = Report {
        header: header(scale),
        ..Report::default()
    };
    let modes = |m: Mode| args.mode == m || args.mode == Mode::All;
    if args.backend == Backend::Postgres {
        let opts = scale_out::Options {
            server_url: args.database_url.clone().unwrap_or_else(|| {
                std::env::var("TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
            }),
            franchise_bin: scale_out::franchise_bin(args.franchise_bin.clone()),
            processes: args.processes.clone(),
            runs,
            seed: args.seed,
            pool_size: args.pool_size,
        };
        if let Some(bad) = opts.processes.iter().find(|n| **n == 0 || **n > 64) {
            anyhow::bail!("--processes {bad}: each count must be from 1 to 64");
        }
        if modes(Mode::Realistic) {
            if !scale.is_real() {
                anyhow::bail!("--backend postgres measures at --time-scale 1 only");
            }
            for &size in &args.sizes {
                scale_out::realistic(&opts, size, &mut report)
                    .await
                    .context("realistic mode on PostgreSQL")?;
            }
        }
        if modes(Mode::Throughput) {
            let tp = throughput::Options {
                sizes: args.throughput_sizes.clone(),
                runs,
                workers: args.workers,
                enqueue: 0,
                seed: args.seed,
                fake_bin: fake_bin(args.fake_bin.clone()),
            };
            scale_out::throughput(&opts, &tp, &mut report)
                .await
                .context("throughput mode on PostgreSQL")?;
        }
        if args.mode == Mode::Click {
            eprintln!(
                "click mode runs embedded only; tests/postgres.rs times a click across processes"
            );
        }
        println!("{}", report.render());
        return Ok(());
    }
    if modes(Mode::Realistic) {
        let opts = realistic::Options {
            sizes: args.sizes.clone(),
            runs,
            skip_baseline_above: args.skip_baseline_above,
            scale,
            seed: args.seed,
        };
        realistic::run(&opts, &mut report)
            .await
            .context("realistic mode")?;
    }
    if modes(Mode::Click) {
        let opts = click::Options {
            runs,
            clicks: args.clicks,
            import_size: 300,
            scale,
            seed: args.seed,
        };
        click::run(&opts, &mut report).await.context("click mode")?;
    }
    if modes(Mode::ClickCli) {
        let opts = click_cli::Options {
            runs,
            clicks: args.clicks,
            seed: args.seed,
            fake_bin: fake_bin(args.fake_bin.clone()),
            franchise_bin: scale_out::franchise_bin(args.franchise_bin.clone()),
        };
        click_cli::run(&opts, &mut report)
            .await
            .context("click-cli mode")?;
    }
    if modes(Mode::Walk) {
        let opts = walk::Options {
            shapes: args.walk_shapes.clone(),
            runs,
            scale,
            seed: args.seed,
            fake_bin: fake_bin(args.fake_bin.clone()),
        };
        walk::run(&opts, &mut report).await.context("walk mode")?;
    }
    if modes(Mode::Throughput) {
        let opts = throughput::Options {
            sizes: args.throughput_sizes.clone(),
            runs,
            workers: args.workers,
            enqueue: args.enqueue,
            seed: args.seed,
            fake_bin: fake_bin(args.fake_bin.clone()),
        };
        throughput::run(&opts, &mut report)
            .await
            .context("throughput mode")?;
    }
    println!("{}", report.render());
    Ok(())
}

fn header(scale: TimeScale) -> String {
    let command: Vec<String> = std::env::args().collect();
    let mut out = format!(
        "# franchise end-to-end benchmark\n\n- command: `{}`\n- machine: {}\n",
        command.join(" "),
        machine::describe()
    );
    if !scale.is_real() {
        out.push_str(&format!(
            "- **time scale {}: a smoke run, not a measurement** (latencies, the fake's window \
             and ban divided by {}; franchise's budget {}×30/min with {}×shorter spacing, its \
             window still 60 s and its Retry-After margin still 1 s)\n",
            scale.0, scale.0, scale.0, scale.0
        ));
    }
    out
}
