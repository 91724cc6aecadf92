//! Injected faults, outages and latency over loopback.

mod common;

use std::time::{Duration, Instant};

use common::media_query;
use fake_anilist::{FakeAniList, FakeConfig, FaultKind, Faults, Latency, RateModel, World};

async fn fake_with(faults: Faults, latency: Latency) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world: World::single_franchise(4, 2),
        rate: RateModel::disabled(),
        latency,
        faults,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

fn root(fake: &FakeAniList) -> i32 {
    fake.world().franchises()[0].root
}

#[tokio::test]
async fn status_faults_at_rate_one() {
    let fake = fake_with(
        Faults {
            fail_500: 1.0,
            ..Faults::default()
        },
        Latency::default(),
    )
    .await;
    let r = media_query(&fake.url(), root(&fake)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["errors"][0]["status"], 500);

    let fake = fake_with(
        Faults {
            fail_502: 1.0,
            ..Faults::default()
        },
        Latency::default(),
    )
    .await;
    let r = media_query(&fake.url(), root(&fake)).await;
    assert_eq!(r.status, 502);
    assert!(r.text.contains("502 Bad Gateway"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    let stats = fake.stats();
    assert_eq!((stats.faults, stats.server_errors), (1, 1));
    assert_eq!(stats.log[0].fault, Some(FaultKind::Status502));
}

#[tokio::test]
async fn broken_bodies_at_rate_one() {
    let fake = fake_with(
        Faults {
            truncate: 1.0,
            ..Faults::default()
        },
        Latency::default(),
    )
    .await;
    let r = media_query(&fake.url(), root(&fake)).await;
    assert_eq!(r.status, 200);
    assert!(r.text.starts_with("{\"data\""), "{}", r.text);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());

    let fake = fake_with(
        Faults {
            malformed: 1.0,
            ..Faults::default()
        },
        Latency::default(),
    )
    .await;
    let r = media_query(&fake.url(), root(&fake)).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    assert_eq!(fake.stats().log[0].fault, Some(FaultKind::Malformed));
}

#[tokio::test]
async fn timeout_fault_holds_the_response_past_the_client_timeout() {
    let faults = Faults {
        timeout: 1.0,
        timeout_hold: Duration::from_secs(20),
        ..Faults::default()
    };
    let fake = fake_with(faults, Latency::default()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .post(fake.url())
        .header("Referer", common::REFERER)
        .json(&serde_json::json!({"query": format!("{{ Media(id: {}) {{ id }} }}", root(&fake))}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.stats().log[0].fault, Some(FaultKind::Timeout));
    // A held request must not keep shutdown waiting for the 20 s hold.
    let stopping = Instant::now();
    fake.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn configured_and_runtime_outages_answer_403() {
    let faults = Faults {
        outage_at: Some(Duration::ZERO),
        outage_for: Duration::from_millis(400),
        ..Faults::default()
    };
    let fake = fake_with(faults, Latency::default()).await;
    let r = media_query(&fake.url(), root(&fake)).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text,
        r#"{"errors":[{"message":"The AniList API has been temporarily disabled due to severe stability issues.","status":403,"locations":[{"line":1,"column":1}]}],"data":null}"#
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 200);

    fake.start_outage(Duration::from_millis(300));
    assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 403);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 200);
    assert_eq!(fake.stats().outages, 2);
}

#[tokio::test]
async fn latency_is_roughly_as_configured() {
    let latency = Latency::new(Duration::from_millis(300), Duration::from_millis(100));
    let fake = fake_with(Faults::default(), latency).await;
    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(media_query(&fake.url(), root(&fake)).await.status, 200);
        took.push(t.elapsed());
    }
    for t in &took {
        assert!(
            *t >= Duration::from_millis(195) && *t < Duration::from_millis(900),
            "{took:?}"
        );
    }
}
