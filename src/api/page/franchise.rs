//! The franchise page's picture: the members grouped by how they hang off the root (the main
//! story in sequel order, then side stories, movies, spin-offs, …) and what lies outside.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{anilist_anime, escape, label};
use crate::anime::{AnimeId, RelationType};
use crate::cache::Franchise;
use crate::order::{MemberEdges, Order, aired_text, is_movie, member_edges, story_line};
use crate::store::{AnimeSummary, StoredRelation};

/// Where a member that is not in the main story is listed, in page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Group {
    Parent,
    SideStories,
    Movies,
    /// Sequels and prequels off the main story's line that are not movies.
    Sequels,
    SpinOffs,
    Alternatives,
    Summaries,
    Other,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Self::Parent => "Parent stories",
            Self::SideStories => "Side stories",
            Self::Movies => "Movies",
            Self::Sequels => "Other sequels",
            Self::SpinOffs => "Spin-offs",
            Self::Alternatives => "Alternative versions",
            Self::Summaries => "Summaries and compilations",
            Self::Other => "Other",
        }
    }
}

/// How a member was reached: it is `from`'s `relation` (Season 2 is Season 1's SEQUEL).
/// `None` when only the other side's edge is stored and it has no inverse (PARENT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Via {
    pub relation: Option<RelationType>,
    pub from: AnimeId,
}

#[derive(Debug)]
pub(super) struct Member<'a> {
    pub anime: &'a AnimeSummary,
    pub via: Option<Via>,
}

/// Something a member relates to that is not a member: a manga source, another franchise.
#[derive(Debug)]
pub(super) struct Outside<'a> {
    /// The first stored relation to it (for its id, kind, format and title).
    pub first: &'a StoredRelation,
    /// Every member that relates to it, and how.
    pub from: Vec<(AnimeId, RelationType)>,
}

/// The franchise, arranged for people.
#[derive(Debug)]
pub(super) struct Picture<'a> {
    /// The root and its SEQUEL/PREQUEL chain, first season first.
    pub main: Vec<Member<'a>>,
    /// The other members by group (only groups with members), each in walk order.
    pub groups: Vec<(Group, Vec<Member<'a>>)>,
    pub outside: Vec<Outside<'a>>,
}

/// The root's line through its SEQUEL/PREQUEL edges, first season first (see
/// [`story_line`]). Sequels off that line (a movie after season 3) are filed with the other
/// groups.
fn main_story(
    root: AnimeId,
    edges: &MemberEdges,
    by_id: &HashMap<AnimeId, &AnimeSummary>,
) -> Vec<(AnimeId, Option<Via>)> {
    let line = story_line(root, edges, by_id);
    let mut out = Vec::with_capacity(line.len());
    for (i, id) in line.iter().enumerate() {
        let via = i.checked_sub(1).map(|p| Via {
            relation: Some(RelationType::Sequel),
            from: line[p],
        });
        out.push((*id, via));
    }
    out
}

/// Where a member reached by `relation` from a member in `reacher`'s group goes (`None`
/// for the main story): a sequel stays with what it continues.
fn classify(relation: Option<&RelationType>, movie: bool, reacher: Option<Group>) -> Group {
    match relation {
        Some(RelationType::Sequel | RelationType::Prequel) => {
            reacher.unwrap_or(if movie { Group::Movies } else { Group::Sequels })
        }
        Some(RelationType::Summary | RelationType::Compilation | RelationType::Contains) => {
            Group::Summaries
        }
        Some(RelationType::Alternative) => Group::Alternatives,
        _ if movie => Group::Movies,
        Some(RelationType::SideStory) => Group::SideStories,
        Some(RelationType::SpinOff) => Group::SpinOffs,
        Some(RelationType::Parent) => Group::Parent,
        _ => Group::Other,
    }
}

