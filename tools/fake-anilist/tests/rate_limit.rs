//! Rate limiting over loopback, with time scaled down: degraded window, burst, forced bans.

mod common;

use std::time::Duration;

use common::media_query;
use fake_anilist::{FakeAniList, FakeConfig, RateModel, World};

const TOO_MANY: &str =
    r#"{"data": null,"errors": [{"message": "Too Many Requests.","status": 429}]}"#;

async fn fake_with(rate: RateModel) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world: World::single_franchise(5, 1),
        rate,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn degraded_mode_bans_the_31st_request_while_headers_say_90() {
    let rate = RateModel::degraded()
        .window(Duration::from_secs(5))
        .burst(1000)
        .ban_secs(2);
    let fake = fake_with(rate).await;
    let root = fake.world().franchises()[0].root;
    for i in 1..=30u32 {
        let r = media_query(&fake.url(), root).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("90"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((90 - i).to_string())
        );
    }
    let banned = media_query(&fake.url(), root).await;
    assert_eq!(banned.status, 429);
    assert_eq!(banned.text, TOO_MANY);
    assert_eq!(banned.header("retry-after").as_deref(), Some("2"));
    assert!(banned.header("x-ratelimit-limit").is_none());
    assert!(banned.header("x-ratelimit-remaining").is_none());
    for _ in 0..3 {
        let r = media_query(&fake.url(), root).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.text, TOO_MANY);
        assert!(r.header("retry-after").is_some());
    }
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 4);
    assert_eq!(stats.arrived_during_ban, 3);
    assert_eq!(stats.requests, 34);
    assert!(stats.log[31].during_ban && !stats.log[30].during_ban);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = media_query(&fake.url(), root).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.header("x-ratelimit-remaining").as_deref(), Some("89"));
}

#[tokio::test]
async fn burst_limit_trips_on_too_many_requests_in_a_burst_window() {
    // Window 30 s, so the burst window is 500 ms.
    let rate = RateModel::normal()
        .window(Duration::from_secs(30))
        .burst(6)
        .ban_secs(1);
    let fake = fake_with(rate).await;
    let root = fake.world().franchises()[0].root;
    for _ in 0..2 {
        for _ in 0..6 {
            assert_eq!(media_query(&fake.url(), root).await.status, 200);
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let url = fake.url();
    let burst: Vec<_> = (0..7)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { media_query(&url, root).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in burst {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(fake.stats().rate_limited, 1);
}

#[tokio::test]
async fn forced_rate_limit_bans_the_next_request_and_disabled_sends_no_headers() {
    let fake = fake_with(RateModel::disabled().ban_secs(1)).await;
    let root = fake.world().franchises()[0].root;
    let free = media_query(&fake.url(), root).await;
    assert_eq!(free.status, 200);
    assert!(free.header("x-ratelimit-limit").is_none());
    fake.force_rate_limit();
    let forced = media_query(&fake.url(), root).await;
    assert_eq!(forced.status, 429);
    assert_eq!(forced.header("retry-after").as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(media_query(&fake.url(), root).await.status, 200);
    let log = fake.stats().log;
    let statuses: Vec<_> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![Some(200), Some(429), Some(200)]);
    assert_eq!(log[1].ids, vec![root]);
}

#[tokio::test]
async fn disabled_limiter_serves_many_requests_quickly() {
    let fake = fake_with(RateModel::disabled()).await;
    let root = fake.world().franchises()[0].root;
    for _ in 0..120 {
        assert_eq!(media_query(&fake.url(), root).await.status, 200);
    }
    assert_eq!(fake.stats().rate_limited, 0);
}
