//! Every recorded AniList response parses field by field into the records and typed errors it holds.

use std::path::PathBuf;
use std::time::Duration;

use crate::anime::{AnimeId, MediaKind, RelationType};
use std::sync::Arc;

use crate::upstream::budget::RateHeaders;
use crate::upstream::{RateBudget, UpstreamError, parse_media, parse_media_relations, parse_page};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anilist")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

fn media_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("media-") && n.ends_with(".json"))
        .collect();
    files.sort();
    files.into_iter().map(|n| (n.clone(), read(&n))).collect()
}

#[test]
fn every_recorded_media_parses_into_the_records_and_typed_edges_it_holds() {
    let fixtures = media_fixtures();
    assert!(fixtures.len() >= 30, "expected the recorded responses");
    for (name, body) in fixtures {
        let anime = parse_media(200, None, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        // An independent reading of the same JSON, to compare field by field.
        let raw: Value = serde_json::from_slice(&body).unwrap();
        let media = &raw["data"]["Media"];
        assert_eq!(i64::from(anime.id), media["id"].as_i64().unwrap(), "{name}");
        assert_eq!(anime.format.as_deref(), media["format"].as_str(), "{name}");
        assert_eq!(anime.status.as_deref(), media["status"].as_str(), "{name}");
        assert_eq!(
            anime.title.romaji.as_deref(),
            media["title"]["romaji"].as_str(),
            "{name}"
        );
        assert_eq!(
            anime.title.english.as_deref(),
            media["title"]["english"].as_str(),
            "{name}"
        );
        assert_eq!(
            anime.episodes.map(i64::from),
            media["episodes"].as_i64(),
            "{name}"
        );
        assert_eq!(
            anime.season_year.map(i64::from),
            media["seasonYear"].as_i64(),
            "{name}"
        );
        let edges = media["relations"]["edges"].as_array().unwrap();
        assert_eq!(anime.relations.len(), edges.len(), "{name}");
        for (edge, raw_edge) in anime.relations.iter().zip(edges) {
            assert_eq!(
                edge.relation.as_str(),
                raw_edge["relationType"].as_str().unwrap()
            );
            assert_eq!(
                i64::from(edge.node.id),
                raw_edge["node"]["id"].as_i64().unwrap()
            );
            assert_eq!(
                edge.node.kind.as_str(),
                raw_edge["node"]["type"].as_str().unwrap()
            );
            assert_eq!(edge.edge_id, raw_edge["id"].as_i64());
            assert!(!matches!(edge.relation, RelationType::Unknown(_)), "{name}");
        }
    }
}

#[test]
fn nekomonogatari_has_its_sequel_prequel_and_novel_source() {
    let anime = parse_media(200, None, &read("media-15689--sources_15689.json")).unwrap();
    assert_eq!(anime.id, AnimeId::new(15689).unwrap());
    assert_eq!(anime.title.english.as_deref(), Some("Nekomonogatari Black"));
    assert_eq!(anime.start_date.year, Some(2012));
    assert_eq!(anime.season.as_deref(), Some("FALL"));
    let by_target: Vec<(u32, &str, &str, Option<&str>)> = anime
        .relations
        .iter()
        .map(|e| {
            (
                e.node.id.get(),
                e.relation.as_str(),
                e.node.kind.as_str(),
                e.node.format.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        by_target,
        vec![
            (5081, "SEQUEL", "ANIME", Some("TV")),
            (21400, "PREQUEL", "ANIME", Some("MOVIE")),
            (143704, "SOURCE", "MANGA", Some("NOVEL")),
        ]
    );
}

#[test]
fn zero_edges_and_fifty_three_edges_with_manga_nodes() {
    let none = parse_media(
        200,
        None,
        &read("media-10003--related_anime_no_adaption_no_relations.json"),
    )
    .unwrap();
    assert!(none.relations.is_empty());

    let wide = parse_media(200, None, &read("media-118123--status_releasing.json")).unwrap();
    assert_eq!(wide.relations.len(), 53);
    let manga = wide
        .relations
        .iter()
        .filter(|e| e.node.kind == MediaKind::Manga)
        .count();
    assert_eq!(manga, 5);
    let character = wide
        .relations
        .iter()
        .filter(|e| e.relation == RelationType::Character)
        .count();
    assert_eq!(character, 50);
}

#[test]
fn version_one_relation_types_report_the_manga_source_as_adaptation() {
    let edges = parse_media_relations(
        200,
        None,
        &read("pyanilist-relations-16498-v1-relation-types.json"),
    )
    .unwrap();
    assert_eq!(edges.len(), 11);
    let manga: Vec<_> = edges
        .iter()
        .filter(|e| e.node.kind == MediaKind::Manga)
        .collect();
    assert_eq!(manga.len(), 1);
    assert_eq!(manga[0].node.id.get(), 53390);
    // Version 1 calls the manga this anime came from an ADAPTATION; version 2 says SOURCE.
    assert_eq!(manga[0].relation, RelationType::Adaptation);
}

/// A recorded response file: status, headers and body as the pyanilist cassettes had them.
fn recorded(name: &str) -> (u16, RateHeaders, Vec<u8>) {
    let raw: Value = serde_json::from_slice(&read(name)).unwrap();
    let status = raw["status"]["code"].as_u64().unwrap() as u16;
    let headers = raw["headers"].as_object().unwrap().clone();
    let rate = RateHeaders::read(|name| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v[0].as_str())
    });
    (
        status,
        rate,
        raw["body"].as_str().unwrap().as_bytes().to_vec(),
    )
}

#[test]
fn the_real_404_is_not_found_and_permanent() {
    let (status, headers, body) = recorded("anilist_404.json");
    assert_eq!(status, 404);
    assert_eq!(headers.limit, Some(90));
    assert_eq!(headers.remaining, Some(88));
    let err = parse_media(status, headers.retry_after, &body).unwrap_err();
    assert!(
        matches!(&err, UpstreamError::NotFound { message } if message == "Not Found."),
        "{err:?}"
    );
    assert!(err.is_permanent());
}

#[test]
fn the_real_429_is_rate_limited_for_its_retry_after() {
    let (status, headers, body) = recorded("anilist_429.json");
    assert_eq!(
        headers.limit, None,
        "a real 429 carries no X-RateLimit headers"
    );
    assert_eq!(headers.retry_after, Some(Duration::from_secs(60)));
    let err = parse_page(status, headers.retry_after, &body).unwrap_err();
    assert_eq!(
        err,
        UpstreamError::RateLimited {
            retry_after: Duration::from_secs(60)
        }
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn the_real_rate_limit_sequence_reads_as_a_countdown_then_a_park() {
    let raw: Value = serde_json::from_slice(&read("rate-limit-sequence.json")).unwrap();
    let calls = raw.as_array().unwrap();
    assert_eq!(calls.len(), 29);
    let budget = RateBudget::in_memory(
        crate::config::Settings::default().budget(),
        Arc::new(crate::clock::SystemClock),
    );
    let mut remaining_seen = Vec::new();
    for call in calls {
        let headers = RateHeaders::read(|name| {
            call["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v[0].as_str())
        });
        let status = call["status"].as_u64().unwrap() as u16;
        if status == 200 {
            assert_eq!(headers.limit, Some(90));
            remaining_seen.push(headers.remaining.unwrap());
            budget.observe(&headers).await.unwrap();
        } else {
            assert_eq!(status, 429);
            let body =
                br#"{"data": null,"errors": [{"message": "Too Many Requests.","status": 429}]}"#;
            let err = parse_page(status, headers.retry_after, body).unwrap_err();
            let UpstreamError::RateLimited { retry_after } = err else {
                panic!("expected a rate limit, got {err:?}");
            };
            let pause = budget.on_rate_limited(retry_after).await.unwrap();
            assert_eq!(pause, Duration::from_secs(61), "Retry-After + 1 s");
        }
    }
    assert_eq!(remaining_seen.first(), Some(&87));
    assert_eq!(remaining_seen.last(), Some(&60));
    assert!(remaining_seen.windows(2).all(|w| w[1] == w[0] - 1));
    let state = budget.state().await.unwrap();
    // Headers saying 90 never raise the 30/min budget.
    assert_eq!(state.limit_per_window, 30);
    assert_eq!(state.rate_limited_seen, 1);
    assert!(state.parked_for_ms.unwrap() > 60_000);
    assert_eq!(state.pace_per_minute, 0.0);
}

#[test]
fn errors_arriving_with_http_200_are_typed_by_their_status() {
    let cases: Vec<(u16, &str, &str)> = vec![
        (
            200,
            r#"{"data":null,"errors":[{"message":"Max query complexity","status":400}]}"#,
            "query_rejected",
        ),
        (
            400,
            r#"{"data":null,"errors":[{"message":"Validation","status":400}]}"#,
            "query_rejected",
        ),
        (
            403,
            r#"{"data":null,"errors":[{"message":"The API is temporarily disabled.","status":403}]}"#,
            "upstream_disabled",
        ),
        (
            200,
            r#"{"data":null,"errors":[{"message":"Too Many Requests.","status":429}]}"#,
            "rate_limited",
        ),
        (
            500,
            r#"{"data":null,"errors":[{"message":"Internal","status":500}]}"#,
            "transient",
        ),
        (502, "<html>Bad Gateway</html>", "transient"),
        (
            200,
            r#"{"data":{"Page":{"media":[{"id":1,"title""#,
            "malformed_response",
        ),
        // What answers in AniList's place (a captive portal, a wrong URL) is not AniList, and
        // never "no such media".
        (200, "not json at all", "not_anilist"),
        (
            200,
            "<!DOCTYPE html><html><body>Log in to Wi-Fi</body></html>",
            "not_anilist",
        ),
        (
            404,
            "<html><body><h1>404 Not Found</h1></body></html>",
            "not_anilist",
        ),
        (404, "", "not_anilist"),
        (404, "Not Found", "not_anilist"),
        // JSON, but not AniList's (no `errors`): a proxy's or a wrong host's error page.
        (404, r#"{"message":"Not Found"}"#, "not_anilist"),
        (
            407,
            r#"{"error":"proxy authentication required"}"#,
            "not_anilist",
        ),
        (200, r#"{"data":null}"#, "malformed_response"),
        (200, r#"{"data":{"Page":null}}"#, "malformed_response"),
        (
            200,
            r#"{"data":{"Page":{"media":null}}}"#,
            "malformed_response",
        ),
        // Errors beside data with no page in it: the whole request failed.
        (
            200,
            r#"{"data":{"Page":null},"errors":[{"message":"Internal","status":500}]}"#,
            "transient",
        ),
    ];
    for (status, body, kind) in cases {
        let err = parse_page(status, None, body.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), kind, "{status} {body}: {err}");
    }
    let cut = parse_page(200, None, br#"{"data":{"Page":{"media":[{"id":1,"title""#).unwrap_err();
    let UpstreamError::Malformed { excerpt, .. } = cut else {
        panic!()
    };
    assert!(excerpt.starts_with(r#"{"data":{"Page""#));
}

#[test]
fn unknown_enum_values_are_kept_as_raw_text() {
    let body = br#"{"data":{"Page":{"media":[{"id":7,"type":"ANIME","format":"HOLOGRAM","status":"PAUSED",
        "relations":{"edges":[{"id":1,"relationType":"TIME_TRAVEL","node":{"id":8,"type":"GAME","format":"VN"}},null,
        {"id":2,"relationType":"SEQUEL","node":null}]}}]}}}"#;
    let anime = parse_page(200, None, body).unwrap().media;
    assert_eq!(anime.len(), 1);
    assert_eq!(anime[0].format.as_deref(), Some("HOLOGRAM"));
    assert_eq!(anime[0].relations.len(), 1);
    let edge = &anime[0].relations[0];
    assert_eq!(edge.relation, RelationType::Unknown("TIME_TRAVEL".into()));
    assert_eq!(edge.node.kind, MediaKind::Other("GAME".into()));
    assert_eq!(edge.node.format.as_deref(), Some("VN"));
}

#[test]
fn a_walk_of_several_levels_brings_its_nested_nodes_whole_and_each_once() {
    // Anime 1 asked; its sequel 2 comes whole (with its own relations, even none, and twice);
    // manga 3 comes whole too (the caller drops what it does not walk); 4 at the last level
    // and 5 with `relations: null` are only relations' far ends.
    let body = br#"{"data":{"Page":{"media":[{"id":1,"type":"ANIME","title":{"romaji":"One"},
        "relations":{"edges":[
          {"id":10,"relationType":"SEQUEL","node":{"id":2,"type":"ANIME","format":"TV","episodes":12,
             "title":{"romaji":"Two"},"relations":{"edges":[
               {"id":20,"relationType":"PREQUEL","node":{"id":1,"type":"ANIME","title":{"romaji":"One"}}},
               {"id":21,"relationType":"SEQUEL","node":{"id":4,"type":"ANIME","title":{"romaji":"Four"}}}]}}},
          {"id":11,"relationType":"SOURCE","node":{"id":3,"type":"MANGA","relations":{"edges":[]}}},
          {"id":12,"relationType":"SIDE_STORY","node":{"id":5,"type":"ANIME","relations":null}},
          {"id":13,"relationType":"ALTERNATIVE","node":{"id":2,"type":"ANIME","relations":{"edges":[]}}}
        ]}}]}}}"#;
    let page = parse_page(200, None, body).unwrap();
    assert_eq!(page.media.len(), 1);
    assert_eq!(
        page.media[0].relations.len(),
        4,
        "every edge of the asked anime"
    );
    let walked: Vec<(i64, MediaKind, usize)> = page
        .walked
        .iter()
        .map(|a| (i64::from(a.id.get()), a.kind.clone(), a.relations.len()))
        .collect();
    assert_eq!(
        walked,
        vec![(2, MediaKind::Anime, 2), (3, MediaKind::Manga, 0)],
        "the first whole copy of 2, then 3; not 4 nor 5"
    );
    assert_eq!(page.walked[0].episodes, Some(12));
    assert_eq!(page.walked[0].title.romaji.as_deref(), Some("Two"));
}