/// Arranges a franchise: the main story, then a walk out from it that files each member
/// under the relation that first reached it, then everything outside.
pub(super) fn arrange(f: &Franchise) -> Picture<'_> {
    let by_id: HashMap<AnimeId, &AnimeSummary> = f.anime.iter().map(|a| (a.id, a)).collect();
    let edges = member_edges(f);
    let main_ids = if by_id.contains_key(&f.root) {
        main_story(f.root, &edges, &by_id)
    } else {
        Vec::new()
    };
    let mut group_of: HashMap<AnimeId, Option<Group>> =
        main_ids.iter().map(|(id, _)| (*id, None)).collect();
    let mut queue: VecDeque<AnimeId> = main_ids.iter().map(|(id, _)| *id).collect();
    let mut grouped: BTreeMap<Group, Vec<Member<'_>>> = BTreeMap::new();
    while let Some(u) = queue.pop_front() {
        let reacher = group_of.get(&u).copied().flatten();
        for (v, relation) in edges.get(&u).into_iter().flatten() {
            let Some(anime) = by_id.get(v).copied() else {
                continue;
            };
            if group_of.contains_key(v) {
                continue;
            }
            let group = classify(relation.as_ref(), is_movie(anime), reacher);
            group_of.insert(*v, Some(group));
            grouped.entry(group).or_default().push(Member {
                anime,
                via: Some(Via {
                    relation: relation.clone(),
                    from: u,
                }),
            });
            queue.push_back(*v);
        }
    }
    // Members no stored edge reaches (the walk had them through an edge not stored yet).
    for anime in &f.anime {
        if !group_of.contains_key(&anime.id) {
            grouped
                .entry(Group::Other)
                .or_default()
                .push(Member { anime, via: None });
        }
    }
    let main = main_ids
        .into_iter()
        .filter_map(|(id, via)| {
            Some(Member {
                anime: by_id.get(&id).copied()?,
                via,
            })
        })
        .collect();
    Picture {
        main,
        groups: grouped.into_iter().collect(),
        outside: outside(f, &by_id),
    }
}

fn outside<'a>(f: &'a Franchise, by_id: &HashMap<AnimeId, &AnimeSummary>) -> Vec<Outside<'a>> {
    let mut found: BTreeMap<AnimeId, Outside<'a>> = BTreeMap::new();
    for r in f
        .relations
        .iter()
        .filter(|r| by_id.contains_key(&r.from) && !by_id.contains_key(&r.to))
    {
        let entry = found.entry(r.to).or_insert_with(|| Outside {
            first: r,
            from: Vec::new(),
        });
        let how = RelationType::parse(&r.relation_type);
        if !entry.from.iter().any(|(from, _)| *from == r.from) {
            entry.from.push((r.from, how));
        }
    }
    let mut list: Vec<Outside<'a>> = found.into_values().collect();
    // Sources (manga, novels) first, then other anime; by relation, then id.
    list.sort_by(|a, b| {
        let key = |o: &Outside<'a>| {
            (
                o.first.to_kind == "ANIME",
                o.first.relation_type.clone(),
                o.first.to,
            )
        };
        key(a).cmp(&key(b))
    });
    list
}

/// "side story of", "sequel to": how a member relates to the one it hangs off.
fn relation_phrase(relation: Option<&RelationType>) -> String {
    match relation {
        Some(RelationType::Sequel) => "sequel to".into(),
        Some(RelationType::Prequel) => "prequel to".into(),
        Some(RelationType::Parent) => "parent story of".into(),
        Some(RelationType::SideStory) => "side story of".into(),
        Some(RelationType::Character) => "shares characters with".into(),
        Some(RelationType::Summary) => "summary of".into(),
        Some(RelationType::Alternative) => "alternative version of".into(),
        Some(RelationType::SpinOff) => "spin-off of".into(),
        Some(RelationType::Source) => "source of".into(),
        Some(RelationType::Adaptation) => "adaptation of".into(),
        Some(RelationType::Compilation) => "compilation of".into(),
        Some(RelationType::Contains) => "contained in".into(),
        Some(RelationType::Other) | None => "related to".into(),
        Some(RelationType::Unknown(raw)) => format!("{} of", escape(&label(raw).to_lowercase())),
    }
}

