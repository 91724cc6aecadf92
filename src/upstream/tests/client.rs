//! The AniList client against the fake AniList over loopback: batching, typed failures, retries
//! only of what is worth retrying, and one shared budget that never draws a 429.

use std::sync::Arc;
use std::time::Duration;

use crate::anime::AnimeId;
use crate::upstream::{
    AniListClient, BudgetConfig, ClientConfig, RateBudget, UpstreamError, WalkDepth,
};
use fake_anilist::{FakeAniList, FakeConfig, Faults, RateModel, World, WorldSpec};

/// A budget of `requests` per `window`, with the pace and margins scaled like the window.
fn scaled_budget(requests: u32, window: Duration) -> BudgetConfig {
    BudgetConfig {
        requests,
        window,
        min_spacing: window / 120,
        retry_after_margin: Duration::from_millis(200),
        outage_pause_min: Duration::from_millis(50),
        outage_pause_max: Duration::from_millis(200),
        max_park: Duration::from_secs(900),
        probe_hold: Duration::from_millis(1_000),
    }
}

/// A quick client's settings for the fake at `url`.
fn config_for(url: String) -> ClientConfig {
    ClientConfig {
        endpoint: url,
        referer: "https://example.org/franchise-tests".into(),
        referer_is_default: false,
        timeout: Duration::from_millis(500),
        max_retries: 2,
        walk_depth: WalkDepth::Fixed(1),
        retry_min_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_millis(40),
        max_parks: 2,
    }
}

fn client_for(fake: &FakeAniList, budget: BudgetConfig) -> AniListClient {
    client_with(config_for(fake.url()), budget)
}

fn client_with(config: ClientConfig, budget: BudgetConfig) -> AniListClient {
    AniListClient::new(
        config,
        Arc::new(RateBudget::in_memory(
            budget,
            Arc::new(crate::clock::SystemClock),
        )),
    )
    .unwrap()
}

fn unlimited() -> BudgetConfig {
    scaled_budget(10_000, Duration::from_secs(1))
}

/// Live anime ids an anonymous caller can see.
fn visible_ids(world: &World, n: usize) -> Vec<AnimeId> {
    let ids: Vec<AnimeId> = world
        .entries()
        .filter(|e| e.media_type.as_deref() == Some("ANIME") && !e.dead && !e.is_adult)
        .map(|e| AnimeId::new(i64::from(e.id)).unwrap())
        .take(n)
        .collect();
    assert_eq!(ids.len(), n, "the world is too small");
    ids
}

async fn start(world: World, rate: RateModel, faults: Faults) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world,
        rate,
        faults,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn fifty_ids_cost_one_request_and_120_cost_three() {
    let world = WorldSpec::default()
        .seed(3)
        .franchises(0)
        .sized(200)
        .clean()
        .build();
    let ids = visible_ids(&world, 120);
    let fake = start(world, RateModel::disabled(), Faults::default()).await;
    let client = client_for(&fake, unlimited());

    let answer = client.fetch_batch(&ids[..50]).await.unwrap();
    assert_eq!(answer.found.len(), 50);
    assert!(answer.not_found.is_empty());
    assert_eq!(fake.stats().ids_per_request, vec![50]);

    let answer = client.fetch_batch(&ids).await.unwrap();
    assert_eq!(answer.found.len(), 120);
    assert_eq!(fake.stats().ids_per_request, vec![50, 50, 50, 20]);
    let mut got: Vec<AnimeId> = answer.found.iter().map(|a| a.id).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    // Every anime carries its edges, typed, as the world has them.
    for anime in &answer.found {
        let entry = fake.world().get(anime.id.get() as i32).cloned().unwrap();
        assert_eq!(anime.relations.len(), entry.relations.len());
    }
}

