//! Command-line flags and the dispatch to each command. Global flags override the config file
//! and `FRANCHISE_*` variables; each command lives in its own file.

mod fetch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use franchise::config::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "franchise",
    version,
    about = "Import an anime's whole franchise from AniList"
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
    /// How many import jobs run at once.
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
    /// Fetch anime straight from AniList (one request per 50 ids) and print them; stores nothing.
    Fetch(fetch::FetchArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        data_dir: cli.data_dir,
        anilist_url: cli.anilist_url,
        workers: cli.workers,
        budget_per_minute: cli.budget,
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Fetch(args) => fetch::run(&settings, args).await,
    }
}
