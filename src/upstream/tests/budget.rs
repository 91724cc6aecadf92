//! The shared rate budget over its ledger, with real time: the rolling window with many callers,
//! the pace, header adaptation and the park.

use std::sync::Arc;
use std::time::Duration;

use crate::upstream::budget::RateHeaders;
use crate::upstream::{BudgetConfig, ParkReason, RateBudget};
use tokio::time::Instant;

fn config(requests: u32, window_ms: u64, spacing_ms: u64) -> BudgetConfig {
    BudgetConfig {
        requests,
        window: Duration::from_millis(window_ms),
        min_spacing: Duration::from_millis(spacing_ms),
        retry_after_margin: Duration::from_millis(100),
        outage_pause_min: Duration::from_millis(50),
        outage_pause_max: Duration::from_millis(300),
        max_park: Duration::from_secs(900),
        probe_hold: Duration::from_millis(1_000),
    }
}

/// The most sends that fell inside any span of `window`.
fn max_in_any_window(sends: &[Instant], window: Duration) -> usize {
    sends
        .iter()
        .map(|start| {
            sends
                .iter()
                .filter(|t| **t >= *start && **t - *start < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn never_more_than_the_budget_in_any_window_even_with_many_callers() {
    let budget = Arc::new(RateBudget::in_memory(
        config(5, 600, 1),
        Arc::new(crate::clock::SystemClock),
    ));
    let started = Instant::now();
    let sends = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (budget, sends) = (budget.clone(), sends.clone());
        callers.push(tokio::spawn(async move {
            for _ in 0..2 {
                let _slot = budget.acquire().await.unwrap();
                sends.lock().unwrap().push(Instant::now());
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    assert_eq!(sends.len(), 16);
    assert!(max_in_any_window(&sends, Duration::from_millis(600)) <= 5);
    // 16 sends at 5 per window need at least three full windows after the first burst.
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    // The first five went without waiting on even spacing: a walk spends its budget early.
    assert!(
        sends[4] - started < Duration::from_millis(200),
        "{:?}",
        sends[4] - started
    );
    assert_eq!(budget.state().await.unwrap().requests_made, 16);
}

#[tokio::test]
async fn the_pace_spaces_requests_even_when_the_window_has_room() {
    let budget = RateBudget::in_memory(
        config(1000, 60_000, 60),
        Arc::new(crate::clock::SystemClock),
    );
    let mut sends = Vec::new();
    for _ in 0..6 {
        let _slot = budget.acquire().await.unwrap();
        sends.push(Instant::now());
    }
    for pair in sends.windows(2) {
        // governor's clock and tokio's differ by microseconds; allow 5 ms of that.
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(55),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn a_429_parks_every_caller_until_retry_after_plus_the_margin() {
    let budget = Arc::new(RateBudget::in_memory(
        config(100, 60_000, 1),
        Arc::new(crate::clock::SystemClock),
    ));
    let _slot = budget.acquire().await.unwrap();
    let parked_at = Instant::now();
    let pause = budget
        .on_rate_limited(Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(pause, Duration::from_millis(400));
    let state = budget.state().await.unwrap();
    assert_eq!(state.parked_reason, Some(ParkReason::RateLimited));
    assert_eq!(state.rate_limited_seen, 1);
    let mut callers = Vec::new();
    for _ in 0..4 {
        let budget = budget.clone();
        callers.push(tokio::spawn(async move {
            let _slot = budget.acquire().await.unwrap();
            Instant::now()
        }));
    }
    for caller in callers {
        let sent = caller.await.unwrap();
        assert!(
            sent - parked_at >= Duration::from_millis(400),
            "{:?}",
            sent - parked_at
        );
    }
    assert_eq!(budget.state().await.unwrap().parked_reason, None);
}

async fn outage(budget: &RateBudget) -> Duration {
    budget
        .on_down(
            crate::upstream::UpstreamState::Refused,
            "The AniList API has been temporarily disabled".into(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn outages_park_everyone_for_a_doubling_bounded_pause() {
    let budget = RateBudget::in_memory(config(100, 60_000, 1), Arc::new(crate::clock::SystemClock));
    let mut pauses: Vec<u128> = Vec::new();
    for _ in 0..5 {
        pauses.push(outage(&budget).await.as_millis());
    }
    assert_eq!(pauses, vec![50, 100, 200, 300, 300]);
    assert_eq!(
        budget.state().await.unwrap().parked_reason,
        Some(ParkReason::Outage)
    );
    // A good response closes the circuit: once the park is over, the next outage starts
    // small again (a park in force is never shortened).
    budget.observe(&RateHeaders::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let pause = outage(&budget).await.as_millis();
    assert!((40..=50).contains(&pause), "{pause}");
}

#[tokio::test]
async fn a_server_that_says_less_is_left_slows_the_budget_down() {
    let budget = RateBudget::in_memory(config(30, 500, 1), Arc::new(crate::clock::SystemClock));
    let _slot = budget.acquire().await.unwrap();
    // The server admits to a limit of 2 with 0 left: nobody may send until its window resets.
    let told = Instant::now();
    budget
        .observe(&RateHeaders {
            limit: Some(2),
            remaining: Some(0),
            retry_after: None,
        })
        .await
        .unwrap();
    assert_eq!(budget.state().await.unwrap().limit_per_window, 2);
    let _slot = budget.acquire().await.unwrap();
    assert!(
        told.elapsed() >= Duration::from_millis(500),
        "{:?}",
        told.elapsed()
    );
    // Headers claiming more than the configured budget never raise it.
    budget
        .observe(&RateHeaders {
            limit: Some(90),
            remaining: Some(89),
            retry_after: None,
        })
        .await
        .unwrap();
    assert_eq!(budget.state().await.unwrap().limit_per_window, 30);
}

#[test]
fn a_retry_after_is_seconds_or_an_http_date_and_nothing_else() {
    use std::time::SystemTime;

    use crate::upstream::budget::retry_after;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(retry_after("60", now), Some(Duration::from_secs(60)));
    assert_eq!(
        retry_after(" 86400 ", now),
        Some(Duration::from_secs(86_400))
    );
    let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
    assert_eq!(retry_after(&later, now), Some(Duration::from_secs(120)));
    let past = httpdate::fmt_http_date(now - Duration::from_secs(120));
    assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
    for bad in ["soon", "-5", "1.5", ""] {
        assert_eq!(retry_after(bad, now), None, "{bad:?}");
    }
}

#[tokio::test]
async fn with_ample_room_slots_come_in_blocks_and_the_rest_is_spent_from_memory() {
    let clock = Arc::new(crate::clock::ManualClock::at(1_000_000));
    // A 60 s window has 2 s of slack: spare slots live 1 s.
    let budget = RateBudget::in_memory(config(100, 60_000, 0), clock.clone());
    let first = budget.acquire().await.unwrap();
    let state = budget.state().await.unwrap();
    assert_eq!(state.used_in_window, 8, "one take counted a block of 8");
    // The next seven come from memory: the ledger counts no more.
    let mut slots = vec![first];
    for _ in 0..7 {
        slots.push(budget.acquire().await.unwrap());
    }
    assert!(slots.iter().all(|slot| slot.time() == slots[0].time()));
    assert_eq!(budget.state().await.unwrap().used_in_window, 8);
    // The ninth takes a new block.
    let _ninth = budget.acquire().await.unwrap();
    assert_eq!(budget.state().await.unwrap().used_in_window, 16);

    // Spares older than their life are not spent: the next take asks the ledger.
    clock.advance(Duration::from_millis(1_000));
    let _late = budget.acquire().await.unwrap();
    assert_eq!(budget.state().await.unwrap().used_in_window, 24);

    // A park drops the spares at once: nothing goes until it is over.
    budget
        .on_rate_limited(Duration::from_secs(10))
        .await
        .unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(50), budget.acquire()).await;
    assert!(waiting.is_err(), "a spare slot went out during a park");
}

#[tokio::test]
async fn under_a_spacing_every_slot_is_taken_from_the_ledger() {
    let clock = Arc::new(crate::clock::ManualClock::at(1_000_000));
    let budget = RateBudget::in_memory(config(100, 60_000, 500), clock.clone());
    for sent in 1..=3 {
        let _slot = budget.acquire().await.unwrap();
        assert_eq!(budget.state().await.unwrap().used_in_window, sent);
        clock.advance(Duration::from_millis(500));
    }
}
