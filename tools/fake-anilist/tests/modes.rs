//! Bad-day modes over loopback: each mode's answer, set and cleared through the handle and
//! `/admin/mode`, timed modes ending by themselves, a stalled body, and a closed port.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{media_query, post_with};
use fake_anilist::{FakeAniList, FakeConfig, Mode, RateModel, World, shape};
use serde_json::Value;

async fn fake_with(rate: RateModel) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world: World::single_franchise(3, 1),
        rate,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

fn root(fake: &FakeAniList) -> i32 {
    fake.world().franchises()[0].root
}

/// Polls `check` every 20 ms until it holds; panics after `bound` (a generous one).
async fn eventually<F, Fut>(bound: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < bound,
            "{what} did not happen within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn refused(fake: &FakeAniList) -> bool {
    matches!(
        tokio::net::TcpStream::connect(fake.addr()).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test]
async fn each_http_mode_answers_as_announced_until_cleared() {
    let fake = fake_with(RateModel::disabled()).await;
    let url = fake.url();
    type BodyCheck = &'static dyn Fn(&str) -> bool;
    let cases: [(Mode, u16, Option<&str>, BodyCheck); 4] = [
        (Mode::Disabled, 403, Some("application/json"), &|t| {
            t == shape::API_DISABLED
        }),
        (Mode::Html5xx, 520, Some("text/html"), &|t| {
            t.contains("520") && t.contains("Cloudflare")
        }),
        (Mode::Html404, 404, Some("text/html"), &|t| {
            t.contains("<title>404 Not Found</title>")
        }),
        (Mode::Bare404, 404, None, &|t| t.is_empty()),
    ];
    for (mode, status, content_type, body_ok) in cases {
        fake.set_mode(mode, None).await.unwrap();
        assert_eq!(fake.mode(), Some(mode));
        for _ in 0..2 {
            let r = media_query(&url, root(&fake)).await;
            assert_eq!(r.status, status, "{mode}");
            assert_eq!(r.header("content-type").as_deref(), content_type, "{mode}");
            assert!(body_ok(&r.text), "{mode}: {}", r.text);
            assert_eq!(
                serde_json::from_str::<Value>(&r.text).is_ok(),
                mode == Mode::Disabled,
                "{mode}"
            );
        }
    }
    fake.clear_mode().await.unwrap();
    assert_eq!(fake.mode(), None);
    assert_eq!(media_query(&url, root(&fake)).await.status, 200);

    let stats = fake.stats();
    let expected: BTreeMap<Mode, u64> = [
        (Mode::Disabled, 2),
        (Mode::Html5xx, 2),
        (Mode::Html404, 2),
        (Mode::Bare404, 2),
    ]
    .into();
    assert_eq!(stats.by_mode, expected);
    assert_eq!((stats.outages, stats.server_errors), (2, 2));
    assert_eq!(stats.log[0].mode, Some(Mode::Disabled));
    assert_eq!(stats.log[8].mode, None);
}

#[tokio::test]
async fn a_404_comes_before_the_gate_and_modes_spare_the_rate_limit() {
    let rate = RateModel::normal()
        .window(Duration::from_secs(60))
        .burst(1000)
        .real_limit(2);
    let fake = fake_with(rate).await;
    let q = format!("{{ Media(id: {}) {{ id }} }}", root(&fake));
    // A captive portal does not know AniList's rules; Cloudflare's 520 comes after the gate.
    fake.set_mode(Mode::Html404, None).await.unwrap();
    assert_eq!(post_with(&fake.url(), &q, &[]).await.status, 404);
    fake.set_mode(Mode::Html5xx, None).await.unwrap();
    assert_eq!(post_with(&fake.url(), &q, &[]).await.status, 403);
    for _ in 0..5 {
        assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 520);
    }
    fake.clear_mode().await.unwrap();
    for remaining in ["89", "88"] {
        let ok = media_query(&fake.url(), root(&fake)).await;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.header("x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    assert_eq!(fake.stats().rate_limited, 0);
}

#[tokio::test]
async fn a_timed_mode_ends_by_itself() {
    let fake = fake_with(RateModel::disabled()).await;
    fake.set_mode(Mode::Html5xx, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 520);
    eventually(Duration::from_secs(5), "the 520s ending", || async {
        media_query(&fake.url(), root(&fake)).await.status == 200
    })
    .await;
    assert_eq!(fake.mode(), None);
}

#[tokio::test]
async fn stall_sends_headers_then_holds_the_body_until_cleared() {
    let fake = fake_with(RateModel::disabled()).await;
    fake.set_mode(Mode::Stall, None).await.unwrap();
    let body = serde_json::json!({"query": format!("{{ Media(id: {}) {{ id }} }}", root(&fake))});

    // The client's own timeout fires while the body never finishes.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = impatient
        .post(fake.url())
        .header("Referer", "abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let err = resp.text().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A patient client waits until the mode is cleared, then the connection is cut.
    let url = fake.url();
    let held = tokio::spawn(async move {
        let resp = common::client().post(url).json(&body).send().await.unwrap();
        resp.text().await
    });
    eventually(Duration::from_secs(5), "the second stall", || async {
        fake.stats().by_mode.get(&Mode::Stall) == Some(&2)
    })
    .await;
    assert!(!held.is_finished());
    fake.clear_mode().await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert!(cut.is_err(), "{cut:?}");
    assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 200);

    // A stall in flight does not keep shutdown waiting.
    fake.set_mode(Mode::Stall, None).await.unwrap();
    let url = fake.url();
    let _held = tokio::spawn(async move { common::client().post(url).body("{}").send().await });
    eventually(Duration::from_secs(5), "the third stall", || async {
        fake.stats().by_mode.get(&Mode::Stall) == Some(&3)
    })
    .await;
    let stopping = Instant::now();
    fake.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn offline_refuses_connections_then_the_same_port_comes_back() {
    let fake = fake_with(RateModel::disabled()).await;
    let url = fake.url();
    let addr = fake.addr();
    let body = serde_json::json!({"query": format!("{{ Media(id: {}) {{ id }} }}", root(&fake))});
    // One client throughout: its pooled keep-alive connection must not outlive the port.
    let client = common::client();
    let ok = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    ok.text().await.unwrap();

    fake.set_mode(Mode::Offline, None).await.unwrap();
    assert_eq!(fake.mode(), Some(Mode::Offline));
    assert!(refused(&fake).await, "a connect must be refused");
    let err = client.post(&url).json(&body).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err}");

    fake.clear_mode().await.unwrap();
    assert_eq!((fake.url(), fake.addr()), (url.clone(), addr));
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    let back = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 200);

    // A timed one reopens by itself.
    fake.set_mode(Mode::Offline, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(refused(&fake).await);
    eventually(Duration::from_secs(5), "the port reopening", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert_eq!(media_query(&url, root(&fake)).await.status, 200);
    assert_eq!(fake.mode(), None);
    assert!(!fake.stats().by_mode.contains_key(&Mode::Offline));
}

#[tokio::test]
async fn modes_over_http() {
    let fake = fake_with(RateModel::disabled()).await;
    let url = fake.url();
    // A fresh client per admin call: going offline closes the connection it came on.
    let admin = |query: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}admin/mode?{query}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(admin("kind=html_404").await, 204);
    assert_eq!(media_query(&url, root(&fake)).await.status, 404);
    assert_eq!(admin("kind=ok").await, 204);
    assert_eq!(media_query(&url, root(&fake)).await.status, 200);
    assert_eq!(admin("kind=stall&secs=0.2").await, 204);
    assert_eq!(fake.mode(), Some(Mode::Stall));
    assert_eq!(admin("kind=nope").await, 400);
    assert_eq!(admin("kind=disabled&secs=-1").await, 400);
    assert_eq!(
        admin("kind=offline").await,
        400,
        "offline needs secs over HTTP"
    );
    assert_eq!(admin("kind=disabled").await, 204);
    assert_eq!(media_query(&url, root(&fake)).await.status, 403);

    assert_eq!(admin("kind=offline&secs=0.4").await, 204);
    assert!(refused(&fake).await);
    eventually(Duration::from_secs(5), "the port reopening", || async {
        tokio::net::TcpStream::connect(fake.addr()).await.is_ok()
    })
    .await;
    let stats: Value = reqwest::Client::new()
        .get(format!("{url}stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["by_mode"],
        serde_json::json!({"disabled": 1, "html_404": 1})
    );
    assert_eq!(stats["log"][0]["mode"], "html_404");

    let reset = reqwest::Client::new()
        .post(format!("{url}admin/reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert_eq!(fake.mode(), None);
}
