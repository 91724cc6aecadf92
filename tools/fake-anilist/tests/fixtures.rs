//! A world loaded from the recorded real AniList responses answers like AniList did.

mod common;

use common::{fixture_dir, post, start};
use fake_anilist::World;
use serde_json::{Value, json};

fn recorded(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn recorded_media_comes_back_with_the_same_relations() {
    let world = World::from_fixture_dir(fixture_dir()).unwrap();
    assert!(world.get(118123).is_some());
    let fake = start(world).await;
    let q = "{ Media(id: 118123) { id type format status title { romaji native userPreferred } \
             relations { edges { id relationType(version: 2) node { id type format status title { userPreferred } } } } } }";
    let reply = post(&fake.url(), q, Value::Null, false).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = reply.json()["data"]["Media"].clone();
    let want = recorded("media-118123--status_releasing.json")["data"]["Media"].clone();
    assert_eq!(got["status"], json!("RELEASING"));
    assert_eq!(got["title"]["romaji"], want["title"]["romaji"]);
    let got_edges = got["relations"]["edges"].as_array().unwrap();
    let want_edges = want["relations"]["edges"].as_array().unwrap();
    assert_eq!(got_edges.len(), 53);
    for (g, w) in got_edges.iter().zip(want_edges) {
        assert_eq!(g["id"], w["id"]);
        assert_eq!(g["relationType"], w["relationType"]);
        for field in ["id", "type", "format", "status"] {
            assert_eq!(g["node"][field], w["node"][field], "{field}");
        }
        assert_eq!(
            g["node"]["title"]["userPreferred"],
            w["node"]["title"]["userPreferred"]
        );
    }
}

#[tokio::test]
async fn recorded_source_edges_read_as_adaptation_in_version_1() {
    let world = World::from_fixture_dir(fixture_dir()).unwrap();
    let (id, target) = world
        .entries()
        .find_map(|e| {
            let r = e.relations.iter().find(|r| r.relation_type == "SOURCE")?;
            Some((e.id, r.target))
        })
        .unwrap();
    assert_eq!(
        world.get(target).unwrap().media_type.as_deref(),
        Some("MANGA")
    );
    let fake = start(world).await;
    let q = format!(
        "{{ Media(id: {id}) {{ relations {{ edges {{ v1: relationType v2: relationType(version: 2) node {{ id }} }} }} }} }}"
    );
    let body = post(&fake.url(), &q, Value::Null, false).await.json();
    let edge = body["data"]["Media"]["relations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == json!(target))
        .unwrap()
        .clone();
    assert_eq!(
        (edge["v1"].as_str(), edge["v2"].as_str()),
        (Some("ADAPTATION"), Some("SOURCE"))
    );
}

#[tokio::test]
async fn stub_nodes_are_served_and_null_enums_stay_null() {
    let world = World::from_fixture_dir(fixture_dir()).unwrap();
    assert!(world.get(135643).unwrap().status.is_none());
    let fake = start(world).await;
    // 119781 appears only as an edge node of 118123.
    let body = post(
        &fake.url(),
        "{ a: Media(id: 119781) { id type format title { romaji userPreferred } } \
                                  b: Media(id: 135643) { id status format } }",
        Value::Null,
        false,
    )
    .await
    .json();
    assert_eq!(body["data"]["a"]["format"], json!("ONA"));
    assert_eq!(body["data"]["a"]["title"]["romaji"], Value::Null);
    assert_eq!(body["data"]["b"]["status"], Value::Null);
}
