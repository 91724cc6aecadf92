//! `franchise open`: the anime a user clicked, with its relations. Fresh in the store means no
//! fetch at all; otherwise one interactive job runs here, ahead of any background import.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use franchise::{AnimeId, Error, Settings, StoredAnime};

use super::client::{ApiClient, ApiRefused, OwnerGone};
use crate::out;

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The AniList anime id.
    #[arg(value_name = "ID", allow_negative_numbers = true)]
    id: AnimeId,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds (1 to 3600).
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

pub async fn run(settings: Settings, args: OpenArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.open().await?;
    // A fresh copy needs no workers; otherwise run them here, or ask the `franchise serve`
    // process that runs them.
    let mut started = importer.start().await;
    if matches!(started, Err(Error::NotOwner { .. }))
        && let Some(api) = ApiClient::of(&importer).await
    {
        match api.open(args.id, args.timeout).await {
            // It went away before the request reached it: its queue is free, run it here.
            Err(e) if OwnerGone::is(&e) => {
                tracing::debug!(error = %e, "opening the anime here");
                started = importer.start().await;
            }
            answer => {
                importer.close().await;
                return match answer {
                    Ok(anime) => {
                        print(&anime, args.json)?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) if is_not_found(&e) => {
                        eprintln!("error: {e}");
                        Ok(ExitCode::from(super::EXIT_PARTIAL))
                    }
                    Err(e) => Err(e),
                };
            }
        }
    }
    let answer = match started {
        Ok(()) | Err(Error::NotOwner { .. }) => {
            tokio::time::timeout(
                Duration::from_secs(args.timeout),
                importer.open_anime(args.id),
            )
            .await
        }
        Err(e) => Ok(Err(e)),
    };
    importer.close().await;
    let anime = match answer {
        Ok(Ok(anime)) => anime,
        Ok(Err(Error::NotFound(id))) => {
            eprintln!("error: anime {id} is not on AniList (unknown, deleted or adult id)");
            return Ok(ExitCode::from(super::EXIT_PARTIAL));
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => anyhow::bail!(
            "anime {} was not fetched within {} s; `franchise status` shows the rate budget \
             and the workers",
            args.id,
            args.timeout
        ),
    };
    print(&anime, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(anime: &StoredAnime, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(anime)?);
        return Ok(());
    }
    if let Some(upstream) = &anime.stale {
        eprintln!(
            "note: AniList is {} ({}); this is the stored copy",
            upstream.state.as_str(),
            upstream.message.as_deref().unwrap_or("no message")
        );
    }
    out!(
        "{} {} [{}, {}]",
        anime.id,
        anime.title.display().unwrap_or("(untitled)"),
        anime.format.as_deref().unwrap_or("?"),
        anime.status.as_deref().unwrap_or("?")
    );
    for r in &anime.relations {
        out!(
            "  {:<12} -> {} {} ({}{})",
            r.relation_type,
            r.to,
            r.to_title.as_deref().unwrap_or("(untitled)"),
            r.to_kind,
            if r.derived { ", derived" } else { "" }
        );
    }
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiRefused>()
        .is_some_and(|r| r.status == reqwest::StatusCode::NOT_FOUND)
}
