//! Records that break AniList's shape on purpose, one id at a time: the answer is rendered as
//! usual, then the poisoned record is spoiled wherever it appears, so a test can show that one
//! bad record fails only itself.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Value, json};

/// How a poisoned record is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poison {
    /// An extra relation to id -5.
    NegativeRelation,
    /// `"title": 42`.
    NumberTitle,
    /// `"relations": null` where relations were asked for.
    RelationsNull,
    /// GraphQL's partial answer: the record is `null` in `Page.media`, with an `errors` entry
    /// whose `path` points at it (a nested copy loses its relations: it is a far end then, and
    /// asked for by itself).
    PartialError,
    /// The whole answer to a request asking for it is `{"data": null}`.
    DataNull,
}

impl FromStr for Poison {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "negative_relation" => Poison::NegativeRelation,
            "number_title" => Poison::NumberTitle,
            "relations_null" => Poison::RelationsNull,
            "partial_error" => Poison::PartialError,
            "data_null" => Poison::DataNull,
            other => {
                return Err(format!(
                    "unknown poison {other:?}; expected negative_relation, number_title, \
                     relations_null, partial_error or data_null"
                ));
            }
        })
    }
}

/// Parses `ID=KIND`, as `--poison` takes it.
pub fn parse_poison(s: &str) -> Result<(i32, Poison), String> {
    let (id, kind) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=KIND, e.g. 16498=number_title"))?;
    let id = id
        .trim()
        .parse::<i32>()
        .map_err(|e| format!("{id:?} is not an anime id: {e}"))?;
    Ok((id, kind.trim().parse()?))
}

/// The rendered answer `body`, with every poisoned record in it spoiled.
pub fn spoil(poison: &BTreeMap<i32, Poison>, body: String) -> String {
    if poison.is_empty() {
        return body;
    }
    let Ok(mut answer) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    let mut errors = Vec::new();
    let Some(media) = answer
        .pointer_mut("/data/Page/media")
        .and_then(Value::as_array_mut)
    else {
        return body;
    };
    for (i, record) in media.iter_mut().enumerate() {
        match id_of(record).and_then(|id| poison.get(&id)) {
            Some(Poison::DataNull) => return json!({ "data": null }).to_string(),
            Some(Poison::PartialError) => {
                *record = Value::Null;
                errors.push(json!({
                    "message": "Internal Server Error",
                    "status": 500,
                    "locations": [{ "line": 1, "column": 1 }],
                    "path": ["Page", "media", i],
                }));
            }
            Some(kind) => spoil_record(record, *kind),
            None => {}
        }
        spoil_nested(record, poison);
    }
    if !errors.is_empty()
        && let Some(fields) = answer.as_object_mut()
    {
        fields.insert("errors".into(), Value::Array(errors));
    }
    answer.to_string()
}

fn id_of(record: &Value) -> Option<i32> {
    record
        .get("id")
        .and_then(Value::as_i64)
        .and_then(|id| i32::try_from(id).ok())
}

fn spoil_record(record: &mut Value, kind: Poison) {
    let Some(fields) = record.as_object_mut() else {
        return;
    };
    match kind {
        Poison::NegativeRelation => {
            if let Some(edges) = fields
                .get_mut("relations")
                .and_then(|r| r.get_mut("edges"))
                .and_then(Value::as_array_mut)
            {
                edges.push(json!({
                    "id": 1,
                    "relationType": "SIDE_STORY",
                    "node": { "id": -5, "type": "ANIME" },
                }));
            }
        }
        Poison::NumberTitle => {
            fields.insert("title".into(), json!(42));
        }
        Poison::RelationsNull => {
            if fields.contains_key("relations") {
                fields.insert("relations".into(), Value::Null);
            }
        }
        Poison::PartialError => {
            fields.remove("relations");
        }
        Poison::DataNull => {}
    }
}

/// Spoils the poisoned records among `record`'s relation nodes, at every depth.
fn spoil_nested(record: &mut Value, poison: &BTreeMap<i32, Poison>) {
    let Some(edges) = record
        .get_mut("relations")
        .and_then(|r| r.get_mut("edges"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for edge in edges {
        let Some(node) = edge.get_mut("node") else {
            continue;
        };
        spoil_nested(node, poison);
        if let Some(kind) = id_of(node).and_then(|id| poison.get(&id)) {
            spoil_record(node, *kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        json!({"data": {"Page": {"media": [
            {"id": 1, "title": {"romaji": "A"}, "relations": {"edges": [
                {"id": 7, "relationType": "SEQUEL", "node":
                    {"id": 2, "title": {"romaji": "B"}, "relations": {"edges": []}}}
            ]}},
            {"id": 2, "title": {"romaji": "B"}, "relations": {"edges": []}}
        ]}}})
        .to_string()
    }

    fn poisoned(kind: Poison) -> Value {
        serde_json::from_str(&spoil(&BTreeMap::from([(2, kind)]), page())).unwrap()
    }

    #[test]
    fn each_kind_spoils_the_record_where_it_appears() {
        let v = poisoned(Poison::NumberTitle);
        assert_eq!(v.pointer("/data/Page/media/1/title"), Some(&json!(42)));
        assert_eq!(
            v.pointer("/data/Page/media/0/relations/edges/0/node/title"),
            Some(&json!(42))
        );
        assert_eq!(
            v.pointer("/data/Page/media/0/title/romaji"),
            Some(&json!("A"))
        );

        let v = poisoned(Poison::NegativeRelation);
        assert_eq!(
            v.pointer("/data/Page/media/1/relations/edges/0/node/id"),
            Some(&json!(-5))
        );

        let v = poisoned(Poison::RelationsNull);
        assert_eq!(
            v.pointer("/data/Page/media/1/relations"),
            Some(&Value::Null)
        );

        let v = poisoned(Poison::PartialError);
        assert_eq!(v.pointer("/data/Page/media/1"), Some(&Value::Null));
        assert_eq!(v.pointer("/errors/0/path/2"), Some(&json!(1)));
        assert_eq!(
            v.pointer("/data/Page/media/0/relations/edges/0/node/relations"),
            None
        );

        assert_eq!(poisoned(Poison::DataNull), json!({"data": null}));
        assert_eq!(spoil(&BTreeMap::new(), page()), page());
    }

    #[test]
    fn the_flag_names_the_id_and_kind() {
        assert_eq!(
            parse_poison("16498=number_title"),
            Ok((16498, Poison::NumberTitle))
        );
        assert!(parse_poison("16498").unwrap_err().contains("ID=KIND"));
        assert!(parse_poison("x=data_null").unwrap_err().contains("\"x\""));
        assert!(
            parse_poison("1=bogus")
                .unwrap_err()
                .contains("relations_null")
        );
    }
}