fn title_of(anime: &AnimeSummary) -> String {
    anime
        .title
        .clone()
        .unwrap_or_else(|| format!("anime {}", anime.id))
}

/// The root's title, for the page's `<title>`.
pub(super) fn page_title(f: &Franchise) -> String {
    f.anime
        .iter()
        .find(|a| a.id == f.root)
        .map_or_else(|| format!("anime {}", f.root), title_of)
}

/// The live part of a franchise page, also served alone at `/fragments/franchise/{root}`.
pub(super) fn render(f: &Franchise) -> String {
    let picture = arrange(f);
    let titles: HashMap<AnimeId, String> = f.anime.iter().map(|a| (a.id, title_of(a))).collect();
    let name = |id: AnimeId| {
        titles
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("anime {id}"))
    };
    let mut out = format!(
        "<header class=\"franchise-head\"><h1>{}</h1><p class=\"sub\">{} anime · {} related \
         outside · <a href=\"{}\" rel=\"noreferrer\">#{} on AniList</a> \
         <button data-action=\"import\" data-root=\"{}\">Import again</button></p></header>",
        escape(&page_title(f)),
        f.anime.len(),
        picture.outside.len(),
        anilist_anime(f.root),
        f.root,
        f.root
    );
    out.push_str(&format!(
        "<section class=\"group main-story\"><h2>Main story <span class=\"count\">{}</span>\
         </h2><ol class=\"chain\">",
        picture.main.len()
    ));
    for (step, member) in picture.main.iter().enumerate() {
        out.push_str(&member_card(member, f.root, Some(step + 1), &name));
    }
    out.push_str("</ol></section>");
    out.push_str(&watch_order(f, &name));
    for (group, members) in &picture.groups {
        out.push_str(&format!(
            "<section class=\"group\" data-group=\"{group:?}\"><h2>{} <span class=\"count\">{}\
             </span></h2><ul class=\"cards\">",
            group.title(),
            members.len()
        ));
        for member in members {
            out.push_str(&member_card(member, f.root, None, &name));
        }
        out.push_str("</ul></section>");
    }
    if !picture.outside.is_empty() {
        out.push_str(
            "<section class=\"group outside\"><h2>Outside the franchise <span class=\"count\">",
        );
        out.push_str(&picture.outside.len().to_string());
        out.push_str("</span></h2><ul class=\"outside-list\">");
        for o in &picture.outside {
            out.push_str(&outside_item(o, &name));
        }
        out.push_str("</ul></section>");
    }
    out
}

/// Up to this many members, the watch order shows open; beyond, it is one click away.
const WATCH_ORDER_OPEN: usize = 60;

/// The order to watch in ([`Order::Watch`]): the main story as it aired, the rest indented
/// after what it follows.
fn watch_order(f: &Franchise, name: &dyn Fn(AnimeId) -> String) -> String {
    let by_id: HashMap<AnimeId, &AnimeSummary> = f.anime.iter().map(|a| (a.id, a)).collect();
    let order = f.in_order(Order::Watch);
    let mut out = format!(
        "<details class=\"group watch-order\"{}><summary><h2>Watch order <span \
         class=\"count\">{}</span></h2></summary><ol class=\"watch-order\">",
        if order.len() <= WATCH_ORDER_OPEN {
            " open"
        } else {
            ""
        },
        order.len()
    );
    for entry in &order {
        let Some(anime) = by_id.get(&entry.id) else {
            continue;
        };
        let aired = aired_text(anime).map_or(String::new(), |text| format!(" · {text}"));
        let via = match (entry.follows, &entry.relation) {
            (Some(parent), Some(relation)) => format!(
                " <span class=\"via\">{} of {}</span>",
                escape(&label(relation)),
                escape(&name(parent))
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<li class=\"watch{}\" data-anime-id=\"{}\"><a href=\"{}\" rel=\"noreferrer\">{}</a> \
             <span class=\"meta\">{}{aired}</span>{via}</li>",
            if entry.main { " main" } else { "" },
            entry.id,
            anilist_anime(entry.id),
            escape(&name(entry.id)),
            escape(anime.format.as_deref().unwrap_or("?")),
        ));
    }
    out.push_str("</ol></details>");
    out
}

