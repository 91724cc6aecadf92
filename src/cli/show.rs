//! `franchise show`: a stored franchise, as text (titles, grouped by relation), JSON of a
//! documented shape, or Graphviz DOT. The anime are the root's franchise over followed types;
//! the relations, every stored relation that starts at one of them.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use clap::Args;
use franchise::{
    Anime, AnimeId, AnimeSummary, Franchise, Importer, Order, Settings, StoredRelation, aired_text,
};
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
    /// List the anime by id, by release date, or in the order to watch them: the main story
    /// as it aired, each side story, movie and special after what it follows.
    #[arg(
        long,
        value_name = "ORDER",
        default_value = "id",
        conflicts_with = "dot"
    )]
    order: Order,
}

pub async fn run(settings: Settings, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.read_only().open().await?;
    if args.json && args.order == Order::Id {
        let stored = print_json_streamed(&importer, args.id).await;
        importer.close().await;
        if !stored? {
            not_stored(args.id)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let franchise = importer.franchise(args.id).await;
    importer.close().await;
    let Some(franchise) = franchise? else {
        return not_stored(args.id);
    };
    if args.json {
        // Streamed to stdout as it is serialized: no copy of the whole text in memory.
        use std::io::Write as _;
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer(&mut stdout, &franchise.view(args.order)).map_err(|e| {
            match e.io_error_kind() {
                Some(kind) => anyhow::Error::from(std::io::Error::from(kind)),
                None => e.into(),
            }
        })?;
        writeln!(stdout)?;
        stdout.flush()?;
    } else if args.dot {
        let dot = to_dot(&franchise);
        out!("{}", dot.trim_end());
    } else if args.order == Order::Id {
        print_text(&franchise)?;
    } else {
        print_ordered(&franchise, args.order)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn not_stored(id: AnimeId) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "anime {id} is not in the store; `franchise import {id} --wait` fetches its franchise"
    )
}

/// `--json` in id order, written as the store reads it: a franchise of 100k anime is never
/// held whole. False if the root is not stored (nothing is written then).
async fn print_json_streamed(importer: &Importer, root: AnimeId) -> anyhow::Result<bool> {
    use futures::TryStreamExt as _;
    use std::io::Write as _;
    let Some(mut chunks) = importer.franchise_json(root).await? else {
        return Ok(false);
    };
    let mut stdout = std::io::stdout();
    while let Some(chunk) = chunks.try_next().await? {
        stdout.write_all(&chunk)?;
    }
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(true)
}

fn print_text(f: &Franchise) -> anyhow::Result<()> {
    let titles: HashMap<AnimeId, &str> = f
        .anime
        .iter()
        .filter_map(|a| Some((a.id, a.title.as_deref()?)))
        .collect();
    // Relations grouped by where they start, once: a franchise of 100k anime is not walked
    // once per member.
    let mut from: HashMap<AnimeId, Vec<&StoredRelation>> = HashMap::new();
    for r in &f.relations {
        from.entry(r.from).or_default().push(r);
    }
    for a in &f.anime {
        out!(
            "{} {} [{}, {}]",
            a.id,
            a.title.as_deref().unwrap_or("(untitled)"),
            a.format.as_deref().unwrap_or("?"),
            a.status.as_deref().unwrap_or("?")
        );
        for r in from.get(&a.id).into_iter().flatten() {
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

/// One line per member in `order`: "3. 20958 Attack on Titan Season 2 [TV, 2017-04]"; in
/// watch order what stands off the main story is indented and says what it follows.
fn print_ordered(f: &Franchise, order: Order) -> anyhow::Result<()> {
    let by_id: HashMap<AnimeId, &AnimeSummary> = f.anime.iter().map(|a| (a.id, a)).collect();
    for (i, entry) in f.in_order(order).iter().enumerate() {
        let Some(a) = by_id.get(&entry.id) else {
            continue;
        };
        let aired = aired_text(a).unwrap_or_else(|| "date unknown".to_string());
        let indent = if order == Order::Watch && !entry.main {
            "   "
        } else {
            ""
        };
        let after = match (entry.follows, &entry.relation) {
            (Some(parent), Some(relation)) => format!(
                " — {} of {parent}",
                relation.to_lowercase().replace('_', " ")
            ),
            _ => String::new(),
        };
        out!(
            "{:>3}. {indent}{} {} [{}, {aired}]{after}",
            i + 1,
            a.id,
            a.title.as_deref().unwrap_or("(untitled)"),
            a.format.as_deref().unwrap_or("?"),
        );
    }
    out!("{} anime, in {} order", f.anime.len(), order.as_str());
    Ok(())
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
            "to_kind": e.node.kind.as_str(), "to_format": e.node.format,
            "to_title": e.node.title.display(),
        })).collect::<Vec<_>>(),
    })
}

/// `title` in at most `max` characters. What tells the members of a franchise apart is
/// mostly at the end ("… Season 3 Part 2", "… Movie 2: …"), so a long title keeps its
/// first words and its end, with "…" between.
fn short_label(title: &str, max: usize) -> String {
    let chars: Vec<char> = title.chars().collect();
    if chars.len() <= max || max < 8 {
        return title.to_string();
    }
    let head = max / 3;
    let tail = max - head - 1;
    let head: String = chars[..head].iter().collect();
    let tail: String = chars[chars.len() - tail..].iter().collect();
    format!("{}…{}", head.trim_end(), tail.trim_start())
}

/// One edge per related pair (the observed direction if there is one), the root
/// highlighted, nodes labelled with title and id, anime outside the franchise (manga
/// sources, CHARACTER links) drawn apart, and members clustered by their relation to the root.
pub fn to_dot(f: &Franchise) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let members: HashMap<AnimeId, &AnimeSummary> = f.anime.iter().map(|a| (a.id, a)).collect();
    // A label per node: long franchises keep labels short so the graph stays readable.
    let max_label = if f.anime.len() > 100 { 24 } else { 48 };
    let short = |s: &str| short_label(s, max_label);
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
            // A manga, a novel or a one-shot says which; an anime outside says its format.
            quote(r.to_format.as_deref().unwrap_or(&r.to_kind))
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

#[cfg(test)]
mod tests {
    use super::short_label;

    #[test]
    fn a_short_label_keeps_the_end_that_tells_anime_apart() {
        let titles = [
            "Shingeki no Kyojin: The Final Season - Kanketsu-hen Part 1",
            "Shingeki no Kyojin: The Final Season - Kanketsu-hen Part 2",
            "Shingeki no Kyojin: The Final Season",
        ];
        let labels: Vec<String> = titles.iter().map(|t| short_label(t, 24)).collect();
        for (title, label) in titles.iter().zip(&labels) {
            assert!(label.chars().count() <= 24, "{label}");
            assert!(label.starts_with("Shingeki"), "{label}");
            assert!(label.contains('…'), "{label}");
            assert!(
                title.ends_with(label.rsplit('…').next().unwrap_or("")),
                "{label}"
            );
        }
        assert!(
            labels[0].ends_with("Part 1") && labels[1].ends_with("Part 2"),
            "{labels:?}"
        );
        assert_ne!(labels[0], labels[1]);
        assert_eq!(short_label("Attack on Titan", 24), "Attack on Titan");
    }
}
