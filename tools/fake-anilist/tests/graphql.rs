//! The GraphQL surface over loopback: id_in filtering, relation versions, complexity, 404s.

mod common;

use std::collections::BTreeSet;

use common::{FULL_MEDIA, post, start};
use fake_anilist::WorldSpec;
use serde_json::{Value, json};

fn ids_of(reply: &Value) -> BTreeSet<i64> {
    reply["data"]["Page"]["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn id_in_omits_unknown_dead_and_anonymous_adult_ids() {
    let world = WorldSpec::default()
        .seed(3)
        .franchises(150)
        .dead_rate(0.3)
        .adult_rate(0.3)
        .build();
    let live: Vec<i32> = world
        .entries()
        .filter(|e| !e.dead && !e.is_adult && e.media_type.as_deref() == Some("ANIME"))
        .map(|e| e.id)
        .take(30)
        .collect();
    let dead: Vec<i32> = world
        .entries()
        .filter(|e| e.dead)
        .map(|e| e.id)
        .take(5)
        .collect();
    let adult: Vec<i32> = world
        .entries()
        .filter(|e| e.is_adult)
        .map(|e| e.id)
        .take(5)
        .collect();
    let manga: Vec<i32> = world
        .entries()
        .filter(|e| e.media_type.as_deref() == Some("MANGA"))
        .map(|e| e.id)
        .take(3)
        .collect();
    assert_eq!((dead.len(), adult.len(), manga.len()), (5, 5, 3));
    let unknown: Vec<i32> = (0..7).map(|i| 900_000 + i).collect();
    let all: Vec<i32> = [&live[..], &dead, &adult, &manga, &unknown].concat();
    assert_eq!(all.len(), 50);

    let fake = start(world).await;
    let q = format!(
        "query($ids: [Int]) {{ Page(page: 1, perPage: 50) {{ pageInfo {{ total hasNextPage }} \
         media(id_in: $ids, type: ANIME) {{ {FULL_MEDIA} }} }} }}"
    );
    let anon = post(&fake.url(), &q, json!({"ids": all}), false).await;
    assert_eq!(anon.status, 200, "{}", anon.text);
    let body = anon.json();
    assert_eq!(ids_of(&body), live.iter().map(|&i| i64::from(i)).collect());
    assert_eq!(body["data"]["Page"]["pageInfo"]["total"], json!(30));
    assert!(body.get("errors").is_none());

    let authed = post(&fake.url(), &q, json!({"ids": all}), true)
        .await
        .json();
    let expected: BTreeSet<i64> = live.iter().chain(&adult).map(|&i| i64::from(i)).collect();
    assert_eq!(ids_of(&authed), expected);

    let log = fake.stats().log;
    assert_eq!(log.len(), 2);
    assert!(log[0].anonymous && !log[1].anonymous);
    assert_eq!(log[0].ids, all);
    assert_eq!(fake.stats().ids_per_request, vec![50, 50]);
    // Each answer's size is the body the client received.
    assert_eq!(log[0].bytes, Some(anon.text.len()));
    let total: usize = log.iter().filter_map(|e| e.bytes).sum();
    assert_eq!(fake.stats().bytes_out, total as u64);
    assert!(total > anon.text.len(), "both answers are counted");
}

#[tokio::test]
async fn per_page_is_clamped_to_50_and_pages_work() {
    let world = WorldSpec::default().seed(1).franchises(60).build();
    let ids: Vec<i32> = world.entries().map(|e| e.id).take(120).collect();
    let fake = start(world).await;
    let q = "query($ids: [Int]) { Page(page: 2, perPage: 500) { pageInfo { total perPage currentPage lastPage hasNextPage } media(id_in: $ids) { id } } }";
    let body = post(&fake.url(), q, json!({"ids": ids}), true).await.json();
    let info = &body["data"]["Page"]["pageInfo"];
    assert_eq!(info["perPage"], json!(50));
    assert_eq!(info["currentPage"], json!(2));
    let visible = info["total"].as_i64().unwrap();
    assert!(visible > 100, "{visible}");
    assert_eq!(ids_of(&body).len(), 50);
    assert_eq!(info["hasNextPage"], json!(visible > 100));
}

#[tokio::test]
async fn relation_type_version_1_reports_source_as_adaptation() {
    let world = fake_anilist::World::single_franchise(8, 4);
    let root = world.franchises()[0].root;
    let source = world.franchises()[0].sources[0];
    let fake = start(world).await;
    let q = format!(
        "{{ Media(id: {root}) {{ relations {{ edges {{ v1: relationType v1b: relationType(version: 1) \
         v2: relationType(version: 2) node {{ id type format }} }} }} }} }}"
    );
    let body = post(&fake.url(), &q, Value::Null, false).await.json();
    let edges = body["data"]["Media"]["relations"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let to_source = edges
        .iter()
        .find(|e| e["node"]["id"] == json!(source))
        .unwrap();
    assert_eq!(to_source["v2"], json!("SOURCE"));
    assert_eq!(to_source["v1"], json!("ADAPTATION"));
    assert_eq!(to_source["v1b"], json!("ADAPTATION"));
    assert_eq!(to_source["node"]["type"], json!("MANGA"));
    let sequel = edges.iter().find(|e| e["v2"] == json!("SEQUEL"));
    if let Some(sequel) = sequel {
        assert_eq!(sequel["v1"], json!("SEQUEL"));
    }
}

#[tokio::test]
async fn twenty_aliased_media_roots_exceed_complexity_but_a_full_page_passes() {
    let world = WorldSpec::default().seed(2).franchises(30).build();
    let ids: Vec<i32> = world.entries().map(|e| e.id).take(50).collect();
    let fake = start(world).await;
    let roots: String = ids[..20]
        .iter()
        .enumerate()
        .map(|(i, id)| format!("m{i}: Media(id: {id}) {{ {FULL_MEDIA} }} "))
        .collect();
    let rejected = post(&fake.url(), &format!("{{ {roots} }}"), Value::Null, true).await;
    assert_eq!(rejected.status, 400, "{}", rejected.text);
    let body = rejected.json();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["status"], json!(400));
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Max query complexity should be 500 but got "),
        "{message}"
    );

    let page = format!(
        "query($ids: [Int]) {{ Page(perPage: 50) {{ pageInfo {{ total perPage currentPage lastPage hasNextPage }} \
         media(id_in: $ids, type: ANIME) {{ {FULL_MEDIA} }} }} }}"
    );
    let ok = post(&fake.url(), &page, json!({"ids": ids}), true).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.json()["data"]["Page"]["media"].as_array().unwrap().len() > 40);
}

