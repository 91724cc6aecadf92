//! `franchise show`: a stored franchise, as text (titles, grouped by relation), JSON of a
//! documented shape, or Graphviz DOT. The anime are the root's franchise over followed types;
//! the relations, every stored relation that starts at one of them.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use clap::Args;
use franchise::{Anime, AnimeId, AnimeSummary, Franchise, Settings, StoredRelation};
use serde_json::json;

use crate::out;

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

pub async fn run(settings: Settings, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.read_only().open().await?;
    let franchise = importer.franchise(args.id).await;
    importer.close().await;
    let Some(franchise) = franchise? else {
        anyhow::bail!(
            "anime {} is not in the store; `franchise import {} --wait` fetches its franchise",
            args.id,
            args.id
        );
    };
    if args.json {
        out!("{}", to_json(&franchise)?);
    } else if args.dot {
        let dot = to_dot(&franchise);
        out!("{}", dot.trim_end());
    } else {
        print_text(&franchise)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(f: &Franchise) -> anyhow::Result<()> {
    let titles: HashMap<AnimeId, &str> = f
        .anime
        .iter()
        .filter_map(|a| Some((a.id, a.title.as_deref()?)))
        .collect();
    for a in &f.anime {
        out!(
            "{} {} [{}, {}]",
            a.id,
            a.title.as_deref().unwrap_or("(untitled)"),
            a.format.as_deref().unwrap_or("?"),
            a.status.as_deref().unwrap_or("?")
        );
        for r in f.relations.iter().filter(|r| r.from == a.id) {
            let title = titles
                .get(&r.to)
                .copied()
                .or(r.to_title.as_deref())
                .unwrap_or("(untitled)");
            let kind = if r.to_kind == "ANIME" {
                String::new()
            } else {
                format!(" [{}]", r.to_kind)
            };
            out!(
                "    {:<12} {} ({}){kind}{}",
                r.relation_type,
                title,
                r.to,
                if r.derived { ", derived" } else { "" }
            );
        }
    }
    out!("{} anime, {} relations", f.anime.len(), f.relations.len());
    Ok(())
}

/// The franchise as `GET /api/franchise/{root}` sends it: the same serde shape.
pub fn to_json(f: &Franchise) -> anyhow::Result<String> {
    Ok(serde_json::to_string(f)?)
}

/// An anime as AniList sent it, with its relations spelled as `show --json` spells them.
pub fn anime_json(a: &Anime) -> serde_json::Value {
    json!({
        "id": a.id,
        "title": a.title.display(),
        "titles": a.title,
        "kind": a.kind.as_str(),
        "format": a.format,
        "status": a.status,
        "episodes": a.episodes,
        "season": a.season,
        "season_year": a.season_year,
        "relations": a.relations.iter().map(|e| json!({
            "from": a.id, "to": e.node.id, "type": e.relation.as_str(), "derived": false,
            "to_kind": e.node.kind.as_str(), "to_title": e.node.title.display(),
        })).collect::<Vec<_>>(),
    })
}

/// One edge per related pair (the observed direction if there is one), the root
/// highlighted, nodes labelled with title and id, anime outside the franchise (manga
/// sources, CHARACTER links) drawn apart, and members clustered by their relation to the root.
pub fn to_dot(f: &Franchise) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let members: HashMap<AnimeId, &AnimeSummary> = f.anime.iter().map(|a| (a.id, a)).collect();
    // A label per node: long franchises keep labels short so the graph stays readable.
    let max_label = if f.anime.len() > 100 { 24 } else { 48 };
    let short = |s: &str| {
        if s.chars().count() > max_label {
            let cut: String = s.chars().take(max_label - 1).collect();
            format!("{cut}…")
        } else {
            s.to_string()
        }
    };
    let mut out = String::from(
        "digraph franchise {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontsize=10];\n  \
         edge [fontsize=8];\n",
    );
    // Cluster members by how the root relates to them (sequels, side stories, …).
    let mut groups: BTreeMap<String, Vec<&AnimeSummary>> = BTreeMap::new();
    for a in &f.anime {
        let group = if a.id == f.root {
            "root".to_string()
        } else {
            f.relations
                .iter()
                .find(|r| r.from == f.root && r.to == a.id)
                .map(|r| r.relation_type.clone())
                .unwrap_or_else(|| "more".to_string())
        };
        groups.entry(group).or_default().push(a);
    }
    for (i, (group, anime)) in groups.iter().enumerate() {
        out.push_str(&format!(
            "  subgraph cluster_{i} {{\n    label=\"{}\";\n    style=dashed;\n",
            quote(group)
        ));
        for a in anime {
            let title = short(a.title.as_deref().unwrap_or("(untitled)"));
            let extra = if a.id == f.root {
                ", style=\"rounded,filled,bold\", fillcolor=gold"
            } else {
                ""
            };
            out.push_str(&format!(
                "    a{} [label=\"{}\\n#{} {}\"{extra}];\n",
                a.id,
                quote(&title),
                a.id,
                quote(a.format.as_deref().unwrap_or("?"))
            ));
        }
        out.push_str("  }\n");
    }
    // Outside the franchise: the far ends of stored edges that are not members.
    let mut outside: BTreeMap<AnimeId, &StoredRelation> = BTreeMap::new();
    for r in &f.relations {
        if !members.contains_key(&r.to) {
            outside.entry(r.to).or_insert(r);
        }
    }
    for (id, r) in &outside {
        out.push_str(&format!(
            "  a{id} [label=\"{}\\n#{id} {}\", style=\"dashed\", color=gray, fontcolor=gray];\n",
            quote(&short(r.to_title.as_deref().unwrap_or("(untitled)"))),
            quote(&r.to_kind)
        ));
    }
    // One edge per pair: the observed row wins; a pair seen both ways keeps the lower id's.
    let mut pairs: BTreeMap<(AnimeId, AnimeId), &StoredRelation> = BTreeMap::new();
    for r in &f.relations {
        let key = if r.from <= r.to {
            (r.from, r.to)
        } else {
            (r.to, r.from)
        };
        match pairs.get(&key) {
            Some(existing) if !existing.derived || r.derived => {}
            _ => {
                pairs.insert(key, r);
            }
        }
    }
    for r in pairs.values() {
        let faint = if members.contains_key(&r.to) {
            ""
        } else {
            ", color=gray, fontcolor=gray"
        };
        out.push_str(&format!(
            "  a{} -> a{} [label=\"{}\"{}{faint}];\n",
            r.from,
            r.to,
            quote(&r.relation_type),
            if r.derived { ", style=dashed" } else { "" }
        ));
    }
    out.push_str("}\n");
    out
}