#[tokio::test]
async fn ids_missing_from_the_answer_are_not_found_and_not_retried() {
    let world = WorldSpec::default().seed(5).franchises(300).build();
    let dead = world.entries().find(|e| e.dead).unwrap().id;
    let adult = world.entries().find(|e| e.is_adult && !e.dead).unwrap().id;
    let live = visible_ids(&world, 3);
    let fake = start(world, RateModel::disabled(), Faults::default()).await;
    let client = client_for(&fake, unlimited());
    let mut ids = live.clone();
    for raw in [i64::from(dead), i64::from(adult), 2_000_000_000] {
        ids.push(AnimeId::new(raw).unwrap());
    }
    let answer = client.fetch_batch(&ids).await.unwrap();
    assert_eq!(answer.found.len(), 3);
    assert_eq!(answer.not_found, ids[3..].to_vec());
    assert_eq!(fake.stats().requests, 1);
}

#[tokio::test]
async fn each_failure_maps_to_its_typed_error_and_permanent_ones_are_tried_once() {
    let fault = |f: fn(&mut Faults)| {
        let mut faults = Faults {
            seed: 1,
            timeout_hold: Duration::from_secs(3),
            ..Faults::default()
        };
        f(&mut faults);
        faults
    };
    // (faults, expected kind, requests the client should make: 1 + max_retries(2) for what
    // is retried, exactly 1 for a permanent error and for a down AniList (a 403, a timeout),
    // which the shared budget waits out instead)
    let cases: Vec<(Faults, &str, u64)> = vec![
        (fault(|f| f.fail_500 = 1.0), "upstream_failing", 3),
        (fault(|f| f.fail_502 = 1.0), "upstream_failing", 3),
        (fault(|f| f.timeout = 1.0), "no_answer", 1),
        (fault(|f| f.truncate = 1.0), "malformed_response", 3),
        // The fake's "malformed" body is an HTML page with HTTP 200: not AniList answering.
        (fault(|f| f.malformed = 1.0), "not_anilist", 1),
        (fault(|f| f.reject = 1.0), "query_rejected", 1),
        (
            fault(|f| {
                f.outage_at = Some(Duration::ZERO);
                f.outage_for = Duration::from_secs(30);
            }),
            "upstream_disabled",
            1,
        ),
    ];
    for (faults, kind, requests) in cases {
        let world = World::single_franchise(5, 1);
        let ids = visible_ids(&world, 3);
        let fake = start(world, RateModel::disabled(), faults.clone()).await;
        let client = client_for(&fake, unlimited());
        let err = client.fetch_batch(&ids).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{faults:?}: {err}");
        assert_eq!(err.is_permanent(), kind == "query_rejected", "{err}");
        let down = [
            "upstream_failing",
            "no_answer",
            "upstream_disabled",
            "not_anilist",
        ];
        assert_eq!(err.is_down(), down.contains(&kind), "{err}");
        assert_eq!(fake.stats().requests, requests, "{kind}: {err}");
        if faults.timeout > 0.0 {
            assert!(err.to_string().contains("no answer from AniList"), "{err}");
        }
        if kind == "malformed_response" {
            let UpstreamError::Malformed { excerpt, .. } = &err else {
                panic!()
            };
            assert!(!excerpt.is_empty());
        }
        if kind == "upstream_disabled" {
            assert_eq!(client.budget().state().await.unwrap().outages_seen, 1);
            let UpstreamError::Disabled { message } = &err else {
                panic!("{err:?}")
            };
            assert!(message.contains("temporarily disabled"), "{message}");
        }
    }
}

#[tokio::test]
async fn transient_failures_recover_within_the_retry_bound() {
    let world = World::single_franchise(10, 2);
    let ids = visible_ids(&world, 10);
    let faults = Faults {
        seed: 11,
        fail_500: 0.3,
        truncate: 0.2,
        ..Faults::default()
    };
    let fake = start(world, RateModel::disabled(), faults).await;
    let mut config = ClientConfig {
        endpoint: fake.url(),
        max_retries: 8,
        retry_min_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        ..crate::config::Settings::default().client()
    };
    config.timeout = Duration::from_secs(2);
    let client = AniListClient::new(
        config,
        Arc::new(RateBudget::in_memory(
            unlimited(),
            Arc::new(crate::clock::SystemClock),
        )),
    )
    .unwrap();
    for id in &ids {
        let answer = client.fetch_batch(&[*id]).await.unwrap();
        assert_eq!(answer.found.len(), 1);
    }
    let stats = fake.stats();
    assert!(
        stats.requests > 10,
        "some requests must have failed and been retried"
    );
    assert!(stats.faults > 0);
}

