//! Command-line flags and the dispatch to each command. Global flags override the config file
//! and `FRANCHISE_*` variables; each command lives in its own file.

mod cancel;
mod client;
mod doctor;
mod fetch;
mod import;
mod local_api;
mod log;
mod open;
mod serve;
mod show;
mod signal;
mod status;
mod wait;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use franchise::testing::FailPoints;
use franchise::{Error, Importer, ImporterBuilder, Settings};

pub use log::init as init_logging;

/// Exit code of an import that finished with failed items, and of a fetch with unknown ids.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code after Ctrl-C or SIGTERM stopped a waiting command.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Writes a line to stdout; a reader that went away (`| head`) ends the command quietly.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

#[derive(Debug, Parser)]
#[command(
    name = "franchise",
    version,
    about = "Import an anime's whole franchise from AniList through a durable job queue",
    after_help = "Exit codes: 0 ok, 1 error, 2 bad usage, 3 finished with failed or unknown \
                  items, 130 interrupted.\nLogs: -v, -vv or RUST_LOG=franchise=debug; -q for \
                  errors only."
)]
pub struct Cli {
    /// A TOML settings file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the store and queue live [default: the platform data dir, or data_dir in config].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database for the store and queue, shared by many processes.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// The AniList GraphQL endpoint, e.g. a local fake-anilist.
    #[arg(long, global = true, value_name = "URL")]
    anilist_url: Option<String>,
    /// The Referer sent to AniList (its edge refuses requests without one).
    #[arg(long, global = true, value_name = "VALUE")]
    anilist_referer: Option<String>,
    /// How many fetch jobs run at once.
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true,
          value_parser = whole_number("fetch jobs from 1 to 1000"))]
    workers: Option<i64>,
    /// Upstream requests per minute, shared by every process on the data dir.
    #[arg(
        long,
        global = true,
        value_name = "PER_MINUTE",
        allow_negative_numbers = true,
        value_parser = whole_number(
            "requests per minute from 1 to 1000000 (AniList allows 30 now, 90 normally)"
        )
    )]
    budget: Option<i64>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    /// Cancel an import: its queued anime are not fetched; fetches in flight finish.
    Cancel(cancel::CancelArgs),
    /// Queue an import's failed (and cancelled) anime again.
    Retry(cancel::RetryArgs),
    /// Run the workers until stopped (Ctrl-C or SIGTERM stops gracefully).
    Work(work::WorkArgs),
    /// Run the workers plus the local HTTP API and live status page (127.0.0.1:7878).
    Serve(serve::ServeArgs),
    /// Progress and ETA of every import, queue depth per lane, the rate budget and workers.
    Status(status::StatusArgs),
    /// The stored franchise of an anime, as text, JSON or Graphviz DOT.
    Show(show::ShowArgs),
    /// Fetch anime straight from AniList (one request per 50 ids) and print them; stores
    /// nothing, but spends the shared budget.
    Fetch(fetch::FetchArgs),
    /// Check the way to AniList step by step (name, connection, TLS, one request with the
    /// configured Referer through the budget, rate-limit headers, the schema the import query
    /// needs) and say what is wrong. Exit 0 only when all is well.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script, e.g. `franchise completions bash >
    /// ~/.local/share/bash-completion/completions/franchise`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A bad flag or setting (exit 2, like clap's own usage errors), as opposed to a failure.
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<franchise::ConfigError>()
            || cause.is::<UsageError>()
            || cause.is::<franchise::InvalidAnimeId>()
            || matches!(
                cause.downcast_ref::<Error>(),
                Some(Error::Config(_) | Error::InvalidOption { .. } | Error::InvalidId(_))
            )
    })
}

/// Whether the command ended because stdout's reader went away (`franchise show 1 | head`).
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A flag value clap accepted but the command cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A flag that takes a whole number: text that is not one is refused naming what is expected
/// (the range itself is checked with the settings, like every other layer's value).
fn whole_number(expected: &'static str) -> impl Fn(&str) -> Result<i64, String> + Clone {
    move |text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| format!("{text:?} is not a whole number: expected {expected}"))
    }
}

/// The settings: built-in defaults, `--config`, `FRANCHISE_*`, then flags.
fn settings(cli: &Cli) -> Result<Settings, franchise::ConfigError> {
    let mut builder = Settings::builder().env();
    if let Some(file) = &cli.config {
        builder = builder.config_file(file);
    }
    if let Some(dir) = &cli.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(url) = &cli.database_url {
        builder = builder.database_url(url.clone());
    }
    if let Some(url) = &cli.anilist_url {
        builder = builder.anilist_url(url.clone());
    }
    if let Some(referer) = &cli.anilist_referer {
        builder = builder.referer(referer.clone());
    }
    if let Some(workers) = cli.workers {
        builder = builder.workers(workers);
    }
    if let Some(budget) = cli.budget {
        builder = builder.budget_per_minute(budget);
    }
    if let Command::Serve(serve::ServeArgs {
        listen: Some(listen),
    }) = &cli.command
    {
        builder = builder.listen(listen.clone());
    }
    builder.build()
}

/// An importer builder with the failure points a test armed through `FRANCHISE_FAILPOINTS`.
fn importer(settings: Settings) -> anyhow::Result<ImporterBuilder> {
    let mut builder = Importer::builder(settings);
    if let Ok(spec) = std::env::var("FRANCHISE_FAILPOINTS") {
        let points = FailPoints::parse(&spec).map_err(|e| UsageError(e.to_string()))?;
        builder = builder.failpoints(points);
    }
    Ok(builder)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions { shell } = cli.command {
        // Needs no settings: it must work before any config exists.
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "franchise", &mut script);
        out!("{}", String::from_utf8_lossy(&script).trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = settings(&cli)?;
    match cli.command {
        Command::Import(args) => import::run(settings, args).await,
        Command::Open(args) => open::run(settings, args).await,
        Command::Cancel(args) => cancel::cancel(settings, args).await,
        Command::Retry(args) => cancel::retry(settings, args).await,
        Command::Work(args) => work::run(settings, args).await,
        Command::Serve(args) => serve::run(settings, args).await,
        Command::Status(args) => status::run(settings, args).await,
        Command::Show(args) => show::run(settings, args).await,
        Command::Fetch(args) => fetch::run(settings, args).await,
        Command::Doctor(args) => doctor::run(settings, args).await,
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}
