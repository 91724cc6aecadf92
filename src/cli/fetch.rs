//! `franchise fetch`: one look at what AniList says about some anime, through the same client,
//! budget and retries the importer uses. Useful to check connectivity and the endpoint.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use franchise::anime::AnimeId;
use franchise::config::Settings;
use franchise::upstream::{AniListClient, RateBudget};

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// AniList anime ids.
    #[arg(required = true, value_name = "ID", allow_negative_numbers = true)]
    ids: Vec<AnimeId>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let budget = Arc::new(RateBudget::new(settings.budget()).map_err(anyhow::Error::msg)?);
    let client = AniListClient::new(settings.client(), budget).map_err(anyhow::Error::msg)?;
    let answer = client.fetch_batch(&args.ids).await.with_context(|| {
        format!(
            "fetching {} anime from {}",
            args.ids.len(),
            settings.anilist.url
        )
    })?;
    if args.json {
        let value = serde_json::json!({
            "found": answer.found,
            "not_found": answer.not_found,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for anime in &answer.found {
            println!(
                "{} {} [{}] {} relations",
                anime.id,
                anime.title.display().unwrap_or("(untitled)"),
                anime.format.as_deref().unwrap_or("?"),
                anime.relations.len()
            );
            for edge in &anime.relations {
                println!(
                    "  {:<12} -> {} {} ({})",
                    edge.relation.as_str(),
                    edge.node.id,
                    edge.node.title.display().unwrap_or("(untitled)"),
                    edge.node.kind.as_str()
                );
            }
        }
        for id in &answer.not_found {
            println!("{id} not found on AniList");
        }
    }
    Ok(if answer.not_found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PARTIAL)
    })
}
