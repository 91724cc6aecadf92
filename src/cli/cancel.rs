//! `franchise cancel` and `franchise retry`: stop an import's queued anime from being fetched,
//! or queue its failed (and cancelled) anime again. Either works from any process; the one
//! running the workers honours a cancel within a second.

use std::process::ExitCode;

use clap::Args;
use franchise::{Error, ImportProgress, Settings};

use super::client::{ApiClient, OwnerGone};
use super::wait::wait_for_imports;
use crate::out;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The import id (as `franchise import` printed it).
    #[arg(value_name = "IMPORT_ID", value_parser = import_id)]
    id: i64,
    /// Print the import's progress as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The import id (as `franchise import` printed it).
    #[arg(value_name = "IMPORT_ID", value_parser = import_id)]
    id: i64,
    /// Run the workers here and show progress until the import finishes again.
    #[arg(long)]
    wait: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Plain decimal digits from 1, like anime ids.
pub fn import_id(raw: &str) -> Result<i64, String> {
    let plain = !raw.is_empty()
        && raw.len() <= 18
        && raw.bytes().all(|b| b.is_ascii_digit())
        && !raw.starts_with('0');
    match raw.parse::<i64>() {
        Ok(id) if plain && id >= 1 => Ok(id),
        _ => Err(format!(
            "invalid import id {raw:?}: expected plain decimal digits from 1 (as `franchise \
             import` printed it)"
        )),
    }
}

pub async fn cancel(settings: Settings, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.without_queue().open().await?;
    let result = match ApiClient::of(&importer).await {
        Some(api) => match api.cancel(args.id).await {
            Err(e) if OwnerGone::is(&e) => importer.cancel(args.id).await.map_err(Into::into),
            answer => answer,
        },
        None => importer.cancel(args.id).await.map_err(anyhow::Error::from),
    };
    importer.close().await;
    let progress = result?;
    print(&progress, args.json, "cancelled")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(settings: Settings, args: RetryArgs) -> anyhow::Result<ExitCode> {
    let importer = if args.wait {
        super::importer(settings)?.open().await?
    } else {
        super::importer(settings)?.without_queue().open().await?
    };
    let code = async {
        let progress = match ApiClient::of(&importer).await {
            Some(api) => match api.retry(args.id).await {
                Err(e) if OwnerGone::is(&e) => importer.retry(args.id).await?,
                answer => answer?,
            },
            None => importer.retry(args.id).await?,
        };
        if !args.wait {
            print(&progress, args.json, "queued again")?;
            return Ok(ExitCode::SUCCESS);
        }
        match importer.start().await {
            Ok(()) | Err(Error::NotOwner { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        wait_for_imports(&importer, &[args.id], args.json).await
    }
    .await;
    importer.close().await;
    code
}

fn print(progress: &ImportProgress, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string(progress)?);
    } else {
        out!(
            "import {} {what}: {}, {} done, {} failed, {} cancelled, {} queued",
            progress.import_id,
            progress.state,
            progress.done,
            progress.failed,
            progress.cancelled,
            progress.queued
        );
    }
    Ok(())
}