#[tokio::test]
async fn missing_media_is_a_404_in_anilist_shape() {
    let world = WorldSpec::default()
        .seed(5)
        .franchises(10)
        .dead_rate(0.5)
        .build();
    let dead = world.entries().find(|e| e.dead).map(|e| e.id).unwrap();
    let fake = start(world).await;
    for id in [123_456_789, dead] {
        let reply = common::media_query(&fake.url(), id).await;
        assert_eq!(reply.status, 404);
        let body = reply.json();
        assert_eq!(body["data"], json!({"Media": null}));
        assert_eq!(body["errors"][0]["message"], json!("Not Found."));
        assert_eq!(body["errors"][0]["status"], json!(404));
        assert_eq!(
            body["errors"][0]["locations"],
            json!([{"line": 1, "column": 3}])
        );
    }
}

#[tokio::test]
async fn validation_errors_and_garbage_requests_are_400s() {
    let fake = start(WorldSpec::default().seed(1).franchises(3).build()).await;
    let unknown_field = post(&fake.url(), "{ Media(id: 1) { nope } }", Value::Null, false).await;
    assert_eq!(unknown_field.status, 400);
    assert_eq!(unknown_field.json()["errors"][0]["status"], json!(400));
    let syntax = post(&fake.url(), "{ Media(id: 1) {", Value::Null, false).await;
    assert_eq!(syntax.status, 400);
    let raw = common::client()
        .post(format!("{}graphql", fake.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], json!(400));
}
