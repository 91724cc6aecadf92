//! `franchise import`: start an import per root. Without --wait it returns at once; with it,
//! it runs the workers here (or, if another process owns the queue, waits on that process,
//! taking the queue over if it goes away) and shows progress until done.

use std::process::ExitCode;

use clap::Args;
use franchise::{AnimeId, Error, Importer, QueueOwner, Settings};

use super::client::{ApiClient, OwnerGone};
use super::wait::wait_for_imports;
use crate::out;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// AniList anime ids, the roots of the franchises to import.
    #[arg(required = true, value_name = "ID", allow_negative_numbers = true)]
    ids: Vec<AnimeId>,
    /// Relation hops from the root to walk, 0 to 1000 [default: import.max_depth, 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1000))]
    depth: Option<u32>,
    /// Most anime one import takes in, root included [default: import.max_items, 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_items: Option<u32>,
    /// Fetch every anime again, however fresh its stored copy (and ask again for ids AniList
    /// said it did not have).
    #[arg(long)]
    force_refresh: bool,
    /// Run the workers here and show progress until the imports finish.
    #[arg(long)]
    wait: bool,
    /// Print {"import_id": N} (one line per root) instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut options = settings.import_options();
    if let Some(depth) = args.depth {
        options.max_depth = depth;
    }
    if let Some(max_items) = args.max_items {
        options.max_items = max_items;
    }
    options.force_refresh = args.force_refresh;

    let importer = super::importer(settings)?.open().await?;
    let code = record_and_wait(&importer, &args, &options).await;
    importer.close().await;
    code
}

async fn record_and_wait(
    importer: &Importer,
    args: &ImportArgs,
    options: &franchise::ImportOptions,
) -> anyhow::Result<ExitCode> {
    let owner = importer.queue_owner();
    // Another process owns the data dir and serves a local API (serve, work, import --wait):
    // ask it.
    let mut api = ApiClient::of(importer).await;
    let mut imports = Vec::new();
    for root in &args.ids {
        let import_id = match &api {
            Some(owner) => match owner.import(*root, options).await {
                Ok(import_id) => import_id,
                // It went away before the request reached it: record here (handed off to
                // whoever runs the queue next, this process too with --wait).
                Err(e) if OwnerGone::is(&e) => {
                    tracing::debug!(error = %e, "recording the imports here");
                    api = None;
                    importer.import(*root, options).await?
                }
                Err(e) => return Err(e),
            },
            None => importer.import(*root, options).await?,
        };
        match &api {
            Some(api) if !args.json => out!(
                "import {import_id} of anime {root} started by the franchise process that owns \
                 the queue, at {}",
                api.base()
            ),
            _ => report(args.json, import_id, *root, owner)?,
        }
        imports.push(import_id);
    }
    if !args.wait {
        if !args.json && owner == QueueOwner::ThisProcess {
            out!("run `franchise work` (or pass --wait) to fetch them");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match importer.start().await {
        Ok(()) | Err(Error::NotOwner { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    wait_for_imports(importer, &imports, args.json).await
}

fn report(json: bool, import_id: i64, root: AnimeId, owner: QueueOwner) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::json!({ "import_id": import_id }));
        return Ok(());
    }
    match owner {
        QueueOwner::OtherProcess { pid: Some(pid) } => out!(
            "import {import_id} of anime {root} recorded; the franchise process that owns the \
             queue (pid {pid}) runs it"
        ),
        QueueOwner::OtherProcess { pid: None } => out!(
            "import {import_id} of anime {root} recorded; the franchise process that owns the \
             queue runs it"
        ),
        _ => out!("import {import_id} of anime {root} started"),
    }
    Ok(())
}