/// A page record as the batch query asks for it: whole, with relations.
fn record(id: i64, relations: &str) -> String {
    format!(
        r#"{{"id":{id},"type":"ANIME","format":"TV","title":{{"romaji":"A{id}"}},"relations":{relations}}}"#
    )
}

fn page_of(records: &[String]) -> String {
    format!(
        r#"{{"data":{{"Page":{{"media":[{}]}}}}}}"#,
        records.join(",")
    )
}

#[test]
fn a_record_that_breaks_the_shape_fails_alone_and_the_rest_stand() {
    let edge = |id: i64, node: &str| {
        format!(r#"{{"edges":[{{"id":{id},"relationType":"SEQUEL","node":{node}}}]}}"#)
    };
    let good = record(
        1,
        &edge(10, r#"{"id":2,"type":"ANIME","title":{"romaji":"B"}}"#),
    );
    let to_minus_five = record(3, &edge(11, r#"{"id":-5,"type":"ANIME"}"#));
    let number_title = r#"{"id":4,"type":"ANIME","title":42,"relations":{"edges":[]}}"#.to_string();
    let relations_null = record(5, "null");
    // A far end whose own fields break the shape is still a relation, known by id and kind.
    let odd_far_end = record(6, &edge(12, r#"{"id":7,"type":"ANIME","title":42}"#));
    let body = page_of(&[
        good,
        to_minus_five,
        number_title,
        relations_null,
        odd_far_end,
    ]);
    let page = parse_page(200, None, body.as_bytes()).unwrap();
    let ids: Vec<i64> = page.media.iter().map(|a| i64::from(a.id)).collect();
    assert_eq!(ids, vec![1, 6]);
    let rejected: Vec<i64> = page.rejected.iter().map(|(id, _)| i64::from(*id)).collect();
    assert_eq!(rejected, vec![3, 4, 5]);
    assert!(
        page.rejected[2].1.contains("relations: null"),
        "{:?}",
        page.rejected
    );
    assert!(
        page.rejected[1].1.contains("invalid type"),
        "{:?}",
        page.rejected
    );
    assert_eq!(page.unsettled, None);
    let far = &page.media[1].relations[0].node;
    assert_eq!((i64::from(far.id), far.kind.as_str()), (7, "ANIME"));
}

#[test]
fn a_record_without_a_readable_id_leaves_the_missing_ids_unsettled() {
    let body = page_of(&[record(1, r#"{"edges":[]}"#), r#"{"id":-5}"#.to_string()]);
    let page = parse_page(200, None, body.as_bytes()).unwrap();
    assert_eq!(page.media.len(), 1);
    assert!(page.rejected.is_empty());
    assert!(page.unsettled.is_some());
}

#[test]
fn a_partial_error_keeps_what_came_and_unsettles_the_rest() {
    let body = format!(
        r#"{{"errors":[{{"message":"Internal Server Error","status":500,"path":["Page","media",1]}}],"data":{{"Page":{{"media":[{},null]}}}}}}"#,
        record(1, r#"{"edges":[]}"#)
    );
    let page = parse_page(200, None, body.as_bytes()).unwrap();
    assert_eq!(page.media.len(), 1);
    let why = page.unsettled.unwrap();
    assert!(why.contains("Internal Server Error"), "{why}");
    // Every record failed: still a verdict on these ids, not a failing AniList.
    let body = r#"{"errors":[{"message":"Internal Server Error","status":500,"path":["Page","media",0]}],"data":{"Page":{"media":[null]}}}"#;
    let page = parse_page(200, None, body.as_bytes()).unwrap();
    assert!(page.media.is_empty() && page.unsettled.is_some());
}

#[test]
fn a_nested_record_broken_below_is_a_far_end_not_a_failure() {
    // A walk of two levels: 1's sequel 2 comes whole, but 2's own edge points at id -5.
    let nested = r#"{"id":2,"type":"ANIME","title":{"romaji":"B"},"relations":{"edges":[{"id":9,"relationType":"SEQUEL","node":{"id":-5,"type":"ANIME"}}]}}"#;
    let body = page_of(&[record(
        1,
        &format!(r#"{{"edges":[{{"id":10,"relationType":"SEQUEL","node":{nested}}}]}}"#),
    )]);
    let page = parse_page(200, None, body.as_bytes()).unwrap();
    assert_eq!(page.media.len(), 1);
    assert_eq!(i64::from(page.media[0].relations[0].node.id), 2);
    assert!(page.walked.is_empty(), "2 is asked for by itself");
}
