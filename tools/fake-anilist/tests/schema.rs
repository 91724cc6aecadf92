//! What `franchise doctor` and a query's shape meet over loopback: introspection behind the
//! gate, fields hidden from it, the complexity cap as AniList counts, deep relations' 500.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{FULL_MEDIA, post, post_with};
use fake_anilist::graphql::{HIDEABLE, webonyx_complexity};
use fake_anilist::{FakeAniList, FakeConfig, RateModel, StartError, World, WorldSpec};
use serde_json::{Value, json};

async fn fake_with(config: FakeConfig) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world: World::single_franchise(6, 3),
        rate: RateModel::disabled(),
        ..config
    })
    .await
    .unwrap()
}

/// The object types of the fake's schema, each field with its argument names.
const SCHEMA_QUERY: &str =
    "{ __schema { queryType { name } types { name kind fields { name args { name } } } } }";

fn fields_by_type(body: &Value) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    body["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "OBJECT" && !t["name"].as_str().unwrap().starts_with("__"))
        .map(|t| {
            let fields = t["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let args = f["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["name"].as_str().unwrap().to_string())
                        .collect();
                    (f["name"].as_str().unwrap().to_string(), args)
                })
                .collect();
            (t["name"].as_str().unwrap().to_string(), fields)
        })
        .collect()
}

/// `Type.field` and `Type.field(arg)` for everything the schema shows.
fn entries(schema: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (ty, fields) in schema {
        for (field, args) in fields {
            out.insert(format!("{ty}.{field}"));
            for arg in args {
                out.insert(format!("{ty}.{field}({arg})"));
            }
        }
    }
    out
}

