//! Command-line flags and the dispatch to each command. Global flags override the config file
//! and `FRANCHISE_*` variables; each command lives in its own file.

mod fetch;
mod import;
mod open;
mod progress;
mod show;
mod status;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use franchise::config::{Overrides, Settings};

/// Exit code of an import that finished with failed items, and of a fetch with unknown ids.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code after Ctrl-C stopped a waiting command.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "franchise",
    version,
    about = "Import an anime's whole franchise from AniList through a durable job queue",
    after_help = "Exit codes: 0 ok, 1 error, 2 bad usage, 3 finished with failed or unknown \
                  items, 130 interrupted."
)]
pub struct Cli {
    /// A TOML settings file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the store and queue live [default: the platform data dir, or data_dir in config].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The AniList GraphQL endpoint, e.g. a local fake-anilist.
    #[arg(long, global = true, value_name = "URL")]
    anilist_url: Option<String>,
    /// How many fetch jobs run at once.
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true)]
    workers: Option<i64>,
    /// Upstream requests per minute, shared by all workers.
    #[arg(
        long,
        global = true,
        value_name = "PER_MINUTE",
        allow_negative_numbers = true
    )]
    budget: Option<i64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import the franchise of each root anime: prints the import id at once, or with --wait
    /// runs the workers here and shows progress until done.
    Import(import::ImportArgs),
    /// Show one anime with its relations, fetching it ahead of all background work if it is
    /// not fresh in the store.
    Open(open::OpenArgs),
    /// Run the workers until stopped (Ctrl-C stops gracefully).
    Work(work::WorkArgs),
    /// Progress and ETA of every import, queue depth per lane, and the rate budget.
    Status(status::StatusArgs),
    /// The stored franchise of an anime, as text, JSON or Graphviz DOT.
    Show(show::ShowArgs),
    /// Fetch anime straight from AniList (one request per 50 ids) and print them; stores nothing.
    Fetch(fetch::FetchArgs),
}

/// A bad flag or setting (exit 2, like clap's own usage errors), as opposed to a failure.
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<franchise::config::ConfigError>()
            || cause.is::<UsageError>()
            || matches!(
                cause.downcast_ref::<franchise::Error>(),
                Some(franchise::Error::Config(_) | franchise::Error::InvalidOption(_))
            )
    })
}

/// A flag value clap accepted but the command cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        data_dir: cli.data_dir,
        anilist_url: cli.anilist_url,
        workers: cli.workers,
        budget_per_minute: cli.budget,
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Import(args) => import::run(settings, args).await,
        Command::Open(args) => open::run(settings, args).await,
        Command::Work(args) => work::run(settings, args).await,
        Command::Status(args) => status::run(&settings, args).await,
        Command::Show(args) => show::run(&settings, args).await,
        Command::Fetch(args) => fetch::run(&settings, args).await,
    }
}
