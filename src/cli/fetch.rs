//! `franchise fetch`: one look at what AniList says about some anime, through the same client,
//! shared budget and retries the importer uses. Useful to check connectivity and the endpoint.

use std::process::ExitCode;

use clap::Args;
use franchise::{AnimeId, Settings};

use crate::out;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// AniList anime ids.
    #[arg(required = true, value_name = "ID", allow_negative_numbers = true)]
    ids: Vec<AnimeId>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings.clone())?
        .without_queue()
        .open()
        .await?;
    let answer = importer.fetch(&args.ids).await;
    importer.close().await;
    let answer = answer.map_err(|e| match e {
        franchise::Error::UpstreamDown(u) => {
            let hint = if u.state == franchise::UpstreamState::Refused {
                super::wait::referer_hint(&settings)
            } else {
                String::new()
            };
            anyhow::anyhow!("{}{hint}", franchise::Error::UpstreamDown(u))
        }
        franchise::Error::Upstream(u) if u.is_down() => anyhow::anyhow!(
            "{}. `franchise doctor` checks the connection step by step",
            super::wait::first_contact_advice(&u, &settings)
        ),
        e => e.into(),
    })?;
    if args.json {
        let value = serde_json::json!({
            "found": answer.found.iter().map(super::show::anime_json).collect::<Vec<_>>(),
            "not_found": answer.not_found,
            "malformed": answer.malformed,
        });
        out!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for anime in &answer.found {
            out!(
                "{} {} [{}] {} relations",
                anime.id,
                anime.title.display().unwrap_or("(untitled)"),
                anime.format.as_deref().unwrap_or("?"),
                anime.relations.len()
            );
            for edge in &anime.relations {
                out!(
                    "  {:<12} -> {} {} ({})",
                    edge.relation.as_str(),
                    edge.node.id,
                    edge.node.title.display().unwrap_or("(untitled)"),
                    edge.node.kind.as_str()
                );
            }
        }
        for id in &answer.not_found {
            out!("{id} not found on AniList");
        }
        for (id, reason) in &answer.malformed {
            out!("{id}: {reason}");
        }
    }
    Ok(
        if answer.not_found.is_empty() && answer.malformed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_PARTIAL)
        },
    )
}