fn member_card(
    member: &Member<'_>,
    root: AnimeId,
    step: Option<usize>,
    name: &dyn Fn(AnimeId) -> String,
) -> String {
    let a = member.anime;
    let is_root = a.id == root;
    let mut meta = String::new();
    if let Some(format) = &a.format {
        meta.push_str(&format!(
            "<span class=\"badge fmt\">{}</span>",
            escape(&label(format))
        ));
    }
    if let Some(status) = &a.status {
        meta.push_str(&format!(
            "<span class=\"status\">{}</span>",
            escape(&label(status))
        ));
    }
    meta.push_str(&format!("<span class=\"id\">#{}</span>", a.id));
    if is_root {
        meta.push_str("<span class=\"badge root\">root</span>");
    }
    // In the main story the numbers say what follows what.
    let via = match member.via.as_ref().filter(|_| step.is_none()) {
        Some(via) => format!(
            "<div class=\"via\">{} <i>{}</i></div>",
            relation_phrase(via.relation.as_ref()),
            escape(&name(via.from))
        ),
        None => String::new(),
    };
    let step = step.map_or(String::new(), |n| {
        format!("<span class=\"step\">{n}</span>")
    });
    format!(
        "<li class=\"member{}\" data-anime-id=\"{}\">{step}<a class=\"title\" href=\"{}\" \
         rel=\"noreferrer\">{}</a><div class=\"meta\">{meta}</div>{via}</li>",
        if is_root { " is-root" } else { "" },
        a.id,
        anilist_anime(a.id),
        escape(&title_of(a)),
    )
}

fn outside_item(o: &Outside<'_>, name: &dyn Fn(AnimeId) -> String) -> String {
    let r = o.first;
    let kind = if r.to_kind == "ANIME" {
        "anime"
    } else {
        "manga"
    };
    let title = r
        .to_title
        .clone()
        .unwrap_or_else(|| format!("{kind} {}", r.to));
    let what = r
        .to_format
        .as_deref()
        .map_or_else(|| label(&r.to_kind), label);
    let how: Vec<String> = o
        .from
        .iter()
        .take(2)
        .map(|(from, relation)| {
            format!(
                "{} <i>{}</i>",
                relation_phrase(Some(relation)),
                escape(&name(*from))
            )
        })
        .collect();
    let more = match o.from.len() {
        0..=2 => String::new(),
        n => format!(" and {} more", n - 2),
    };
    let here = if r.to_kind == "ANIME" {
        format!(
            " <a class=\"here\" href=\"/franchise/{}\">its franchise</a>",
            r.to
        )
    } else {
        String::new()
    };
    format!(
        "<li data-anime-id=\"{id}\"><a href=\"https://anilist.co/{kind}/{id}\" \
         rel=\"noreferrer\">{title}</a> <span class=\"badge fmt\">{what}</span> \
         <span class=\"id\">#{id}</span> <span class=\"via\">{how}{more}</span>{here}</li>",
        id = r.to,
        title = escape(&title),
        what = escape(&what),
        how = how.join(", "),
    )
}

