//! `franchise work`: run the workers until Ctrl-C or SIGTERM, then stop gracefully. Imports
//! recorded meanwhile by other `franchise` processes are picked up.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use franchise::{Error, ImportFilter, ImportState, Importer, Settings};

use super::local_api::LocalApi;
use super::signal::stop_signal;

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Print a status line this often, in seconds (0: never; at most 86400).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    report_every: u64,
    /// Stop by itself once no import has anything queued and the queue is empty.
    #[arg(long)]
    until_idle: bool,
}

pub async fn run(settings: Settings, args: WorkArgs) -> anyhow::Result<ExitCode> {
    let workers = settings.workers();
    let importer = super::importer(settings)?.open().await?;
    if let Err(e) = start(&importer).await {
        importer.close().await;
        return Err(e.into());
    }
    tracing::info!(pid = std::process::id(), workers, "franchise work started");
    eprintln!(
        "franchise work: pid {}, {workers} jobs at a time; Ctrl-C stops gracefully",
        std::process::id()
    );
    let api = LocalApi::start(&importer).await;
    let outcome = work(&importer, &args).await;
    eprintln!("stopping: letting in-flight jobs finish…");
    if let Some(api) = api {
        api.stop().await;
    }
    importer.close().await;
    outcome
}

/// Starts the workers; a queue held for a moment by a short command (`status` reading its
/// depth) is waited for, briefly.
pub(super) async fn start(importer: &Importer) -> Result<(), Error> {
    let mut tries = 0;
    loop {
        match importer.start().await {
            Err(Error::NotOwner { .. }) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn work(importer: &Importer, args: &WorkArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_signal();
    tokio::pin!(stop);
    let idle = async {
        if args.until_idle {
            importer.until_idle().await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(idle);
    let every = Duration::from_secs(args.report_every.max(1));
    let mut next_report = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            () = &mut stop => return Ok(ExitCode::SUCCESS),
            ended = &mut idle => return match ended {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(halt) => Err(Error::Halted(halt).into()),
            },
            halt = importer.until_halted() => return Err(Error::Halted(halt).into()),
            () = tokio::time::sleep_until(next_report), if args.report_every > 0 => {
                report(importer).await;
                next_report += every;
            }
        }
    }
}

async fn report(importer: &Importer) {
    let Ok(status) = importer
        .status(&ImportFilter::in_state(ImportState::Running))
        .await
    else {
        return;
    };
    let queued: u64 = status.imports.iter().map(|i| i.progress.queued).sum();
    let budget = status.budget.as_ref();
    eprintln!(
        "{} running import(s), {queued} anime queued; {} requests made, {} rate-limited",
        status.imports.len(),
        budget.map_or(0, |b| b.requests_made),
        budget.map_or(0, |b| b.rate_limited_seen)
    );
}
