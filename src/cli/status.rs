//! `franchise status`: progress and ETA per import, queue depth per lane and the rate budget.
//! Reads SQLite, so it works while `franchise work` runs in another process.

use std::process::ExitCode;

use clap::Args;
use franchise::config::Settings;
use franchise::importer::{Status, status_of_store};
use franchise::queue::{JobQueue, QueueError};
use franchise::store::Store;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_sqlite(&settings.store_path()).await?;
    let mut status = status_of_store(&store).await?;
    store.close().await;
    if status.worker.is_none() && settings.queue_path().exists() {
        // Nobody runs the workers: the queue file is free to read.
        match JobQueue::open(&settings.queue_path()).await {
            Ok(queue) => status.queue = queue.depth().await.ok(),
            // A short-lived command (import, open) owns it for a moment: nothing to report.
            Err(QueueError::Locked { .. }) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_text(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(status: &Status) {
    if status.imports.is_empty() {
        println!("no imports yet: `franchise import <ID>` starts one");
    }
    for i in &status.imports {
        let p = &i.progress;
        let eta = i
            .eta_secs
            .filter(|_| i.state == "running")
            .map(|s| format!(", ETA {}", human(s)))
            .unwrap_or_default();
        println!(
            "import {:<4} root {:<8} {:<18} {}/{} done, {} failed, {} queued{eta}",
            p.import_id, p.root, i.state, p.done, p.discovered, p.failed, p.queued
        );
        for (reason, count) in &p.failures {
            println!("    {count} × {reason}");
        }
    }
    match &status.queue {
        Some(q) => println!(
            "queue   interactive {} pending, {} running | background {} pending, {} running, {} done, {} failed",
            q.interactive.pending,
            q.interactive.running,
            q.background.pending,
            q.background.running,
            q.background.done,
            q.background.failed
        ),
        None if status.worker.is_some() => println!("queue   (not reported yet)"),
        None => println!("queue   empty (no queue file, or it could not be read)"),
    }
    match &status.budget {
        Some(b) => println!(
            "budget  {}/{} requests in the current {:.0} s window, pace {:.0}/min, {} made, {} rate-limited{}",
            b.used_in_window,
            b.limit_per_window,
            b.window_secs,
            b.pace_per_minute,
            b.requests_made,
            b.rate_limited_seen,
            b.parked_for_ms
                .map(|ms| format!(
                    ", parked {:.1} s ({:?})",
                    ms as f64 / 1000.0,
                    b.parked_reason
                ))
                .unwrap_or_default()
        ),
        None => println!("budget  (no worker running)"),
    }
    match &status.worker {
        Some(w) => println!("worker  pid {} (seen {} ms ago)", w.pid, w.seen_ms_ago),
        None => println!("worker  none running: `franchise work` runs the queue"),
    }
}

fn human(secs: f64) -> String {
    let secs = secs.round() as u64;
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}