#[tokio::test]
async fn eight_callers_through_one_default_budget_never_draw_a_429_in_degraded_mode() {
    // The fake enforces 30 per 2 s window behind headers that say 90, plus a burst limit of
    // 6 per 1/60 window: AniList's degraded minute, 30× faster.
    let window = Duration::from_secs(2);
    let world = WorldSpec::default()
        .seed(9)
        .franchises(0)
        .sized(400)
        .clean()
        .build();
    let ids = visible_ids(&world, 320);
    let fake = start(
        world,
        RateModel::degraded().window(window).ban_secs(2),
        Faults::default(),
    )
    .await;
    let client = client_for(&fake, scaled_budget(30, window));
    let mut callers = Vec::new();
    for caller in 0..8 {
        let client = client.clone();
        let mine: Vec<AnimeId> = ids.iter().skip(caller).step_by(8).copied().collect();
        callers.push(tokio::spawn(async move {
            let mut found = 0;
            for chunk in mine.chunks(4) {
                found += client.fetch_batch(chunk).await.unwrap().found.len();
            }
            found
        }));
    }
    let mut found = 0;
    for caller in callers {
        found += caller.await.unwrap();
    }
    assert_eq!(found, 320);
    let stats = fake.stats();
    assert_eq!(stats.requests, 80);
    assert_eq!(stats.rate_limited, 0, "{:?}", stats.by_status);
    assert_eq!(stats.arrived_during_ban, 0);
    // The whole window's budget is used: 80 requests at 30 per window need under 4 windows
    // (plus the slack), not the 2.7 s × 30 of an even spacing per request.
    assert_eq!(client.budget().state().await.unwrap().rate_limited_seen, 0);
}

