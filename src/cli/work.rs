//! `franchise work`: own the queue and run the workers until Ctrl-C or SIGTERM, then stop
//! gracefully. Imports recorded meanwhile by other `franchise` processes are picked up.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use franchise::Importer;
use franchise::config::Settings;

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Print a status line this often, in seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    report_every: u64,
    /// Stop by itself once no import has anything queued (drain the queue, then exit).
    #[arg(long)]
    until_idle: bool,
}

pub async fn run(settings: Settings, args: WorkArgs) -> anyhow::Result<ExitCode> {
    let workers = settings.worker_count();
    let importer = Importer::open(settings).await?;
    importer.start().await?;
    eprintln!(
        "franchise work: pid {}, {workers} jobs at a time; Ctrl-C stops gracefully",
        std::process::id()
    );
    let stop = stop_signal();
    tokio::pin!(stop);
    let every = Duration::from_secs(args.report_every.max(1));
    let mut next_report = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if args.until_idle && idle(&importer).await {
            break;
        }
        if args.report_every > 0 && tokio::time::Instant::now() >= next_report {
            report(&importer).await;
            next_report += every;
        }
    }
    eprintln!("stopping: letting in-flight jobs finish…");
    importer.close().await;
    Ok(ExitCode::SUCCESS)
}

/// No import has an item waiting. (A failing store read counts as busy.)
async fn idle(importer: &Importer) -> bool {
    match importer.store().import_progress(None).await {
        Ok(imports) => imports.iter().all(|i| i.queued == 0),
        Err(_) => false,
    }
}

async fn report(importer: &Importer) {
    let Ok(status) = importer.status().await else {
        return;
    };
    let running: Vec<_> = status
        .imports
        .iter()
        .filter(|i| i.state == "running")
        .collect();
    let queued: u64 = running.iter().map(|i| i.progress.queued).sum();
    let budget = status.budget.as_ref();
    eprintln!(
        "{} running import(s), {queued} anime queued; {} requests made, {} rate-limited",
        running.len(),
        budget.map_or(0, |b| b.requests_made),
        budget.map_or(0, |b| b.rate_limited_seen)
    );
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
