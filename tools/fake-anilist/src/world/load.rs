//! Builds a world from recorded real AniList `{"data":{"Media":{…}}}` responses.
//! Edge nodes not recorded themselves become stub entries carrying what the edge showed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Entry, FuzzyDate, Relation, Title, World};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("response #{index} has no data.Media.id")]
    NotMedia { index: usize },
}

impl World {
    /// Loads every `media-*.json` in `dir` (sorted by name, so the result is stable).
    pub fn from_fixture_dir(dir: impl AsRef<Path>) -> Result<World, LoadError> {
        let dir = dir.as_ref();
        let io = |source| LoadError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io)? {
            let path = item.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("media-") && name.ends_with(".json") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut values = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?;
            let value = serde_json::from_str(&text).map_err(|source| LoadError::Json {
                path: path.clone(),
                source,
            })?;
            values.push(value);
        }
        World::from_responses(values)
    }

    /// Later full responses replace earlier ones and stubs; stubs never replace full entries.
    pub fn from_responses(responses: impl IntoIterator<Item = Value>) -> Result<World, LoadError> {
        let mut world = World::default();
        let mut full = std::collections::BTreeSet::new();
        let mut stubs = Vec::new();
        for (index, response) in responses.into_iter().enumerate() {
            let media = &response["data"]["Media"];
            let Some(id) = int(&media["id"]) else {
                return Err(LoadError::NotMedia { index });
            };
            let mut entry = entry_fields(id, media);
            for (n, edge) in edges(media).iter().enumerate() {
                let node = &edge["node"];
                let Some(target) = int(&node["id"]) else {
                    continue;
                };
                // Some recordings omit edge ids; derive a stable one that cannot clash with real ids.
                let edge_id = int(&edge["id"]).unwrap_or(-(id.saturating_mul(1000) + n as i32));
                let relation_type = text(&edge["relationType"]).unwrap_or_else(|| "OTHER".into());
                entry.relations.push(Relation {
                    edge_id,
                    relation_type,
                    target,
                });
                stubs.push(entry_fields(target, node));
            }
            full.insert(id);
            world.insert(entry);
        }
        for stub in stubs {
            if !full.contains(&stub.id) && world.get(stub.id).is_none() {
                world.insert(stub);
            }
        }
        Ok(world)
    }
}

fn edges(media: &Value) -> Vec<Value> {
    match &media["relations"]["edges"] {
        Value::Array(edges) => edges.clone(),
        _ => Vec::new(),
    }
}

fn entry_fields(id: i32, media: &Value) -> Entry {
    let title = &media["title"];
    let date = &media["startDate"];
    Entry {
        id,
        id_mal: int(&media["idMal"]),
        media_type: text(&media["type"]),
        format: text(&media["format"]),
        status: text(&media["status"]),
        episodes: int(&media["episodes"]),
        season: text(&media["season"]),
        season_year: int(&media["seasonYear"]),
        start_date: FuzzyDate {
            year: int(&date["year"]),
            month: int(&date["month"]),
            day: int(&date["day"]),
        },
        title: Title {
            romaji: text(&title["romaji"]),
            english: text(&title["english"]),
            native: text(&title["native"]),
            user_preferred: text(&title["userPreferred"]),
        },
        is_adult: media["isAdult"].as_bool().unwrap_or(false),
        dead: false,
        relations: Vec::new(),
    }
}

fn int(v: &Value) -> Option<i32> {
    v.as_i64().and_then(|n| i32::try_from(n).ok())
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stubs_come_from_edge_nodes_and_unknown_values_survive() {
        let world = World::from_responses([json!({"data":{"Media":{
            "id": 1, "type": "ANIME", "format": "HOLOGRAM", "status": "FINISHED",
            "title": {"romaji": "A"},
            "relations": {"edges": [
                {"id": 9, "relationType": "TIME_TRAVEL",
                 "node": {"id": 2, "type": "MANGA", "format": "MANGA", "title": {"userPreferred": "B"}}}
            ]}
        }}})]);
        let world = match world {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let a = world.get(1).cloned().unwrap_or_default();
        assert_eq!(a.format.as_deref(), Some("HOLOGRAM"));
        assert_eq!(a.relations[0].relation_type, "TIME_TRAVEL");
        let b = world.get(2).cloned().unwrap_or_default();
        assert_eq!(b.media_type.as_deref(), Some("MANGA"));
        assert_eq!(b.title.user_preferred.as_deref(), Some("B"));
        assert_eq!(b.title.romaji, None);
    }

    #[test]
    fn a_response_without_media_is_an_error() {
        let err = World::from_responses([json!({"data": null})]);
        assert!(matches!(err, Err(LoadError::NotMedia { index: 0 })));
    }
}
