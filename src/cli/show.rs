//! `franchise show`: a stored franchise, as text, JSON of a documented shape, or Graphviz DOT.
//! The anime are the root's franchise over followed types; the relations, every stored
//! relation that starts at one of them.

use std::process::ExitCode;

use clap::Args;
use franchise::anime::{AnimeId, RelationType};
use franchise::config::Settings;
use franchise::store::{AnimeSummary, Store, StoredRelation};
use serde_json::json;

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The root anime id.
    #[arg(value_name = "ID", allow_negative_numbers = true)]
    id: AnimeId,
    /// Print {"root", "anime": [...], "relations": [...]}.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print a Graphviz digraph.
    #[arg(long)]
    dot: bool,
}

pub async fn run(settings: &Settings, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_sqlite(&settings.store_path()).await?;
    let anime = store
        .franchise(args.id, &RelationType::FOLLOWED_BY_DEFAULT)
        .await?;
    if anime.is_empty() {
        anyhow::bail!(
            "anime {} is not in the store; `franchise import {} --wait` fetches its franchise",
            args.id,
            args.id
        );
    }
    let ids: Vec<AnimeId> = anime.iter().map(|a| a.id).collect();
    let relations = store.relations_from(&ids).await?;
    store.close().await;
    if args.json {
        println!("{}", to_json(args.id, &anime, &relations));
    } else if args.dot {
        print!("{}", to_dot(&anime, &relations));
    } else {
        for a in &anime {
            println!(
                "{} {} [{}, {}]",
                a.id,
                a.title.as_deref().unwrap_or("(untitled)"),
                a.format.as_deref().unwrap_or("?"),
                a.status.as_deref().unwrap_or("?")
            );
            for r in relations.iter().filter(|r| r.from == a.id) {
                println!(
                    "    {:<12} -> {}{}",
                    r.relation_type,
                    r.to,
                    if r.derived { " (derived)" } else { "" }
                );
            }
        }
        println!("{} anime, {} relations", anime.len(), relations.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(root: AnimeId, anime: &[AnimeSummary], relations: &[StoredRelation]) -> String {
    json!({
        "root": root,
        "anime": anime.iter().map(|a| json!({
            "id": a.id, "title": a.title, "format": a.format, "status": a.status,
        })).collect::<Vec<_>>(),
        "relations": relations.iter().map(|r| json!({
            "from": r.from, "to": r.to, "type": r.relation_type, "derived": r.derived,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

fn to_dot(anime: &[AnimeSummary], relations: &[StoredRelation]) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from("digraph franchise {\n  rankdir=LR;\n");
    for a in anime {
        out.push_str(&format!(
            "  a{} [label=\"{}\\n{}\"];\n",
            a.id,
            quote(a.title.as_deref().unwrap_or("(untitled)")),
            quote(a.format.as_deref().unwrap_or("?"))
        ));
    }
    for r in relations {
        out.push_str(&format!(
            "  a{} -> a{} [label=\"{}\"{}];\n",
            r.from,
            r.to,
            quote(&r.relation_type),
            if r.derived { ", style=dashed" } else { "" }
        ));
    }
    out.push_str("}\n");
    out
}
