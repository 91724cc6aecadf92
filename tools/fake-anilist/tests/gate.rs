//! AniList's Referer gate over loopback: refused without the header, open with any value,
//! in front of outages and the rate limiter, and every request's headers logged.

mod common;

use std::time::Duration;

use common::{REFERER, USER_AGENT, post_with};
use fake_anilist::{FakeAniList, FakeConfig, RateModel, World, shape};

fn query(fake: &FakeAniList) -> String {
    format!(
        "{{ Media(id: {}) {{ id }} }}",
        fake.world().franchises()[0].root
    )
}

async fn fake_with(rate: RateModel, referer_gate: bool) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world: World::single_franchise(3, 1),
        rate,
        referer_gate,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_gate_is_on_by_default() {
    assert!(FakeConfig::default().referer_gate);
}

#[tokio::test]
async fn no_referer_gets_the_403_and_any_referer_passes() {
    let fake = fake_with(RateModel::disabled(), true).await;
    let url = fake.url();
    let q = query(&fake);

    let bare = post_with(&url, &q, &[]).await;
    assert_eq!(bare.status, 403);
    assert_eq!(
        bare.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        bare.text,
        r#"{"errors":[{"message":"The AniList API has been temporarily disabled due to severe stability issues.","status":403,"locations":[{"line":1,"column":1}]}],"data":null}"#
    );
    assert_eq!(bare.text, shape::API_DISABLED);

    // The User-Agent makes no difference; Origin is not a Referer; an empty one is none.
    let browser = [(
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    )];
    assert_eq!(post_with(&url, &q, &browser).await.status, 403);
    let origin = [("Origin", "https://anilist.co")];
    assert_eq!(post_with(&url, &q, &origin).await.status, 403);
    assert_eq!(post_with(&url, &q, &[("Referer", "")]).await.status, 403);

    // Any value opens it, whatever (or whether) the User-Agent.
    for referer in ["abc", "https://anilist.co/", "https://example.com/"] {
        let ok = post_with(&url, &q, &[("Referer", referer)]).await;
        assert_eq!(ok.status, 200, "{referer}: {}", ok.text);
        assert_eq!(
            ok.json()["data"]["Media"]["id"],
            fake.world().franchises()[0].root
        );
    }

    let stats = fake.stats();
    assert_eq!(stats.refused_by_gate, 4);
    assert_eq!(stats.outages, 0, "gate refusals are not outages");
    assert_eq!(stats.by_status.get(&403), Some(&4));
    assert_eq!(stats.requests, 7);
    let refused: Vec<bool> = stats.log.iter().map(|e| e.refused_by_gate).collect();
    assert_eq!(refused, [true, true, true, true, false, false, false]);
}

#[tokio::test]
async fn every_request_logs_its_referer_and_user_agent() {
    let fake = fake_with(RateModel::disabled(), true).await;
    let q = query(&fake);
    common::post(&fake.url(), &q, serde_json::Value::Null, false).await;
    post_with(&fake.url(), &q, &[("User-Agent", "curl/8.0")]).await;
    let log = fake.stats().log;
    assert_eq!(log[0].referer.as_deref(), Some(REFERER));
    assert_eq!(log[0].user_agent.as_deref(), Some(USER_AGENT));
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[1].referer, None);
    assert_eq!(log[1].user_agent.as_deref(), Some("curl/8.0"));
    assert_eq!(log[1].status, Some(403));
    // What a client's test asserts: every request carried a Referer and named its sender.
    let well_behaved = |e: &fake_anilist::LogEntry| {
        e.referer.is_some()
            && e.user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("fake-anilist"))
    };
    assert!(well_behaved(&log[0]) && !well_behaved(&log[1]));
}

#[tokio::test]
async fn gate_refusals_do_not_count_against_the_rate_limit() {
    // Three real requests a window, behind headers that say 90; a long ban if tripped.
    let rate = RateModel::normal()
        .window(Duration::from_secs(60))
        .burst(1000)
        .real_limit(3)
        .ban_secs(60);
    let fake = fake_with(rate, true).await;
    let q = query(&fake);
    for _ in 0..10 {
        assert_eq!(post_with(&fake.url(), &q, &[]).await.status, 403);
    }
    for remaining in ["89", "88", "87"] {
        let ok = common::post(&fake.url(), &q, serde_json::Value::Null, false).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert_eq!(
            ok.header("x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    let limited = common::post(&fake.url(), &q, serde_json::Value::Null, false).await;
    assert_eq!(limited.status, 429);
    // During the ban the edge still answers first: no Referer is a 403, not a 429.
    assert_eq!(post_with(&fake.url(), &q, &[]).await.status, 403);
    let stats = fake.stats();
    assert_eq!((stats.refused_by_gate, stats.rate_limited), (11, 1));
    assert_eq!(stats.arrived_during_ban, 0);
}

#[tokio::test]
async fn the_gate_stands_before_an_outage_and_can_be_turned_off() {
    let fake = fake_with(RateModel::disabled(), true).await;
    let q = query(&fake);
    fake.start_outage(Duration::from_secs(60));
    assert_eq!(post_with(&fake.url(), &q, &[]).await.status, 403);
    assert_eq!(
        post_with(&fake.url(), &q, &[("Referer", "abc")])
            .await
            .status,
        403
    );
    let stats = fake.stats();
    assert_eq!((stats.refused_by_gate, stats.outages), (1, 1));

    let open = fake_with(RateModel::disabled(), false).await;
    let q = query(&open);
    assert_eq!(post_with(&open.url(), &q, &[]).await.status, 200);
    assert_eq!(open.stats().refused_by_gate, 0);
}
