//! `franchise import`: start an import per root. Without --wait it returns at once; if another
//! process owns the queue, the import is recorded in the store and that process runs it.

use std::process::ExitCode;

use clap::Args;
use franchise::anime::AnimeId;
use franchise::config::Settings;
use franchise::importer::record_import;
use franchise::queue::QueueError;
use franchise::{Error, ImportOptions, Importer};

use super::progress::wait_for_imports;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// AniList anime ids, the roots of the franchises to import.
    #[arg(required = true, value_name = "ID", allow_negative_numbers = true)]
    ids: Vec<AnimeId>,
    /// Relation hops from the root to walk [default: import.max_depth in config, 50].
    #[arg(long, value_name = "N")]
    depth: Option<u32>,
    /// Most anime one import takes in, root included [default: import.max_items, 1000].
    #[arg(long, value_name = "N")]
    max_items: Option<u32>,
    /// Fetch every anime again, however fresh its stored copy.
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
    options
        .validate()
        .map_err(|e| super::UsageError(format!("invalid --max-items: {e}")))?;

    let importer = match Importer::open(settings.clone()).await {
        Ok(importer) => importer,
        Err(Error::Queue(QueueError::Locked { pid, .. })) => {
            return record_only(&settings, &args, &options, pid).await;
        }
        Err(e) => return Err(e.into()),
    };
    let mut imports = Vec::new();
    for root in &args.ids {
        let import_id = importer.import(*root, &options).await?;
        report(&args, import_id, *root, None);
        imports.push(import_id);
    }
    if !args.wait {
        if !args.json {
            println!("run `franchise work` (or pass --wait) to fetch them");
        }
        importer.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    importer.start().await?;
    let code = wait_for_imports(importer.store(), &imports, args.json).await;
    importer.close().await;
    code
}

/// Another process owns the queue: record the imports in the store; its workers pick them up.
async fn record_only(
    settings: &Settings,
    args: &ImportArgs,
    options: &ImportOptions,
    owner: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let mut imports = Vec::new();
    for root in &args.ids {
        let import_id = record_import(settings, *root, options).await?;
        report(args, import_id, *root, owner);
        imports.push(import_id);
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let store = franchise::store::Store::open_sqlite(&settings.store_path()).await?;
    let code = wait_for_imports(&store, &imports, args.json).await;
    store.close().await;
    code
}

fn report(args: &ImportArgs, import_id: i64, root: AnimeId, owner: Option<u32>) {
    if args.json {
        println!("{}", serde_json::json!({ "import_id": import_id }));
        return;
    }
    match owner {
        Some(pid) => println!(
            "import {import_id} of anime {root} recorded; the franchise process that owns the \
             queue (pid {pid}) will run it"
        ),
        None => println!("import {import_id} of anime {root} started"),
    }
}
