//! The local HTTP API over real HTTP on a random loopback port, against the fake AniList:
//! every endpoint with its errors, the event stream of an import, the token rules, and a
//! click while an import runs.

mod common;

use std::time::Duration;

use common::api::{SseEvent, read, read_events, spawn_app, spawn_app_with};
use common::process::{franchise, run, text};
use common::run::{aid, fake};
use fake_anilist::{Faults, Latency, RateModel, World};
use franchise::{ApiServer, Importer, Settings};
use serde_json::{Value, json};

fn quick() -> Latency {
    Latency::new(Duration::from_millis(5), Duration::ZERO)
}

#[tokio::test]
async fn imports_are_started_listed_shown_cancelled_and_retried_with_errors_that_name_the_value() {
    let world = World::single_franchise(40, 3);
    let root = world.franchises()[0].root;
    // Slow answers: the import is still running when it is cancelled.
    let slow = Latency::new(Duration::from_millis(300), Duration::ZERO);
    let app = spawn_app(
        fake(world, RateModel::disabled(), slow, Faults::default()).await,
        None,
    )
    .await;

    let (status, body) = app
        .post("/api/imports", Some(json!({ "root": root, "depth": 50 })))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["import_id"].as_i64().unwrap();

    let (status, list) = app.get("/api/imports?state=running").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["import_id"], id, "{list}");
    assert_eq!(list[0]["state"], "running");

    let (status, one) = app.get(&format!("/api/imports/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["root"], root);
    assert!(one["failed_items"].as_array().unwrap().is_empty());
    assert!(one.get("eta_secs").is_some(), "{one}");

    let (status, cancelled) = app.post(&format!("/api/imports/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["cancelled"].as_u64().unwrap() > 0, "{cancelled}");

    let (status, again) = app.post(&format!("/api/imports/{id}/cancel"), None).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"], "conflict");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already finished"),
        "{again}"
    );

    let (status, retried) = app.post(&format!("/api/imports/{id}/retry"), None).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["state"], "running");
    let finished = app.wait_finished(id, Duration::from_secs(60)).await;
    assert_eq!(finished["state"], "done", "{finished}");
    assert_eq!(finished["done"], 40);

    let (status, nothing) = app.post(&format!("/api/imports/{id}/retry"), None).await;
    assert_eq!(status, 409, "{nothing}");

    // Bad ids, unknown ids, bad bodies and queries: a 4xx that names the value.
    let cases: [(&str, &str, Option<&'static str>, u16, &str); 14] = [
        ("GET", "/api/imports/abc", None, 400, "\"abc\""),
        ("GET", "/api/imports/0", None, 400, "\"0\""),
        ("GET", "/api/imports/999", None, 404, "999"),
        ("POST", "/api/imports/999/cancel", None, 404, "999"),
        ("POST", "/api/imports/x/retry", None, 400, "\"x\""),
        ("GET", "/api/imports?state=runing", None, 400, "runing"),
        ("GET", "/api/imports?limit=0", None, 400, "limit"),
        ("GET", "/api/imports?colour=red", None, 400, "colour"),
        ("POST", "/api/imports", Some("{\"root\": 0}"), 400, "\"0\""),
        (
            "POST",
            "/api/imports",
            Some("{\"root\": \"abc\"}"),
            400,
            "abc",
        ),
        ("POST", "/api/imports", Some("{\"depth\": 1}"), 400, "root"),
        (
            "POST",
            "/api/imports",
            Some("{\"root\": 1, \"depth\": -1}"),
            400,
            "depth",
        ),
        ("POST", "/api/imports", Some("not json"), 400, "not JSON"),
        ("POST", "/api/imports", Some("[]"), 400, "an array"),
    ];
    for (method, path, body, want, named) in cases {
        let (status, answer) = match (method, body) {
            ("GET", _) => app.get(path).await,
            (_, Some(body)) => app.post_raw(path, body).await,
            _ => app.post(path, None).await,
        };
        assert_eq!(status, want, "{method} {path} {body:?}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{method} {path}: {message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn anime_franchise_and_status_read_what_the_cli_reads() {
    let world = World::single_franchise(12, 5);
    let root = world.franchises()[0].root;
    let app = spawn_app(
        fake(world, RateModel::disabled(), quick(), Faults::default()).await,
        None,
    )
    .await;

    // A click: fetched in the interactive lane, with its relations.
    let (status, opened) = app.post(&format!("/api/anime/{root}/open"), None).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["id"], root);
    assert!(!opened["relations"].as_array().unwrap().is_empty());
    let (status, stored) = app.get(&format!("/api/anime/{root}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["relations"], opened["relations"]);

    let (status, body) = app
        .post("/api/imports", Some(json!({ "root": root })))
        .await;
    assert_eq!(status, 202);
    let id = body["import_id"].as_i64().unwrap();
    app.wait_finished(id, Duration::from_secs(30)).await;

    // The franchise is exactly what `franchise show --json` prints for the same data dir.
    let (status, members) = app.get(&format!("/api/franchise/{root}")).await;
    assert_eq!(status, 200);
    assert_eq!(members["anime"].as_array().unwrap().len(), 12);
    let shown = run(
        franchise(app.dir.path(), &app.fake.url()),
        &["show", &root.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(members, shown);
    // And in watch order, the same as `show --json --order watch`.
    let (status, watch) = app.get(&format!("/api/franchise/{root}?order=watch")).await;
    assert_eq!(status, 200, "{watch}");
    assert_eq!(watch["order"], "watch");
    let shown = run(
        franchise(app.dir.path(), &app.fake.url()),
        &["show", &root.to_string(), "--json", "--order", "watch"],
        Duration::from_secs(30),
    )
    .await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(watch, shown);
    assert_eq!(watch["anime"].as_array().map(Vec::len), Some(12));

    // The status is `status --json`'s shape, with this server among the workers.
    let (status, s) = app.get("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(s["imports"][0]["import_id"], id);
    assert!(s["queue"]["interactive"].is_object(), "{s}");
    assert_eq!(s["budget"]["limit_per_window"], 30);
    assert_eq!(s["workers"][0]["role"], "server");
    assert_eq!(s["workers"][0]["api_url"], app.url.as_str());
    assert_eq!(s["cache"]["enabled"], true);
    let (status, running) = app.get("/api/status?state=running").await;
    assert_eq!(status, 200);
    assert!(running["imports"].as_array().unwrap().is_empty());

    let missing = 999_999;
    for (method, path, want) in [
        ("POST", format!("/api/anime/{missing}/open"), 404),
        ("GET", format!("/api/anime/{missing}"), 404),
        ("GET", format!("/api/franchise/{missing}"), 404),
        ("GET", "/api/anime/-3".to_string(), 400),
        ("POST", "/api/anime/2147483648/open".to_string(), 400),
        ("POST", "/api/anime/7/open?timeout_secs=0".to_string(), 400),
        ("GET", "/api/franchise/one".to_string(), 400),
        ("GET", format!("/api/franchise/{root}?order=airing"), 400),
        ("GET", format!("/api/franchise/{root}?sort=watch"), 400),
        ("GET", "/api/nothing".to_string(), 404),
        ("DELETE", "/api/status".to_string(), 405),
        ("PUT", "/api/imports/1".to_string(), 405),
    ] {
        let request = app
            .http
            .request(method.parse().unwrap(), app.at(&path))
            .send()
            .await
            .unwrap();
        let (status, body) = read(request).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(body["error"].is_string() && body["message"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn failed_items_are_listed_with_their_reasons() {
    let world = World::single_franchise(5, 9);
    let root = world.franchises()[0].root;
    // Every request is rejected as invalid: a permanent failure, never retried.
    let faults = Faults {
        reject: 1.0,
        ..Faults::default()
    };
    let app = spawn_app(
        fake(world, RateModel::disabled(), quick(), faults).await,
        None,
    )
    .await;
    let (_, body) = app
        .post("/api/imports", Some(json!({ "root": root })))
        .await;
    let id = body["import_id"].as_i64().unwrap();
    let finished = app.wait_finished(id, Duration::from_secs(30)).await;
    assert_eq!(finished["state"], "done_with_failures", "{finished}");
    let failed = finished["failed_items"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{finished}");
    assert_eq!(failed[0]["anime_id"], root);
    assert!(!failed[0]["reason"].as_str().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_event_stream_of_an_import_is_ordered_and_ends_in_finished() {
    let world = World::single_franchise(60, 11);
    let root = world.franchises()[0].root;
    let latency = Latency::new(Duration::from_millis(30), Duration::ZERO);
    let app = spawn_app(
        fake(world, RateModel::disabled(), latency, Faults::default()).await,
        None,
    )
    .await;
    let stream = app.http.get(app.at("/api/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (_, body) = app
        .post("/api/imports", Some(json!({ "root": root })))
        .await;
    let id = body["import_id"].as_i64().unwrap();
    let events = read_events(stream, Duration::from_secs(60), |e: &SseEvent| {
        e.kind == "finished" && e.data["import_id"] == id
    })
    .await;
    let progress: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e.kind == "progress" && e.data["import_id"] == id)
        .map(|e| {
            (
                e.data["done"].as_u64().unwrap(),
                e.data["discovered"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(progress.len() >= 2, "{events:#?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "done never goes back: {progress:?}"
    );
    let stored: usize = events
        .iter()
        .filter(|e| e.kind == "stored")
        .map(|e| e.data["anime"].as_array().unwrap().len())
        .sum();
    assert_eq!(stored, 60, "every anime is told stored once");
    let last = events.last().unwrap();
    assert_eq!(last.data["state"], "done");
    assert_eq!(last.data["done"], 60);
    // The `type` inside the data matches the event name.
    assert!(events.iter().all(|e| e.data["type"] == e.kind.as_str()));

    // Only one import's events, on request; a bad filter is a 400.
    let (status, body) = read(
        app.http
            .get(app.at("/api/events?import_id=x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_click_through_the_api_is_answered_while_an_import_runs() {
    let world = World::single_franchise(60, 13);
    let big = world.franchises()[0].root;
    let other = world.franchises()[1].root;
    let latency = Latency::new(Duration::from_millis(250), Duration::ZERO);
    // One level per request, so the 13-level import outlasts the click by seconds.
    let app = spawn_app_with(
        fake(world, RateModel::disabled(), latency, Faults::default()).await,
        |settings| settings.walk_levels(1),
    )
    .await;
    let (_, body) = app.post("/api/imports", Some(json!({ "root": big }))).await;
    let id = body["import_id"].as_i64().unwrap();
    // Wait until the walk is under way (the root stored, more queued).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, p) = app.get(&format!("/api/imports/{id}")).await;
        if p["done"].as_u64().unwrap() >= 1 && p["queued"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, clicked) = app.post(&format!("/api/anime/{other}/open"), None).await;
    assert_eq!(status, 200, "{clicked}");
    assert_eq!(clicked["id"], other);
    // It did not wait for the import: that is still running.
    let (_, p) = app.get(&format!("/api/imports/{id}")).await;
    assert_eq!(
        p["state"], "running",
        "the click waited for the import: {p}"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_a_token_every_request_needs_it_and_without_one_only_loopback_is_served() {
    let token = "s3cret-token-0123456789";
    let world = World::single_franchise(3, 17);
    let app = spawn_app(
        fake(world, RateModel::disabled(), quick(), Faults::default()).await,
        Some(token),
    )
    .await;
    let status_url = app.at("/api/status");

    let missing = app.http.get(&status_url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (_, body) = read(missing).await;
    assert_eq!(body["error"], "unauthorized");

    let wrong = app
        .http
        .get(&status_url)
        .bearer_auth("s3cret-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(&status_url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let cookie = app
        .http
        .get(&status_url)
        .header("cookie", format!("franchise_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), 200);
    let post = app
        .http
        .post(app.at("/api/imports"))
        .json(&json!({ "root": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        401,
        "a POST without the token changes nothing"
    );
    // A browser without the token gets the page that asks for it.
    let page = app
        .http
        .get(app.at("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("token"));
    app.stop().await;

    // No token: anything but loopback is refused at start, naming the address and the fix.
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::builder().data_dir(dir.path()).build().unwrap();
    let importer = Importer::open(settings).await.unwrap();
    let refused = ApiServer::bind(importer.clone(), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("0.0.0.0:0") && refused.contains("serve.token"),
        "{refused}"
    );
    importer.close().await;
}

#[tokio::test]
async fn another_sites_page_and_a_rebound_host_name_are_refused() {
    let world = World::single_franchise(3, 19);
    let app = spawn_app(
        fake(world, RateModel::disabled(), quick(), Faults::default()).await,
        None,
    )
    .await;
    let cross = app
        .http
        .post(app.at("/api/imports"))
        .header("origin", "https://evil.example")
        .json(&json!({ "root": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let (_, imports) = app.get("/api/imports").await;
    assert!(
        imports.as_array().unwrap().is_empty(),
        "nothing was started"
    );
    let rebound = app
        .http
        .get(app.at("/api/status"))
        .header("host", "evil.example:7878")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let same_origin = app
        .http
        .post(app.at("/api/imports"))
        .header("origin", app.url.trim_end_matches('/'))
        .json(&json!({ "root": aid(1) }))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn serve_refuses_a_public_address_without_a_token_and_a_short_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        franchise(dir.path(), "http://127.0.0.1:9/"),
        &["serve", "--listen", "0.0.0.0:0"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("serve.token"));
    let mut short = franchise(dir.path(), "http://127.0.0.1:9/");
    short.env("FRANCHISE_SERVE__TOKEN", "short");
    let out = run(short, &["serve"], Duration::from_secs(30)).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("serve.token"));
}

/// A body past the 64 KiB the API reads is refused as the API's JSON error (413, with the
/// limit named), announced by its length or not (chunked).
#[tokio::test]
async fn an_oversized_body_is_a_json_413_that_names_the_limit() {
    let world = World::single_franchise(3, 4);
    let app = spawn_app(
        fake(world, RateModel::disabled(), quick(), Faults::default()).await,
        None,
    )
    .await;
    let big = format!(r#"{{"root": 1, "pad": "{}"}}"#, "x".repeat(100 * 1024));
    let announced = app
        .http
        .post(format!("{}api/imports", app.url))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let chunks = futures::stream::iter(
        big.into_bytes()
            .chunks(8 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let chunked = app
        .http
        .post(format!("{}api/imports", app.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    for response in [announced, chunked] {
        assert_eq!(response.status(), 413);
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{response:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "payload_too_large", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("65536"),
            "{body}"
        );
    }
}
