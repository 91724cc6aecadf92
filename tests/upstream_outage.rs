//! AniList on a bad day, surface by surface: `serve` started while AniList cannot be reached,
//! a one-shot `import --wait` against an AniList that refuses everything, and an embedded
//! `Importer` that outlives an outage without `stop()` + `start()`. Each waits out what it
//! should, fails fast where a person waits at a prompt, and loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::api::{read, read_events};
use common::process::{child_log, franchise, run, spawn_serve, start_fake, text};
use common::run::{aid, builder, builder_at, wait_done};
use fake_anilist::{FakeAniList, FakeConfig, Latency, Mode, RateModel, World, WorldSpec};
use franchise::{Error, ImportOptions, Importer, UpstreamState};
use serde_json::{Value, json};

/// A loopback port nothing listens on (taken and let go), for an AniList that is down.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn fake_on(port: u16, world: World) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        port,
        ..FakeConfig::default()
    })
    .await
    .expect("start fake-anilist on the port franchise was told")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_started_while_anilist_is_unreachable_stays_up_and_finishes_once_it_answers() {
    let port = free_port();
    let anilist = format!("http://127.0.0.1:{port}/");
    let world = World::single_franchise(12, 3);
    let root = world.franchises()[0].root;
    let other = world.franchises()[1].root;
    let expected = world.franchises()[0].members.len();
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut server, url) =
        spawn_serve(franchise(data.path(), &anilist), logs.path(), "serve").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let at = |path: &str| format!("{url}{path}");

    // The event stream, open before anything happens.
    let stream = http.get(at("api/events")).send().await.unwrap();
    let down_event = tokio::spawn(read_events(stream, Duration::from_secs(30), |e| {
        e.kind == "upstream_down"
    }));

    // The import is accepted and recorded although AniList is not there.
    let response = http
        .post(at("api/imports"))
        .json(&json!({ "root": root }))
        .send()
        .await
        .unwrap();
    let (code, body) = read(response).await;
    assert!((200..300).contains(&code), "{code} {body}");
    let import_id = body["import_id"].as_i64().unwrap();

    // A click is answered with a 5xx JSON error within seconds, not after a timeout.
    let clicked = Instant::now();
    let response = http
        .post(at(&format!("api/anime/{other}/open")))
        .send()
        .await
        .unwrap();
    let (code, body) = read(response).await;
    let took = clicked.elapsed();
    println!("click while unreachable: HTTP {code} in {took:?}: {body}");
    assert!((500..600).contains(&code), "{code} {body}");
    assert!(body["message"].as_str().is_some(), "{body}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    // The state says so, and failed connects spent nothing from the budget.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (code, status) = read(http.get(at("api/status")).send().await.unwrap()).await;
        assert_eq!(code, 200, "{status}");
        if status["upstream"]["state"] == "unreachable" || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["upstream"]["state"], "unreachable", "{status:#}");
    assert_eq!(status["budget"]["requests_made"], 0, "{status:#}");
    assert!(
        status["upstream"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not connect")),
        "{status:#}"
    );
    // The event stream said so, with the state and the cause.
    let events = down_event.await.unwrap();
    let down = events.last().unwrap();
    assert_eq!(down.data["state"], "unreachable", "{down:?}");
    assert!(
        down.data["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not connect"))
    );
    // The page shows it as a banner; serve is still up.
    let page = http.get(at("")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("AniList cannot be reached"), "{page}");
    assert!(
        server.try_wait().unwrap().is_none(),
        "{}",
        child_log(logs.path(), "serve")
    );

    // AniList comes back: the queued import finishes exactly, by itself.
    let fake = fake_on(port, world).await;
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    let finished = loop {
        let (_, status) = read(http.get(at("api/status")).send().await.unwrap()).await;
        let import = status["imports"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["import_id"] == import_id).cloned())
            .unwrap_or(Value::Null);
        if import["state"] != "running" && !import.is_null() {
            break (import, status);
        }
        assert!(
            Instant::now() < deadline,
            "not finished 60 s after AniList came back: {status:#}\n{}",
            child_log(logs.path(), "serve")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "finished {:.1} s after AniList came back: {}",
        back.elapsed().as_secs_f64(),
        finished.0
    );
    assert_eq!(finished.0["done"], expected as u64, "{:#}", finished.0);
    assert_eq!(finished.0["failed"], 0, "{:#}", finished.0);
    assert_eq!(finished.1["upstream"]["state"], "ok", "{:#}", finished.1);
    assert_eq!(
        finished.1["budget"]["requests_made"].as_u64().unwrap(),
        fake.stats().requests,
        "the budget booked exactly the requests that reached AniList"
    );
    assert!(server.try_wait().unwrap().is_none());
    let _ = server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_wait_against_an_anilist_that_refuses_everything_exits_1_within_15_s() {
    let world = World::single_franchise(5, 1);
    let root = world.franchises()[0].root;
    let fake = start_fake(world, Duration::ZERO).await;
    fake.start_outage(Duration::from_secs(3600));
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run(
        franchise(data.path(), &fake.url()),
        &["import", &root.to_string(), "--wait"],
        Duration::from_secs(60),
    )
    .await;
    let took = started.elapsed();
    let err = text(&out.stderr);
    println!(
        "import --wait against a 403: exit {:?} in {took:?}: {err}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains("The AniList API has been temporarily disabled"),
        "AniList's sentence, word for word: {err}"
    );
    assert!(err.contains("stays recorded"), "{err}");
    // The import is still there, queued for when AniList answers.
    let out = run(
        franchise(data.path(), &fake.url()),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["imports"][0]["state"], "running", "{status:#}");
    assert_eq!(status["imports"][0]["failed"], 0, "{status:#}");
    assert_eq!(status["upstream"]["state"], "refused", "{status:#}");

    // A changed Referer is named as a suspect.
    let out = run(
        franchise(data.path(), &fake.url()),
        &[
            "--anilist-referer",
            "https://my-app.example/",
            "fetch",
            &root.to_string(),
        ],
        Duration::from_secs(60),
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("https://my-app.example/"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_importer_waits_out_an_unreachable_anilist_without_stop_and_start() {
    let port = free_port();
    let world = World::single_franchise(8, 2);
    let root = world.franchises()[0].root;
    let other = world.franchises()[1].root;
    let expected = world.franchises()[0].members.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    // Settings as the tests use them, pointed at the port nothing listens on yet.
    let settings = builder_at(dir.path(), &format!("http://127.0.0.1:{port}/"))
        .outage_pause_secs(2.0, 2.0)
        // Stored anime go stale after a second, so a click later needs AniList.
        .freshness_secs(3_600, 1, 3_600)
        .build()
        .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let mut events = importer.subscribe();
    let import_id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();

    // An offline click answers within seconds and the workers go on running.
    let clicked = Instant::now();
    let err = importer.open_anime(aid(other)).await.unwrap_err();
    println!("offline click: {err} in {:?}", clicked.elapsed());
    assert!(clicked.elapsed() < Duration::from_secs(15));
    assert!(
        matches!(err, Error::FetchFailed { .. } | Error::UpstreamDown(_)),
        "{err:?}"
    );
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(franchise::Event::UpstreamDown { state, .. }) = events.recv().await {
                return state;
            }
        }
    })
    .await
    .expect("an UpstreamDown event");
    assert_eq!(down, UpstreamState::Unreachable);
    assert!(importer.halted().is_none(), "{:?}", importer.halted());
    assert!(importer.is_running().await);
    assert!(importer.upstream().await.unwrap().is_down());

    // AniList answers: the import finishes, and a click works, with no stop() + start().
    let fake = fake_on(port, world).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(franchise::Event::UpstreamUp) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("an UpstreamUp event once AniList answers");
    let progress = wait_done(&importer, import_id, Duration::from_secs(60)).await;
    assert_eq!(
        (progress.done, progress.failed),
        (expected, 0),
        "{progress:?}"
    );
    assert_eq!(importer.upstream().await.unwrap().state, UpstreamState::Ok);
    let anime = importer.open_anime(aid(other)).await.unwrap();
    assert!(anime.stale.is_none());

    // AniList goes away again. Once known down, a click on a stored (stale) anime gets the
    // stored copy at once, marked stale with the reason, instead of an error.
    fake.set_mode(Mode::Offline, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // A direct fetch finds AniList gone; every process now knows.
    let err = importer.fetch(&[aid(other)]).await.unwrap_err();
    println!("fetch while offline: {err}");
    assert!(importer.upstream().await.unwrap().is_down());
    let clicked = Instant::now();
    let stale = importer.open_anime(aid(root)).await.unwrap();
    assert!(
        clicked.elapsed() < Duration::from_secs(5),
        "{:?}",
        clicked.elapsed()
    );
    let why = stale.stale.expect("marked stale");
    assert_eq!(why.state, UpstreamState::Unreachable, "{why:?}");
    assert_eq!(stale.id, aid(root));
    assert!(importer.halted().is_none());
    importer.close().await;
}

/// A fake serving a clean giant franchise of `size` anime over `depth` levels, with a couple
/// of ordinary franchises beside it, answering in `latency_ms`: the fake, the giant and the
/// root of another franchise (for a click).
async fn giant_behind_fake(
    seed: u64,
    size: usize,
    depth: usize,
    latency_ms: u64,
) -> (FakeAniList, fake_anilist::Franchise, i32) {
    let world = WorldSpec::default()
        .seed(seed)
        .franchises(2)
        .giant(size, depth)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().clone();
    let other = world
        .franchises()
        .iter()
        .find(|f| f.root != giant.root)
        .unwrap()
        .root;
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(latency_ms), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    (fake, giant, other)
}

/// One cell of the outage matrix for a started `Importer`: AniList goes bad in `mode` in the
/// middle of an import. The state must read `expected` within 10 s, the pipeline must not halt,
/// a click must be answered within 15 s, and once AniList is back the import finishes exactly.
async fn lost_mid_import(mode: Mode, expected: UpstreamState) -> String {
    let (fake, giant, other) = giant_behind_fake(5, 60, 8, 150).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = builder(dir.path(), &fake)
        .timeout_secs(1.0)
        .outage_pause_secs(0.5, 2.0)
        .build()
        .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let import_id = importer
        .import(aid(giant.root), &ImportOptions::default())
        .await
        .unwrap();
    // Some of the walk lands first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while importer.progress(import_id).await.unwrap().done < 3 {
        assert!(
            Instant::now() < deadline,
            "{mode:?}: the import never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = fake.stats().requests;
    fake.set_mode(mode, None).await.unwrap();
    let lost = Instant::now();
    let seen = loop {
        let upstream = importer.upstream().await.unwrap();
        if upstream.state == expected {
            break lost.elapsed();
        }
        assert!(
            lost.elapsed() < Duration::from_secs(10),
            "{mode:?}: state {upstream:?} 10 s after AniList went bad"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let clicked = Instant::now();
    let click = importer.open_anime(aid(other)).await;
    let click_took = clicked.elapsed();
    assert!(click.is_err(), "{mode:?}: {click:?}");
    assert!(
        click_took < Duration::from_secs(15),
        "{mode:?}: {click_took:?}"
    );
    assert!(
        importer.halted().is_none(),
        "{mode:?}: {:?}",
        importer.halted()
    );
    assert!(importer.is_running().await, "{mode:?}");
    let during = fake.stats().requests - before;
    fake.clear_mode().await.unwrap();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    let progress = loop {
        let p = importer.progress(import_id).await.unwrap();
        if p.is_finished() {
            break p;
        }
        assert!(Instant::now() < deadline, "{mode:?}: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (progress.done, progress.failed),
        (giant.members.len() as u64, 0),
        "{mode:?}: {progress:?}"
    );
    assert_eq!(importer.upstream().await.unwrap().state, UpstreamState::Ok);
    importer.close().await;
    format!(
        "{:<8} state {:<11} after {:>5.1} s, click answered in {:>4.1} s, {:>2} requests while \
         bad, finished {:>4.1} s after AniList was back ({} anime, 0 failed)",
        mode.as_str(),
        expected.as_str(),
        seen.as_secs_f64(),
        click_took.as_secs_f64(),
        during,
        back.elapsed().as_secs_f64(),
        progress.done
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_importer_waits_out_every_bad_day_and_finishes_exactly() {
    let cells = [
        (Mode::Offline, UpstreamState::Unreachable),
        (Mode::Disabled, UpstreamState::Refused),
        (Mode::Html5xx, UpstreamState::Unreachable),
        (Mode::Html404, UpstreamState::NotAnilist),
        (Mode::Bare404, UpstreamState::NotAnilist),
        (Mode::Stall, UpstreamState::Unreachable),
    ];
    for (mode, expected) in cells {
        println!("{}", lost_mid_import(mode, expected).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_referer_gate_an_import_finishes_and_every_request_says_who_sends_it() {
    let world = World::single_franchise(20, 4);
    let root = world.franchises()[0].root;
    let members = world.franchises()[0].members.len() as u64;
    // The gate is on by default, as on the real AniList since September 2026.
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = builder(dir.path(), &fake).build().unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let progress = wait_done(&importer, id, Duration::from_secs(60)).await;
    importer.close().await;
    assert_eq!(
        (progress.done, progress.failed),
        (members, 0),
        "{progress:?}"
    );
    let stats = fake.stats();
    assert_eq!(stats.refused_by_gate, 0);
    assert!(!stats.log.is_empty());
    for entry in &stats.log {
        assert_eq!(
            entry.referer.as_deref(),
            Some("https://crates.io/crates/franchise"),
            "{entry:?}"
        );
        let agent = entry.user_agent.as_deref().unwrap_or_default();
        assert!(
            agent.starts_with(&format!("franchise/{}", env!("CARGO_PKG_VERSION"))),
            "{agent}"
        );
    }
}

async fn doctor(fake_url: &str) -> (Option<i32>, Value, String) {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        franchise(data.path(), fake_url),
        &["doctor", "--json"],
        Duration::from_secs(60),
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is JSON ({e}): {}", text(&out.stderr)));
    (out.status.code(), report, text(&out.stderr))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_is_wrong_and_exits_0_only_when_all_is_well() {
    // All is well: the gate lets the Referer through, and the schema has what the query uses.
    let fake = FakeAniList::start(FakeConfig {
        world: World::single_franchise(3, 1),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let (code, report, err) = doctor(&fake.url()).await;
    println!("healthy: {}", report["verdict"]);
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["healthy"], true);
    for name in [
        "dns",
        "connect",
        "request",
        "gate",
        "rate_limit",
        "answer",
        "schema",
    ] {
        assert_eq!(
            check(&report, name)["verdict"],
            "pass",
            "{name}: {report:#}"
        );
    }
    assert_eq!(check(&report, "tls")["verdict"], "skip", "plain http");
    assert!(
        check(&report, "rate_limit")["detail"]
            .as_str()
            .unwrap()
            .contains("X-RateLimit-Limit 90"),
        "{report:#}"
    );
    assert_eq!(
        fake.stats().requests,
        2,
        "the request and the introspection"
    );
    assert!(fake.stats().log.iter().all(|e| e.referer.is_some()));

    // AniList's schema lost a field the import query uses.
    let fake = FakeAniList::start(FakeConfig {
        world: World::single_franchise(3, 1),
        hide_schema_fields: vec!["MediaEdge.relationType".into()],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let (code, report, _) = doctor(&fake.url()).await;
    println!("schema: {}", report["verdict"]);
    assert_eq!(code, Some(1), "{report:#}");
    let schema = check(&report, "schema");
    assert_eq!(schema["verdict"], "fail", "{report:#}");
    assert!(
        schema["detail"]
            .as_str()
            .unwrap()
            .contains("MediaEdge.relationType"),
        "{report:#}"
    );

    // An outage: the 403 and AniList's sentence, word for word.
    fake.start_outage(Duration::from_secs(600));
    let (code, report, _) = doctor(&fake.url()).await;
    println!("outage: {}", report["verdict"]);
    assert_eq!(code, Some(1));
    let gate = check(&report, "gate");
    assert_eq!(gate["verdict"], "fail");
    assert!(
        gate["detail"]
            .as_str()
            .unwrap()
            .contains("The AniList API has been temporarily disabled"),
        "{report:#}"
    );

    // Nothing listens: the connection is what fails, and nothing was spent.
    let url = format!("http://127.0.0.1:{}/", free_port());
    let (code, report, _) = doctor(&url).await;
    println!("closed port: {}", report["verdict"]);
    assert_eq!(code, Some(1));
    assert_eq!(check(&report, "dns")["verdict"], "pass");
    assert_eq!(check(&report, "connect")["verdict"], "fail", "{report:#}");
    assert!(
        report["verdict"]
            .as_str()
            .unwrap()
            .starts_with("not healthy: connect")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_fail_fast_at_first_contact_with_each_bad_day() {
    let world = World::single_franchise(6, 2);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world, Duration::ZERO).await;
    // (fault, the state it leaves, words the message must carry)
    let cells = [
        (Mode::Offline, "unreachable", "cannot reach AniList"),
        (Mode::Disabled, "refused", "temporarily disabled"),
        (Mode::Html5xx, "unreachable", "AniList keeps failing"),
        (Mode::Html404, "not_anilist", "an HTML page"),
        (Mode::Bare404, "not_anilist", "an empty body"),
        (Mode::Stall, "unreachable", "no answer from AniList"),
    ];
    for (mode, state, words) in cells {
        fake.set_mode(mode, None).await.unwrap();
        for args in [vec!["import", &root, "--wait"], vec!["fetch", &root]] {
            let data = tempfile::tempdir().unwrap();
            let mut cmd = franchise(data.path(), &fake.url());
            cmd.env("FRANCHISE_ANILIST__TIMEOUT_SECS", "2");
            let started = Instant::now();
            let out = run(cmd, &args, Duration::from_secs(60)).await;
            let took = started.elapsed();
            let err = text(&out.stderr);
            println!(
                "{:<8} {:<6} exit {:?} in {:>4.1} s",
                mode.as_str(),
                args[0],
                out.status.code(),
                took.as_secs_f64()
            );
            assert_eq!(out.status.code(), Some(1), "{mode:?} {args:?}: {err}");
            assert!(err.contains(words), "{mode:?} {args:?}: {err}");
            assert!(
                !err.contains("not on AniList"),
                "never a verdict on the id: {err}"
            );
            assert!(
                took < Duration::from_secs(10),
                "{mode:?} {args:?}: {took:?}"
            );
            let out = run(
                franchise(data.path(), &fake.url()),
                &["status", "--json"],
                Duration::from_secs(30),
            )
            .await;
            let status: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(status["upstream"]["state"], state, "{mode:?}: {status:#}");
            if args[0] == "import" {
                assert_eq!(status["imports"][0]["state"], "running", "{status:#}");
                assert_eq!(status["imports"][0]["failed"], 0, "{status:#}");
            }
        }
    }
    fake.clear_mode().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_loses_anilist_in_the_middle_of_a_478_anime_import_and_finishes_it_exactly() {
    let (fake, giant, other) = giant_behind_fake(11, 478, 11, 300).await;
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut server, url) =
        spawn_serve(franchise(data.path(), &fake.url()), logs.path(), "serve").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let at = |path: &str| format!("{url}{path}");
    let status = || async {
        let (code, status) = read(http.get(at("api/status")).send().await.unwrap()).await;
        assert_eq!(code, 200, "{status}");
        status
    };
    let response = http
        .post(at("api/imports"))
        .json(&json!({ "root": giant.root }))
        .send()
        .await
        .unwrap();
    let (code, body) = read(response).await;
    assert!((200..300).contains(&code), "{code} {body}");
    let import_id = body["import_id"].clone();
    let done_of = |status: &Value| {
        status["imports"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["import_id"] == import_id).cloned())
            .unwrap_or(Value::Null)
    };
    // Let part of the walk land.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let import = done_of(&status().await);
        if import["done"].as_u64().unwrap_or(0) >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{import}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.set_mode(Mode::Offline, None).await.unwrap();
    let lost = Instant::now();
    loop {
        let s = status().await;
        if s["upstream"]["state"] == "unreachable" {
            break;
        }
        assert!(lost.elapsed() < Duration::from_secs(10), "{s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = lost.elapsed();
    let clicked = Instant::now();
    let (code, body) = read(
        http.post(at(&format!("api/anime/{other}/open")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let click_took = clicked.elapsed();
    assert!((500..600).contains(&code), "{code} {body}");
    assert!(click_took < Duration::from_secs(15), "{click_took:?}");
    let during = done_of(&status().await);
    assert_eq!(during["failed"], 0, "{during}");
    assert!(
        server.try_wait().unwrap().is_none(),
        "{}",
        child_log(logs.path(), "serve")
    );

    fake.clear_mode().await.unwrap();
    let back = Instant::now();
    let finished = loop {
        let s = status().await;
        let import = done_of(&s);
        if import["state"] != "running" {
            break (import, s);
        }
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "{import}\n{}",
            child_log(logs.path(), "serve")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "478-anime import under serve: AniList lost at {} done; unreachable after {:.1} s; click \
         answered HTTP {code} in {:.2} s; finished {:.1} s after AniList was back: {}",
        during["done"],
        seen.as_secs_f64(),
        click_took.as_secs_f64(),
        back.elapsed().as_secs_f64(),
        finished.0
    );
    assert_eq!(finished.0["state"], "done", "{:#}", finished.0);
    assert_eq!(
        finished.0["done"],
        giant.members.len() as u64,
        "{:#}",
        finished.0
    );
    assert_eq!(finished.0["failed"], 0);
    assert_eq!(finished.1["upstream"]["state"], "ok");
    // Exactly once: the store holds each member once (the franchise view counts them).
    let (code, shown) = read(
        http.get(at(&format!("api/franchise/{}", giant.root)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        shown["anime"].as_array().unwrap().len(),
        giant.members.len(),
        "{}",
        shown["anime"]
    );
    let _ = server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_lives_through_every_bad_day_in_one_import_and_finishes_it_exactly() {
    let (fake, giant, _) = giant_behind_fake(12, 300, 10, 400).await;
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let cli = || {
        let mut cmd = franchise(data.path(), &fake.url());
        cmd.env("FRANCHISE_ANILIST__TIMEOUT_SECS", "1")
            .env("FRANCHISE_ANILIST__RETRY_MIN_DELAY_MS", "20")
            .env("FRANCHISE_ANILIST__RETRY_MAX_DELAY_MS", "100")
            .env("FRANCHISE_ANILIST__OUTAGE_PAUSE_MIN_SECS", "0.3")
            .env("FRANCHISE_ANILIST__OUTAGE_PAUSE_MAX_SECS", "1");
        cmd
    };
    let out = run(
        cli(),
        &["import", &giant.root.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut worker =
        common::process::spawn(cli(), &["work", "--report-every", "0"], logs.path(), "work");
    let status = || async {
        let out = run(cli(), &["status", "--json"], Duration::from_secs(30)).await;
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let cells = [
        (Mode::Offline, "unreachable"),
        (Mode::Disabled, "refused"),
        (Mode::Html5xx, "unreachable"),
        (Mode::Html404, "not_anilist"),
        (Mode::Bare404, "not_anilist"),
        (Mode::Stall, "unreachable"),
    ];
    for (mode, expected) in cells {
        // Some progress between the bad days.
        let before = status().await["imports"][0]["done"].as_u64().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while status().await["imports"][0]["done"].as_u64().unwrap_or(0) == before {
            assert!(
                Instant::now() < deadline,
                "{}",
                child_log(logs.path(), "work")
            );
        }
        fake.set_mode(mode, None).await.unwrap();
        let lost = Instant::now();
        let seen = loop {
            let s = status().await;
            if s["upstream"]["state"] == expected {
                break s;
            }
            assert!(lost.elapsed() < Duration::from_secs(10), "{mode:?}: {s:#}");
        };
        println!(
            "work under {:<8}: {expected} after {:.1} s at {} done, 0 failed",
            mode.as_str(),
            lost.elapsed().as_secs_f64(),
            seen["imports"][0]["done"]
        );
        assert_eq!(seen["imports"][0]["failed"], 0, "{mode:?}: {seen:#}");
        assert!(
            worker.try_wait().unwrap().is_none(),
            "{mode:?}: {}",
            child_log(logs.path(), "work")
        );
        fake.clear_mode().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let s = status().await;
        if s["imports"][0]["state"] != "running" {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["imports"][0]["state"], "done", "{done:#}");
    assert_eq!(done["imports"][0]["done"], giant.members.len() as u64);
    assert_eq!(done["upstream"]["state"], "ok", "{done:#}");
    assert!(worker.try_wait().unwrap().is_none());
    let _ = worker.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_anilist_never_answers_fails_its_items_in_the_end_instead_of_waiting_forever() {
    // 5xx to every request, for good: unlike a refusal or no connection, that may be the
    // batch's own doing, so each try counts against its items and they fail once the count
    // passes its bound, while AniList reads `unreachable` meanwhile.
    let world = World::single_franchise(3, 1);
    let root = world.franchises()[0].root;
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        faults: fake_anilist::Faults {
            fail_500: 1.0,
            ..fake_anilist::Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = builder(dir.path(), &fake)
        .retry_delays_ms(20, 50)
        .outage_pause_secs(0.05, 0.1)
        .max_attempts(1)
        .build()
        .unwrap();
    let importer = Importer::open(settings).await.unwrap();
    importer.start().await.unwrap();
    let id = importer
        .import(aid(root), &ImportOptions::default())
        .await
        .unwrap();
    let p = wait_done(&importer, id, Duration::from_secs(60)).await;
    println!("{p:?} after {} requests", fake.stats().requests);
    assert_eq!((p.done, p.failed), (0, 1), "{p:?}");
    assert!(
        p.failures[0].0.contains("AniList never answers it"),
        "{:?}",
        p.failures
    );
    assert!(importer.halted().is_none());
    importer.close().await;
}

/// A fake whose first answer is a 429 saying `Retry-After: 86400`, for a ban of one second
/// (a broken proxy, or a hostile answer).
async fn lying_429(world: World) -> FakeAniList {
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled().ban_secs(1).announce_secs(86_400),
        ..FakeConfig::default()
    })
    .await
    .expect("start fake-anilist");
    fake.force_rate_limit();
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_retry_after_is_cut_to_the_park_cap() {
    let world = World::single_franchise(8, 91);
    let root = world.franchises()[0].root.to_string();

    // With a cap of 5 s the import waits 5 s, not a day, and finishes.
    let fake = lying_429(world.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut capped = franchise(dir.path(), &fake.url());
    capped.env("FRANCHISE_ANILIST__MAX_PARK_SECS", "5");
    let started = Instant::now();
    let out = run(
        capped,
        &["import", &root, "--wait"],
        Duration::from_secs(40),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("suspicious"),
        "the cut is logged: {}",
        text(&out.stderr)
    );
    assert!(fake.stats().rate_limited >= 1, "the 429 was served");
    eprintln!(
        "finished {:.1} s after the day-long 429",
        started.elapsed().as_secs_f64()
    );

    // With the default cap, the shared park is at most 900 s, and it really is cut to it.
    let fake = lying_429(world).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut importing = common::process::spawn(
        franchise(&data, &fake.url()),
        &["import", &root, "--wait"],
        dir.path(),
        "import",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let parked_for = loop {
        let out = run(
            franchise(&data, &fake.url()),
            &["status", "--json"],
            Duration::from_secs(30),
        )
        .await;
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(ms) = status["budget"]["parked_for_ms"].as_u64() {
            break ms;
        }
        assert!(
            Instant::now() < deadline,
            "never parked: {}\n{}",
            text(&out.stdout),
            child_log(dir.path(), "import")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        (850_000..=900_000).contains(&parked_for),
        "parked for {parked_for} ms"
    );
    let _ = importing.kill().await;
}