#[tokio::test]
async fn introspection_is_served_through_the_gate() {
    let fake = fake_with(FakeConfig::default()).await;
    let full = post(&fake.url(), SCHEMA_QUERY, Value::Null, false).await;
    assert_eq!(full.status, 200, "{}", full.text);
    let body = full.json();
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    let schema = fields_by_type(&body);
    assert!(schema["Media"].contains_key("relations"));
    assert!(schema["MediaEdge"]["relationType"].contains("version"));
    assert!(schema["Page"]["media"].contains("id_in"));

    let one = r#"{ __type(name: "MediaEdge") { name fields { name args { name type { name kind } } } } }"#;
    let edge = post(&fake.url(), one, Value::Null, false).await.json();
    let names: Vec<&str> = edge["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "relationType", "node"]);

    // Like any request, introspection needs a Referer.
    assert_eq!(post_with(&fake.url(), one, &[]).await.status, 403);
    assert_eq!(fake.stats().refused_by_gate, 1);
}

#[tokio::test]
async fn every_field_and_argument_can_be_hidden() {
    let fake = fake_with(FakeConfig::default()).await;
    let shown = entries(&fields_by_type(
        &post(&fake.url(), SCHEMA_QUERY, Value::Null, false)
            .await
            .json(),
    ));
    let hideable: BTreeSet<String> = HIDEABLE.iter().map(|s| s.to_string()).collect();
    assert_eq!(shown, hideable);

    let bare = fake_with(FakeConfig {
        hide_schema_fields: HIDEABLE.iter().map(|s| s.to_string()).collect(),
        ..FakeConfig::default()
    })
    .await;
    let left = entries(&fields_by_type(
        &post(&bare.url(), SCHEMA_QUERY, Value::Null, false)
            .await
            .json(),
    ));
    assert!(left.is_empty(), "{left:?}");

    let typo = FakeAniList::start(FakeConfig {
        hide_schema_fields: vec!["Media.relatons".into()],
        ..FakeConfig::default()
    })
    .await;
    assert!(matches!(typo, Err(StartError::Schema(_))));
}

#[tokio::test]
async fn hidden_fields_vanish_from_introspection_only() {
    let fake = fake_with(FakeConfig {
        hide_schema_fields: vec![
            "MediaEdge.relationType".into(),
            "MediaTitle.native".into(),
            "Page.media(id_in)".into(),
        ],
        ..FakeConfig::default()
    })
    .await;
    let schema = fields_by_type(
        &post(&fake.url(), SCHEMA_QUERY, Value::Null, false)
            .await
            .json(),
    );
    assert!(!schema["MediaEdge"].contains_key("relationType"));
    assert!(schema["MediaEdge"].contains_key("node"));
    assert!(!schema["MediaTitle"].contains_key("native"));
    assert!(schema["MediaTitle"].contains_key("romaji"));
    assert!(!schema["Page"]["media"].contains("id_in"));
    assert!(schema["Page"]["media"].contains("type"));

    let one = r#"{ __type(name: "MediaEdge") { fields { name } } }"#;
    let edge = post(&fake.url(), one, Value::Null, false).await.json();
    assert_eq!(
        edge["data"]["__type"]["fields"],
        json!([{"name": "id"}, {"name": "node"}])
    );

    // The query franchise sends still runs in full.
    let ids: Vec<i32> = fake.world().franchises()[0].members.clone();
    let page = format!(
        "query($ids: [Int]) {{ Page(perPage: 50) {{ media(id_in: $ids, type: ANIME) {{ {FULL_MEDIA} }} }} }}"
    );
    let reply = post(&fake.url(), &page, json!({"ids": ids}), false).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let media = &reply.json()["data"]["Page"]["media"][0];
    assert!(media["relations"]["edges"][0]["relationType"].is_string());
    assert!(media["title"].get("native").is_some());

    // Hiding the only field that leads to a type hides the type too (async-graphql shows
    // only reachable types): without Media.relations there is no MediaEdge to look up.
    let cut = fake_with(FakeConfig {
        hide_schema_fields: vec!["Media.relations".into()],
        ..FakeConfig::default()
    })
    .await;
    let schema = fields_by_type(
        &post(&cut.url(), SCHEMA_QUERY, Value::Null, false)
            .await
            .json(),
    );
    assert!(!schema["Media"].contains_key("relations"));
    assert!(!schema.contains_key("MediaEdge") && !schema.contains_key("MediaConnection"));
    let edge = post(&cut.url(), one, Value::Null, false).await.json();
    assert_eq!(edge["data"]["__type"], Value::Null);
    assert_eq!(
        post(&cut.url(), &page, json!({"ids": ids}), false)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn relations_nested_deeper_than_allowed_get_anilists_500() {
    let world = || World::single_franchise(6, 3);
    // An AniList failing every query that nests relations.
    let fake = fake_with(FakeConfig {
        max_relation_hops: 1,
        ..FakeConfig::default()
    })
    .await;
    let root = fake.world().franchises()[0].root;
    let one = "query($ids: [Int]) { Page { media(id_in: $ids) { id relations { edges { node { id } } } } } }";
    let ok = post(&fake.url(), one, json!({"ids": [root]}), false).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let two = format!(
        "{{ Media(id: {root}) {{ id relations {{ edges {{ node {{ ...Deeper }} }} }} }} }} \
         fragment Deeper on Media {{ relations {{ nodes {{ id }} }} }}"
    );
    let deep = post(&fake.url(), &two, Value::Null, false).await;
    assert_eq!(deep.status, 500);
    assert_eq!(
        deep.text,
        r#"{"errors":[{"message":"Internal Server Error","status":500}],"data":{"Media":null}}"#
    );
    let stats = fake.stats();
    assert_eq!(
        (stats.server_errors, stats.by_status.get(&500)),
        (1, Some(&1))
    );

    // A laxer AniList: two hops pass, three do not; skipped fields do not count.
    let lax = FakeAniList::start(FakeConfig {
        world: world(),
        rate: RateModel::disabled(),
        max_relation_hops: 2,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(post(&lax.url(), &two, Value::Null, false).await.status, 200);
    let three = format!(
        "query($more: Boolean = true) {{ Media(id: {root}) {{ relations {{ nodes {{ relations {{ nodes {{ \
         relations @include(if: $more) {{ nodes {{ id }} }} }} }} }} }} }} }}"
    );
    assert_eq!(
        post(&lax.url(), &three, Value::Null, false).await.status,
        500
    );
    assert_eq!(
        post(&lax.url(), &three, json!({"more": false}), false)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn complexity_is_capped_as_anilist_counts_it() {
    let world = WorldSpec::default().seed(2).franchises(30).build();
    let ids: Vec<i32> = world.entries().map(|e| e.id).take(20).collect();
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let roots = |skip: &str| -> String {
        let per_media = FULL_MEDIA.replace("relations {", &format!("relations {skip} {{"));
        let fields: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("m{i}: Media(id: {id}) {{ {per_media} }} "))
            .collect();
        let vars = if skip.is_empty() {
            ""
        } else {
            "($s: Boolean = false)"
        };
        format!("query{vars} {{ {fields} }}")
    };
    let heavy = roots("");
    assert_eq!(webonyx_complexity(&heavy, None), Ok(640));
    let rejected = post(&fake.url(), &heavy, Value::Null, true).await;
    assert_eq!(rejected.status, 400);
    assert_eq!(
        rejected.text,
        r#"{"errors":[{"message":"Max query complexity should be 500 but got 640.","status":400}],"data":null}"#
    );

    // Skipping each `relations` (13 of 32 per root) brings it to 20 × 19 = 380.
    let light = roots("@skip(if: $s)");
    assert_eq!(
        fake_anilist::graphql::webonyx_complexity_with(&light, None, &json!({"s": true})),
        Ok(380)
    );
    let passes = post(&fake.url(), &light, json!({"s": true}), true).await;
    assert_eq!(passes.status, 200, "{}", passes.text);
    let still_heavy = post(&fake.url(), &light, json!({"s": false}), true).await;
    assert_eq!(still_heavy.status, 400);

    // graphql-js's standard introspection query is well under the cap. TypeRef: 7 nested
    // ofType levels cost 3, 6, …, 21, plus kind and name: 23. InputValue: 1+1+(1+23)+1 = 27.
    // FullType: 3 + fields 57 + inputFields 28 + interfaces 24 + enumValues 5 +
    // possibleTypes 24 = 141. __schema: 1 + 3 × 2 + types 142 + directives 32 = 181.
    let introspection = include_str!("introspection.graphql");
    assert_eq!(
        webonyx_complexity(introspection, Some("IntrospectionQuery")),
        Ok(181)
    );
    let schema = common::reply(
        common::client()
            .post(fake.url())
            .json(&json!({"query": introspection, "operationName": "IntrospectionQuery"})),
    )
    .await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    assert!(schema.text.contains("\"MediaEdge\""));
}
