//! A click from a second terminal: `franchise open ID`, a process of its own, while
//! `franchise work` (and again `franchise import --wait`) imports the 478-anime giant at
//! 0.7 s a call. The owner answers it through its local API; the figure is the whole command.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::report::{Report, median, secs};
use crate::throughput::Fake;

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub clicks: usize,
    pub seed: u64,
    pub fake_bin: Option<PathBuf>,
    pub franchise_bin: PathBuf,
}

/// The shape and pace: 478 anime in 11 levels, 0.7 s a call.
const SIZE: usize = 478;
const LEVELS: usize = 11;
const LATENCY_MS: u64 = 700;
/// The promise: the command exits 0 within this.
const WITHIN: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Work,
    ImportWait,
}

impl Owner {
    fn label(self) -> &'static str {
        match self {
            Owner::Work => "`franchise work`",
            Owner::ImportWait => "`franchise import --wait`",
        }
    }
}

struct Click {
    owner: Owner,
    run: usize,
    id: i32,
    latency: Duration,
    ok: bool,
    import_running: bool,
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let fake_bin = opts
        .fake_bin
        .as_deref()
        .context("click-cli mode needs the fake-anilist binary (--fake-bin, or build it)")?;
    let franchise_bin = opts.franchise_bin.as_path();
    let mut clicks = Vec::new();
    for owner in [Owner::Work, Owner::ImportWait] {
        for run in 1..=opts.runs {
            clicks.extend(one_run(opts, owner, run, fake_bin, franchise_bin).await?);
        }
    }
    render(opts, report, &clicks);
    Ok(())
}

fn franchise(bin: &Path, data: &Path, url: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(data)
        .arg("--anilist-url")
        .arg(url);
    cmd
}

async fn one_run(
    opts: &Options,
    owner: Owner,
    run: usize,
    fake_bin: &Path,
    franchise_bin: &Path,
) -> anyhow::Result<Vec<Click>> {
    let args = [
        "--no-rate-limit".to_string(),
        "--latency-ms".to_string(),
        LATENCY_MS.to_string(),
    ];
    let (fake, root) =
        crate::throughput::spawn_child(fake_bin, opts.seed, SIZE, LEVELS, &args).await?;
    let url = fake.url();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let started = Instant::now();
    let mut owner_child: Child = match owner {
        Owner::Work => {
            let out = franchise(franchise_bin, &data, &url)
                .args(["import", &root.to_string()])
                .output()
                .await?;
            if !out.status.success() {
                bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            franchise(franchise_bin, &data, &url)
                .args(["work", "--report-every", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?
        }
        Owner::ImportWait => franchise(franchise_bin, &data, &url)
            .args(["import", &root.to_string(), "--wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?,
    };
    wait_for_api(franchise_bin, &data, &url).await?;
    // Members the walk reaches last: the click has to fetch them, not read them.
    let mut out = Vec::new();
    for i in 0..opts.clicks {
        let id = root + (SIZE - 1 - i * 7) as i32;
        let t = Instant::now();
        let answer = franchise(franchise_bin, &data, &url)
            .args(["open", &id.to_string(), "--json"])
            .output()
            .await?;
        let latency = t.elapsed();
        let import_running = running(franchise_bin, &data, &url).await;
        eprintln!(
            "click-cli {} run {run}: open {id} at {} took {} (exit {:?}, import running: \
             {import_running})",
            owner.label(),
            secs(started.elapsed()),
            secs(latency),
            answer.status.code()
        );
        out.push(Click {
            owner,
            run,
            id,
            latency,
            ok: answer.status.success(),
            import_running,
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = owner_child.start_kill();
    let _ = owner_child.wait().await;
    if let Fake::Child { mut child, .. } = fake {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    Ok(out)
}

/// Until the owner's heartbeat row names its local API.
async fn wait_for_api(bin: &Path, data: &Path, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let out = franchise(bin, data, url)
            .args(["status", "--json"])
            .output()
            .await?;
        if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && status["workers"][0]["api_url"].is_string()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the owner never advertised its local API")
}

async fn running(bin: &Path, data: &Path, url: &str) -> bool {
    let Ok(out) = franchise(bin, data, url)
        .args(["status", "--json"])
        .output()
        .await
    else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .is_ok_and(|s| s["imports"][0]["state"] == "running")
}

fn render(opts: &Options, report: &mut Report, clicks: &[Click]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## A click from a second terminal beside the CLI's own workers\n\n\
         `franchise open ID --json` as its own process (the figure is the whole command: start, \
         ask the owner's local API, print) while the owner imports {SIZE} anime in {LEVELS} \
         levels at {} per call; {} click(s) on the walk's last members per run, {} run(s) per \
         owner.\n",
        secs(Duration::from_millis(LATENCY_MS)),
        opts.clicks,
        opts.runs
    );
    out.push_str(
        "| owner | run | anime | import still running | exit 0 | took |\n\
         |---|---:|---:|---|---|---:|\n",
    );
    for c in clicks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            c.owner.label(),
            c.run,
            c.id,
            if c.import_running { "yes" } else { "no" },
            if c.ok { "yes" } else { "no" },
            secs(c.latency)
        );
    }
    for owner in [Owner::Work, Owner::ImportWait] {
        let mine: Vec<&Click> = clicks.iter().filter(|c| c.owner == owner).collect();
        let ok = mine.iter().filter(|c| c.ok).count();
        let latencies: Vec<Duration> = mine.iter().map(|c| c.latency).collect();
        let med = median(latencies.clone());
        let max = latencies.iter().max().copied();
        let _ = writeln!(
            out,
            "\nBeside {}: median {}, max {}, {ok} of {} exited 0.",
            owner.label(),
            med.map_or("–".into(), secs),
            max.map_or("–".into(), secs),
            mine.len()
        );
        report.target(
            &format!(
                "open from a second terminal beside {} within 3 s",
                owner.label()
            ),
            max.map(|m| m <= WITHIN && ok == mine.len()),
            format!(
                "max {} (median {}), {ok} of {} exited 0",
                max.map_or("–".into(), secs),
                med.map_or("–".into(), secs),
                mine.len()
            ),
        );
    }
    report.sections.push(out);
}