/// The live part of the page while the root is not stored: an offer to import it.
pub(super) fn not_stored(root: AnimeId) -> String {
    format!(
        "<section class=\"card empty-state\"><h1>Anime {root} is not stored yet</h1>\
         <p>Import its franchise from AniList; this page fills in as its anime arrive.</p>\
         <p><button class=\"primary\" data-action=\"import\" data-root=\"{root}\">Import its \
         franchise</button> <a href=\"{}\" rel=\"noreferrer\">Anime {root} on AniList</a></p>\
         </section>",
        anilist_anime(root)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::id;

    fn anime(raw: i64, title: &str, format: &str) -> AnimeSummary {
        AnimeSummary {
            id: id(raw),
            title: Some(title.to_string()),
            format: Some(format.to_string()),
            status: Some("FINISHED".to_string()),
            season: None,
            season_year: None,
            start_date: crate::anime::FuzzyDate::default(),
        }
    }

    fn rel(from: i64, kind: &str, to: i64, derived: bool) -> StoredRelation {
        StoredRelation {
            from: id(from),
            to: id(to),
            relation_type: kind.to_string(),
            derived,
            to_kind: "ANIME".to_string(),
            to_format: None,
            to_title: None,
        }
    }

    fn outside_rel(from: i64, kind: &str, to: i64, to_kind: &str, title: &str) -> StoredRelation {
        StoredRelation {
            to_kind: to_kind.to_string(),
            to_format: Some(to_kind.to_string()),
            to_title: Some(title.to_string()),
            ..rel(from, kind, to, false)
        }
    }

    /// Root 1; its prequel 10 (only 1's PREQUEL edge is stored); sequels 2, 3; a sequel movie
    /// 12 and a TV sequel 14 forking off 2; side story 4 of 2 (stored from both ends); movie
    /// side story 5 of 1; spin-off 6 of 3 with its own sequel 7; summary 8; alternative 9;
    /// 11 knows only its PARENT edge to 1; 13 is a member no stored edge reaches.
    fn world() -> Franchise {
        let anime = vec![
            anime(1, "Season 1", "TV"),
            anime(2, "Season 2", "TV"),
            anime(3, "Season 3", "TV"),
            anime(4, "Gaiden", "OVA"),
            anime(5, "The Movie", "MOVIE"),
            anime(6, "Spin-off", "TV"),
            anime(7, "Spin-off 2", "TV"),
            anime(8, "Recap", "SPECIAL"),
            anime(9, "Remake", "TV"),
            anime(10, "Zero", "TV"),
            anime(11, "Picture drama", "SPECIAL"),
            anime(12, "Season 2 Movie", "MOVIE"),
            anime(13, "Lost", "ONA"),
            anime(14, "Season 2 Part B", "TV"),
        ];
        let relations = vec![
            rel(1, "SEQUEL", 2, false),
            rel(2, "PREQUEL", 1, true),
            rel(1, "PREQUEL", 10, false),
            rel(3, "PREQUEL", 2, false),
            rel(2, "SEQUEL", 12, false),
            rel(2, "SEQUEL", 14, false),
            rel(2, "SIDE_STORY", 4, false),
            rel(4, "PARENT", 2, false),
            rel(1, "SIDE_STORY", 5, false),
            rel(3, "SPIN_OFF", 6, false),
            rel(6, "SEQUEL", 7, false),
            rel(1, "SUMMARY", 8, false),
            rel(1, "ALTERNATIVE", 9, false),
            rel(11, "PARENT", 1, false),
            outside_rel(1, "SOURCE", 500, "MANGA", "The Manga"),
            outside_rel(2, "SOURCE", 500, "MANGA", "The Manga"),
            outside_rel(3, "CHARACTER", 600, "ANIME", "Crossover"),
        ];
        Franchise {
            root: id(1),
            anime,
            relations,
        }
    }

    fn ids(members: &[Member<'_>]) -> Vec<u32> {
        members.iter().map(|m| m.anime.id.get()).collect()
    }

    #[test]
    fn members_are_grouped_by_the_relation_that_reached_them() {
        let f = world();
        let picture = arrange(&f);
        assert_eq!(ids(&picture.main), [10, 1, 2, 3], "the movie 12 forks off");
        assert!(
            picture.main[0].via.is_none(),
            "the first season follows nothing"
        );
        assert_eq!(
            picture.main[1].via,
            Some(Via {
                relation: Some(RelationType::Sequel),
                from: id(10)
            }),
            "the root is the sequel of its prequel"
        );

        let groups: Vec<(Group, Vec<u32>)> = picture
            .groups
            .iter()
            .map(|(g, members)| (*g, ids(members)))
            .collect();
        assert_eq!(
            groups,
            [
                (Group::SideStories, vec![4]),
                (Group::Movies, vec![5, 12]),
                (Group::Sequels, vec![14]),
                (Group::SpinOffs, vec![6, 7]),
                (Group::Alternatives, vec![9]),
                (Group::Summaries, vec![8]),
                (Group::Other, vec![11, 13]),
            ]
        );
        let spin_off_sequel = &picture.groups[3].1[1];
        assert_eq!(
            spin_off_sequel.via,
            Some(Via {
                relation: Some(RelationType::Sequel),
                from: id(6)
            })
        );
        // 11 is reached only through its own PARENT edge, which has no inverse.
        let other = &picture.groups[6].1;
        assert_eq!(
            other[0].via.as_ref().map(|v| v.relation.clone()),
            Some(None)
        );
        assert!(other[1].via.is_none());

        let outside: Vec<(u32, usize)> = picture
            .outside
            .iter()
            .map(|o| (o.first.to.get(), o.from.len()))
            .collect();
        assert_eq!(outside, [(500, 2), (600, 1)], "sources first, deduplicated");
    }

    #[test]
    fn the_page_reads_as_groups_in_order() {
        let html = render(&world());
        let at = |needle: &str| {
            html.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from {html}"))
        };
        assert!(at("Main story") < at("Side stories"));
        assert!(at("Side stories") < at("Movies"));
        assert!(at("Movies") < at("Spin-offs"));
        assert!(at("Spin-offs") < at("Outside the franchise"));
        assert!(at("data-anime-id=\"10\"") < at("data-anime-id=\"1\""));
        assert!(html.contains("side story of <i>Season 2</i>"));
        assert!(html.contains("source of <i>Season 1</i>, source of <i>Season 2</i>"));
        assert!(html.contains("https://anilist.co/manga/500"));
        assert!(html.contains("href=\"https://anilist.co/anime/4\""));
        assert!(html.contains("<h1>Season 1</h1>"));
        assert!(html.contains("14 anime · 2 related outside"));
    }

    #[test]
    fn a_sequel_cycle_or_a_lone_root_never_loses_a_member() {
        let mut f = world();
        f.relations.push(rel(3, "SEQUEL", 1, false));
        let picture = arrange(&f);
        // Where a cycle leaves the line is arbitrary; that the walk ends and keeps every
        // member is not.
        let main = ids(&picture.main);
        assert!(main.contains(&1) && main.len() >= 3, "{main:?}");
        let total = picture.main.len() + picture.groups.iter().map(|g| g.1.len()).sum::<usize>();
        assert_eq!(total, f.anime.len());

        let lone = Franchise {
            root: id(1),
            anime: vec![anime(1, "Alone", "TV")],
            relations: Vec::new(),
        };
        let picture = arrange(&lone);
        assert_eq!(ids(&picture.main), [1]);
        assert!(picture.groups.is_empty() && picture.outside.is_empty());
    }

    #[test]
    fn hostile_titles_are_escaped_everywhere() {
        let hostile = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
        let mut f = world();
        f.anime[0].title = Some(hostile.to_string());
        f.anime[3].format = Some("<b>OVA</b>".to_string());
        f.relations
            .push(outside_rel(1, "<i>NEW</i>", 700, "MANGA", hostile));
        let html = render(&f);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>OVA"));
        assert!(!html.contains("<i>new"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;&lt;img"));
        // In the heading, in a member's "via", and as the outside entry's title.
        assert!(html.matches("&lt;script&gt;").count() >= 3);
        assert_eq!(
            page_title(&f),
            hostile,
            "the <title> is escaped by the layout"
        );
    }
}
