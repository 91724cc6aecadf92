//! The HTTP control endpoints of the standalone binary.

mod common;

use common::media_query;
use fake_anilist::{FakeAniList, FakeConfig, RateModel, World};
use serde_json::Value;

#[tokio::test]
async fn stats_rate_limit_outage_and_reset_over_http() {
    let fake = FakeAniList::start(FakeConfig {
        world: World::single_franchise(3, 9),
        rate: RateModel::normal().ban_secs(30),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let root = fake.world().franchises()[0].root;
    let client = reqwest::Client::new();
    let url = fake.url();
    assert_eq!(media_query(&url, root).await.status, 200);

    let stats: Value = client
        .get(format!("{url}stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["log"][0]["ids"][0], root);

    let r = client
        .post(format!("{url}admin/rate-limit"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(media_query(&url, root).await.status, 429);
    assert_eq!(media_query(&url, root).await.status, 429);

    let r = client
        .post(format!("{url}admin/reset"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(media_query(&url, root).await.status, 200);
    assert_eq!(fake.stats().requests, 1);

    let r = client
        .post(format!("{url}admin/outage?secs=30"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(media_query(&url, root).await.status, 403);
    let bad = client
        .post(format!("{url}admin/outage?secs=-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    fake.shutdown().await;
}
