//! Property tests: arbitrary bytes and AniList-shaped JSON parse or give a typed error, never a panic.

use crate::upstream::{parse_media, parse_media_relations, parse_page};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map("[a-zA-Z_]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value that is sometimes right for an AniList field and often not.
fn field(right: Value) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(right),
        1 => Just(Value::Null),
        1 => any_json(),
    ]
}

/// AniList-shaped media with any field possibly wrong.
fn media() -> impl Strategy<Value = Value> {
    let edge = (
        field(json!(1)),
        field(json!("SEQUEL")),
        field(json!(42)),
        field(json!("ANIME")),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(id, rel, node_id, kind, raw_id)| {
            json!({
                "id": id,
                "relationType": rel,
                "node": {"id": raw_id.map_or(node_id, Value::from), "type": kind,
                         "format": "TV", "status": null, "title": {"romaji": "x"}}
            })
        });
    (
        field(json!(7)),
        prop::option::of(any::<i64>()),
        field(json!({"romaji": "a", "english": null, "native": "b"})),
        field(json!(12)),
        field(json!({"year": 2012, "month": 10, "day": null})),
        prop::collection::vec(prop_oneof![3 => edge, 1 => any_json()], 0..8),
    )
        .prop_map(|(id, raw_id, title, episodes, date, edges)| {
            json!({
                "id": raw_id.map_or(id, Value::from), "idMal": 1, "type": "ANIME", "format": "TV",
                "status": "FINISHED", "episodes": episodes, "season": "FALL", "seasonYear": 2012,
                "startDate": date, "title": title, "relations": {"edges": edges}
            })
        })
}

fn statuses() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(400),
        Just(403),
        Just(404),
        Just(429),
        Just(500),
        Just(502),
        any::<u16>()
    ]
}

/// The parser's whole contract: parsed, or a typed error; and parsed ids are valid.
fn check(status: u16, body: &[u8]) {
    match parse_page(status, None, body) {
        Ok(page) => {
            assert_eq!(status, 200, "only a 200 parses");
            for a in page.media.into_iter().chain(page.walked) {
                assert!(a.id.get() >= 1);
                for e in a.relations {
                    assert!(e.node.id.get() >= 1);
                }
            }
        }
        Err(e) => {
            // A body that is not JSON is never a verdict on an id (a captive portal's page is
            // not "no such anime"), nor a rate limit the status did not announce.
            if serde_json::from_slice::<serde_json::Value>(body).is_err() {
                assert_ne!(e.kind(), "not_found", "{status}: {e}");
                assert_ne!(e.kind(), "query_rejected", "{status}: {e}");
                if status != 429 {
                    assert_ne!(e.kind(), "rate_limited", "{status}: {e}");
                }
            }
        }
    }
    let _ = parse_media(status, None, body).map_err(|e| e.kind());
    let _ = parse_media_relations(status, None, body).map_err(|e| e.kind());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(status in statuses(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(status, &body);
    }

    #[test]
    fn arbitrary_json_never_panics(status in statuses(), value in any_json()) {
        check(status, value.to_string().as_bytes());
        check(status, json!({"data": value}).to_string().as_bytes());
        check(status, json!({"data": {"Page": value}}).to_string().as_bytes());
        check(status, json!({"data": null, "errors": value}).to_string().as_bytes());
    }

    #[test]
    fn anilist_shaped_json_with_wrong_fields_never_panics(
        status in statuses(),
        media in prop::collection::vec(media(), 0..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let page = json!({"data": {"Page": {"media": media.clone()}}}).to_string();
        check(status, page.as_bytes());
        // The same answer cut off anywhere, as a dropped connection leaves it.
        let at = cut.index(page.len().max(1));
        check(status, &page.as_bytes()[..at]);
        for m in media {
            check(status, json!({"data": {"Media": m}}).to_string().as_bytes());
        }
    }
}
