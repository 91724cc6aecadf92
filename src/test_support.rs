//! Helpers for the crate's own tests: anime ids and records by hand. Stores to test against
//! are `store::testing`'s.

use crate::anime::{
    Anime, AnimeId, FuzzyDate, MediaKind, RelatedMedia, RelationEdge, RelationType, Title,
};

pub(crate) fn id(raw: i64) -> AnimeId {
    AnimeId::new(raw).unwrap()
}

/// An anime with edges given as (relation, target id, target kind "ANIME"/"MANGA").
pub(crate) fn anime(raw: i64, edges: &[(&str, i64, &str)]) -> Anime {
    Anime {
        id: id(raw),
        id_mal: Some(raw + 100_000),
        kind: MediaKind::Anime,
        title: Title {
            romaji: Some(format!("Anime {raw}")),
            english: None,
            native: None,
        },
        format: Some("TV".into()),
        status: Some("FINISHED".into()),
        episodes: Some(12),
        season: Some("FALL".into()),
        season_year: Some(2012),
        start_date: FuzzyDate {
            year: Some(2012),
            month: Some(10),
            day: None,
        },
        relations: edges
            .iter()
            .enumerate()
            .map(|(i, (rel, target, kind))| RelationEdge {
                edge_id: Some(raw * 1000 + i as i64),
                relation: RelationType::parse(rel),
                node: RelatedMedia {
                    id: id(*target),
                    kind: MediaKind::parse(kind),
                    format: Some(if *kind == "ANIME" { "TV" } else { "MANGA" }.into()),
                    status: Some("FINISHED".into()),
                    title: Title {
                        romaji: Some(format!("Media {target}")),
                        english: None,
                        native: None,
                    },
                },
            })
            .collect(),
    }
}