#[tokio::test]
async fn after_a_forced_429_no_request_arrives_during_the_ban() {
    let world = WorldSpec::default()
        .seed(4)
        .franchises(0)
        .sized(100)
        .clean()
        .build();
    let ids = visible_ids(&world, 64);
    let fake = start(world, RateModel::disabled().ban_secs(1), Faults::default()).await;
    let client = client_for(&fake, scaled_budget(1_000, Duration::from_secs(2)));
    // Warm up, then arm the 429 and let 8 callers run into it together.
    client.fetch_batch(&ids[..1]).await.unwrap();
    fake.force_rate_limit();
    let mut callers = Vec::new();
    for caller in 0..8 {
        let client = client.clone();
        let mine: Vec<AnimeId> = ids.iter().skip(caller).step_by(8).copied().collect();
        callers.push(tokio::spawn(async move {
            for id in mine {
                client.fetch_batch(&[id]).await.unwrap();
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 1, "{:?}", stats.by_status);
    assert_eq!(stats.arrived_during_ban, 0);
    assert_eq!(
        stats.requests,
        1 + 1 + 64,
        "warm-up, the 429, then every id once"
    );
    // Nothing arrived within the ban: the next request came at least 1 s after the 429.
    let limited = stats
        .log
        .iter()
        .position(|e| e.status == Some(429))
        .unwrap();
    let gap = stats.log[limited + 1].at_ms - stats.log[limited].at_ms;
    assert!(gap >= 1_000, "next request {gap} ms after the 429");
    assert_eq!(client.budget().state().await.unwrap().rate_limited_seen, 1);
}

#[tokio::test]
async fn only_answers_from_anilist_bring_it_back_and_a_refusal_of_the_query_is_one() {
    use crate::upstream::UpstreamState;
    let world = World::single_franchise(5, 1);
    let ids = visible_ids(&world, 2);
    // AniList answers 5xx to everything: the state goes down and stays down; the 5xx answers
    // never bring it back for the other processes.
    let failing = start(
        world.clone(),
        RateModel::disabled(),
        Faults {
            fail_500: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let client = client_for(&failing, unlimited());
    for _ in 0..3 {
        let err = client.fetch_batch(&ids).await.unwrap_err();
        assert_eq!(err.kind(), "upstream_failing", "{err}");
        let (_, upstream) = client.budget().states().await.unwrap();
        assert_eq!(upstream.state, UpstreamState::Unreachable, "{upstream:?}");
    }
    // After the outage AniList refuses the query itself (a schema change): that is AniList
    // answering, so it is up again for everyone, and the refusal is the caller's problem.
    let refusing = start(
        world,
        RateModel::disabled(),
        Faults {
            reject: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let same_budget =
        AniListClient::new(config_for(refusing.url()), client.budget().clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // the probe's pause
    let err = same_budget.fetch_batch(&ids).await.unwrap_err();
    assert_eq!(err.kind(), "query_rejected", "{err}");
    let (_, upstream) = same_budget.budget().states().await.unwrap();
    assert_eq!(upstream.state, UpstreamState::Ok, "{upstream:?}");
}

/// A loopback HTTP server: each connection's request is read, then `answer` writes the raw
/// response.
async fn raw_server<F, Fut>(answer: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                answer(socket).await;
            });
        }
    });
    url
}

/// Answers every request with `head` and then 64 KiB chunks of filler until the client goes
/// away. Returns the URL and the filler bytes written.
async fn endless_server(head: &'static str) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use tokio::io::AsyncWriteExt;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let url = raw_server(move |mut socket| {
        let counter = counter.clone();
        async move {
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let filler = vec![b' '; 64 * 1024];
            let chunk = format!("{:x}\r\n", filler.len());
            loop {
                let wrote = async {
                    socket.write_all(chunk.as_bytes()).await?;
                    socket.write_all(&filler).await?;
                    socket.write_all(b"\r\n").await
                };
                if wrote.await.is_err() {
                    return;
                }
                counter.fetch_add(filler.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })
    .await;
    (url, sent)
}

/// How one fetch of id 1 from `url` fails, without retries.
async fn fetch_error(url: String) -> UpstreamError {
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        max_retries: 0,
        ..config_for(url)
    };
    client_with(config, unlimited())
        .fetch_batch(&[AnimeId::new(1).unwrap()])
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_endless_answer_is_a_failed_request_not_an_out_of_memory() {
    use crate::upstream::client::MAX_ANSWER_BYTES;

    let (url, sent) = endless_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let err = fetch_error(url).await;
    assert_eq!(err.kind(), "too_large", "{err}");
    let read = sent.load(std::sync::atomic::Ordering::Relaxed) as usize;
    println!("endless body: gave up after the server wrote {read} bytes (cap {MAX_ANSWER_BYTES})");
    assert!(
        read < 4 * MAX_ANSWER_BYTES,
        "the client stopped reading near the cap: {read} bytes sent"
    );

    // A Content-Length above the cap is refused before its body is read.
    let (url, _) = endless_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300000000\r\n\r\n",
    )
    .await;
    let err = fetch_error(url).await;
    assert_eq!(err.kind(), "too_large", "{err}");
}

#[tokio::test]
async fn a_gzip_bomb_is_cut_at_the_cap_counted_after_decompression() {
    use std::io::Write;

    use tokio::io::AsyncWriteExt;

    use crate::upstream::client::MAX_ANSWER_BYTES;

    // 256 MiB of spaces compress to a quarter of a megabyte.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1024 * 1024];
    for _ in 0..256 {
        encoder.write_all(&block).unwrap();
    }
    let bomb = Arc::new(encoder.finish().unwrap());
    assert!(
        bomb.len() < MAX_ANSWER_BYTES / 16,
        "{} bytes compressed",
        bomb.len()
    );
    let url = raw_server(move |mut socket| {
        let bomb = bomb.clone();
        async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                bomb.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&bomb).await;
        }
    })
    .await;
    let err = fetch_error(url).await;
    assert_eq!(err.kind(), "too_large", "{err}");
}
