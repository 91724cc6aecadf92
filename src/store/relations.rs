//! The relation rows a flush writes, computed once for every backend: each observed edge,
//! and the inverse derived from it, with an observed row always winning over a derived one.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use crate::anime::{Anime, AnimeId, MediaKind};

/// A relation row about to be written.
#[derive(Debug, Clone)]
pub(crate) struct RelationRow<'a> {
    pub anime_id: AnimeId,
    pub related_id: AnimeId,
    pub relation_type: Cow<'a, str>,
    pub derived: bool,
    pub related_kind: &'a str,
    pub related_format: Option<&'a str>,
    pub related_status: Option<&'a str>,
    pub related_title: Option<&'a str>,
    pub edge_id: Option<i64>,
}

/// A number larger than any earlier flush's: the time in ms, bumped if two flushes share one.
pub(crate) fn next_generation(now_ms: i64) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now_ms.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The observed rows of these anime and the inverses derived from them. A derived row whose
/// key is also observed in this batch is dropped: the observed one wins.
pub(crate) fn relation_rows<'a>(
    anime: &[&'a Anime],
) -> (Vec<RelationRow<'a>>, Vec<RelationRow<'a>>) {
    let mut observed: HashMap<(AnimeId, AnimeId), RelationRow<'a>> = HashMap::new();
    let mut derived: HashMap<(AnimeId, AnimeId), RelationRow<'a>> = HashMap::new();
    for a in anime {
        for edge in &a.relations {
            observed.insert(
                (a.id, edge.node.id),
                RelationRow {
                    anime_id: a.id,
                    related_id: edge.node.id,
                    relation_type: Cow::Borrowed(edge.relation.as_str()),
                    derived: false,
                    related_kind: edge.node.kind.as_str(),
                    related_format: edge.node.format.as_deref(),
                    related_status: edge.node.status.as_deref(),
                    related_title: edge.node.title.display(),
                    edge_id: edge.edge_id,
                },
            );
            // Only anime rows are stored, so only an anime end gets an inverse.
            let Some(inverse) = edge.relation.inverse() else {
                continue;
            };
            if edge.node.kind != MediaKind::Anime {
                continue;
            }
            derived.insert(
                (edge.node.id, a.id),
                RelationRow {
                    anime_id: edge.node.id,
                    related_id: a.id,
                    relation_type: Cow::Owned(inverse.as_str().to_string()),
                    derived: true,
                    related_kind: a.kind.as_str(),
                    related_format: a.format.as_deref(),
                    related_status: a.status.as_deref(),
                    related_title: a.title.display(),
                    edge_id: None,
                },
            );
        }
    }
    let observed_keys: HashSet<(AnimeId, AnimeId)> = observed.keys().copied().collect();
    derived.retain(|key, _| !observed_keys.contains(key));
    let mut observed: Vec<_> = observed.into_values().collect();
    let mut derived: Vec<_> = derived.into_values().collect();
    observed.sort_by_key(|r| (r.anime_id, r.related_id));
    derived.sort_by_key(|r| (r.anime_id, r.related_id));
    (observed, derived)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::anime;

    fn keys(rows: &[RelationRow<'_>]) -> Vec<(u32, u32, String)> {
        rows.iter()
            .map(|r| {
                (
                    r.anime_id.get(),
                    r.related_id.get(),
                    r.relation_type.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn each_edge_is_observed_and_its_inverse_derived_to_anime_only() {
        let a = anime(
            1,
            &[
                ("SEQUEL", 2, "ANIME"),
                ("SOURCE", 900, "MANGA"),
                ("PARENT", 3, "ANIME"),
            ],
        );
        let (observed, derived) = relation_rows(&[&a]);
        assert_eq!(
            keys(&observed),
            vec![
                (1, 2, "SEQUEL".into()),
                (1, 3, "PARENT".into()),
                (1, 900, "SOURCE".into())
            ]
        );
        // No inverse for PARENT (ambiguous) or for a manga (not stored as an anime).
        assert_eq!(keys(&derived), vec![(2, 1, "PREQUEL".into())]);
        assert!(derived.iter().all(|r| r.derived) && observed.iter().all(|r| !r.derived));
    }

    #[test]
    fn a_derived_row_never_shadows_an_observed_one_in_the_same_batch() {
        let a = anime(7, &[("SEQUEL", 8, "ANIME")]);
        let b = anime(8, &[("ALTERNATIVE", 7, "ANIME")]);
        let (observed, derived) = relation_rows(&[&a, &b]);
        assert_eq!(
            keys(&observed),
            vec![(7, 8, "SEQUEL".into()), (8, 7, "ALTERNATIVE".into())]
        );
        assert!(derived.is_empty(), "{:?}", keys(&derived));
    }

    #[test]
    fn generations_only_go_up_even_within_one_millisecond() {
        let a = next_generation(5);
        let b = next_generation(5);
        let c = next_generation(1);
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
