//! How long an import has left, from what is known: the ids still to fetch and the levels
//! they span, the levels one request walks, the rate budget (the wait for its next slot, its
//! spacing and its window), parks, and the measured round trip. While the walk can still
//! grow, the figure adds a guess of the levels not seen yet, and the known part alone is
//! given as the floor ("at least").

use std::time::Duration;

use crate::events::Eta;
use crate::ledger::ParkReason;
use crate::store::ImportProgress;
use crate::upstream::{AniListClient, BudgetState, MAX_BATCH};

/// Below this, a wait for the budget is part of the pace, not worth a "waiting" line.
const WAIT_WORTH_SAYING_SECS: f64 = 2.0;

/// What an estimate is built from besides the import's own progress.
struct EtaInputs<'a> {
    /// The shared budget as last read; `None` if it could not be read.
    budget: Option<&'a BudgetState>,
    /// The smoothed round trip; a second (AniList's usual) until one was measured.
    round_trip: Option<Duration>,
    /// The levels of relations a request for this many ids walks now (the walk-depth
    /// setting, the learnt answer size, a lowered cap).
    levels_per_request: &'a dyn Fn(usize) -> usize,
}

/// The estimate for `progress` with what `client` knows: its measured round trip, and the
/// levels it walks now under the budget's lowered walk, if any.
pub(crate) fn estimate_with(
    progress: &ImportProgress,
    budget: Option<&BudgetState>,
    client: &AniListClient,
) -> Option<Eta> {
    let cap = budget.and_then(|b| b.walk_cap);
    let levels = |ids: usize| client.levels_for(ids, cap);
    estimate(
        progress,
        &EtaInputs {
            budget,
            round_trip: client.round_trip(),
            levels_per_request: &levels,
        },
    )
}

/// The estimate for `progress`, or `None` if it is finished.
fn estimate(progress: &ImportProgress, inputs: &EtaInputs<'_>) -> Option<Eta> {
    if progress.is_finished() || progress.queued == 0 {
        return None;
    }
    let known = Walk {
        levels: u64::from(progress.queued_levels.max(1)),
        anime: progress.queued,
    };
    let at_least = time_for(&known, inputs);
    let growth = Growth::guess(progress);
    let forecast = time_for(
        &Walk {
            levels: known.levels + growth.levels,
            anime: known.anime + growth.anime,
        },
        inputs,
    );
    Some(Eta {
        secs: forecast.secs.max(at_least.secs),
        // Every queued item may still add relatives: what is known alone is the floor.
        at_least_secs: Some(at_least.secs),
        waiting_secs: at_least.waiting_secs,
    })
}

/// What is left to walk: levels of requests, and the anime on them.
struct Walk {
    levels: u64,
    anime: u64,
}

/// The levels and anime the walk has not shown yet, as the estimate guesses them.
struct Growth {
    levels: u64,
    anime: u64,
}

impl Growth {
    /// With nothing known of how deep a franchise goes, guess half as many unseen levels
    /// again as the walk has shown, each as wide as the shown ones on average. Under the
    /// scale-free guess (the walk is as likely to be short of its middle as past it) that is
    /// the point one walk in three goes beyond. The median itself (as many levels again)
    /// was measured first: short by 1.1 s of 5.6 s at a quarter of a 13-level walk, but over
    /// by 5.2 s of 1.8 s at three quarters, worse on average than no guess at all; half of it
    /// was better than either at every point measured (docs/benchmarks.md).
    fn guess(progress: &ImportProgress) -> Self {
        let shown = u64::from(progress.frontier_depth) + 1;
        let width = progress.discovered.div_ceil(shown);
        let levels = shown.div_ceil(2);
        Self {
            levels,
            anime: levels * width,
        }
    }
}

/// The time `walk` takes under the budget, with the wait for the rate limit when it is worth
/// saying.
fn time_for(walk: &Walk, inputs: &EtaInputs<'_>) -> Eta {
    let rtt = inputs
        .round_trip
        .unwrap_or(Duration::from_secs(1))
        .as_secs_f64();
    let batch = walk.anime.clamp(1, MAX_BATCH as u64) as usize;
    let per_request = (inputs.levels_per_request)(batch).max(1) as u64;
    // Each round of requests learns `per_request` levels; the next round needs its answers.
    let rounds = walk.levels.max(1).div_ceil(per_request);
    let requests = walk.anime.div_ceil(MAX_BATCH as u64).max(rounds);
    let (wait, spacing, rate_time) = match inputs.budget {
        Some(b) => budget_time(b, requests),
        None => (0.0, 0.0, 0.0),
    };
    // An outage's pause is waited too, but it is no rate limit: the status says it apart.
    let rate_limited = inputs
        .budget
        .is_none_or(|b| b.parked_reason.is_none_or(|r| r == ParkReason::RateLimited));
    // Rounds follow one another: each after the last one's answer and at least a slot apart.
    let walk_time = rtt + (rounds - 1) as f64 * rtt.max(spacing);
    let send_time = rtt + rate_time;
    Eta {
        secs: wait + walk_time.max(send_time),
        at_least_secs: None,
        waiting_secs: (rate_limited && wait >= WAIT_WORTH_SAYING_SECS).then_some(wait),
    }
}

/// (wait for the first slot, spacing between requests, time from the first request to the
/// last) under the budget. Requests that fit what is left of the window go at the spacing;
/// the rest at the window's pace.
fn budget_time(b: &BudgetState, requests: u64) -> (f64, f64, f64) {
    let wait = b.parked_for_ms.or(b.next_slot_in_ms).unwrap_or(0) as f64 / 1000.0;
    let spacing = b.min_spacing_ms as f64 / 1000.0;
    let window_pace = f64::from(b.limit_per_window.max(1)) / b.window_secs.max(1e-3);
    let after_first = requests.saturating_sub(1) as f64;
    let left = f64::from(b.limit_per_window.saturating_sub(b.used_in_window + 1));
    let rate_time = if after_first <= left {
        after_first * spacing
    } else {
        left * spacing + (after_first - left) / window_pace.max(1e-9)
    };
    (wait, spacing, rate_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImportState;

    fn progress(queued: u64, queued_levels: u32) -> ImportProgress {
        ImportProgress {
            import_id: 1,
            root: crate::test_support::id(1),
            state: ImportState::Running,
            discovered: queued + 5,
            done: 5,
            failed: 0,
            cancelled: 0,
            queued,
            unwalked_edges: 0,
            queued_levels,
            frontier_depth: 0,
            created_at_ms: 0,
            finished_at_ms: None,
            failures: Vec::new(),
        }
    }

    fn budget(
        limit: u32,
        window_secs: f64,
        used: u32,
        next_slot_in_ms: Option<u64>,
    ) -> BudgetState {
        BudgetState {
            requests_made: u64::from(used),
            rate_limited_seen: 0,
            outages_seen: 0,
            limit_per_window: limit,
            window_secs,
            used_in_window: used,
            min_spacing_ms: 500,
            pace_per_minute: f64::from(limit) * 60.0 / window_secs,
            parked_for_ms: None,
            next_slot_in_ms,
            parked_until_ms: None,
            parked_reason: None,
            server_limit: None,
            server_remaining: None,
            walk_cap: None,
            walk_cap_until_ms: None,
        }
    }

    fn eta(p: &ImportProgress, b: Option<&BudgetState>, levels: usize) -> Eta {
        let per_request = move |_: usize| levels;
        estimate(
            p,
            &EtaInputs {
                budget: b,
                round_trip: Some(Duration::from_secs(1)),
                levels_per_request: &per_request,
            },
        )
        .unwrap_or_else(|| panic!("no estimate for {p:?}"))
    }

    /// The seconds the known part alone takes.
    fn floor(e: &Eta) -> f64 {
        e.at_least_secs
            .unwrap_or_else(|| panic!("a running walk has a floor: {e:?}"))
    }

    #[test]
    fn two_requests_a_minute_count_the_wait_for_the_next_slot() {
        // Both of the window's requests went; the next slot is 25 s away.
        let b = budget(2, 60.0, 2, Some(25_000));
        let e = eta(&progress(3, 1), Some(&b), 1);
        assert!(floor(&e) >= 26.0, "{e:?}");
        assert_eq!(e.waiting_secs, Some(25.0));
        // Three levels still to learn one per request: two more slots of 30 s after it.
        let e = eta(&progress(3, 3), Some(&b), 1);
        assert!(floor(&e) >= 25.0 + 1.0 + 2.0 * 30.0 - 0.01, "{e:?}");
    }

    #[test]
    fn levels_per_request_divide_the_round_trips() {
        let b = budget(90, 60.0, 0, None);
        let one = eta(&progress(40, 6), Some(&b), 1);
        let three = eta(&progress(40, 6), Some(&b), 3);
        assert!((floor(&one) - 6.0).abs() < 0.01, "{one:?}");
        assert!((floor(&three) - 2.0).abs() < 0.01, "{three:?}");
        assert_eq!(one.waiting_secs, None);
    }

    #[test]
    fn requests_beyond_the_window_go_at_its_pace() {
        // 30 a minute, 29 used: 10 pages of ids need 9 more requests after the first slot,
        // all at the window's pace of one per 2 s.
        let b = budget(30, 60.0, 29, None);
        let e = eta(&progress(500, 1), Some(&b), 1);
        assert!((floor(&e) - (1.0 + 9.0 * 2.0)).abs() < 0.01, "{e:?}");
    }

    #[test]
    fn a_park_is_waited_and_said() {
        let mut b = budget(30, 60.0, 0, Some(40_000));
        b.parked_for_ms = Some(40_000);
        b.parked_reason = Some(ParkReason::RateLimited);
        let e = eta(&progress(10, 1), Some(&b), 1);
        assert!((floor(&e) - 41.0).abs() < 0.01, "{e:?}");
        assert_eq!(e.waiting_secs, Some(40.0));
        // An outage's pause is counted, but it is not AniList's rate limit.
        b.parked_reason = Some(ParkReason::Outage);
        let e = eta(&progress(10, 1), Some(&b), 1);
        assert!((floor(&e) - 41.0).abs() < 0.01, "{e:?}");
        assert_eq!(e.waiting_secs, None);
    }

    #[test]
    fn a_walk_that_may_grow_adds_half_as_many_levels_again_as_it_has_shown() {
        let b = budget(90, 60.0, 0, None);
        // Four levels shown (the frontier on level 3), 40 anime found, 20 of them queued on
        // one level, one level a request: 1 s is known; 2 levels more are guessed.
        let mut p = progress(20, 1);
        p.discovered = 40;
        p.frontier_depth = 3;
        let e = eta(&p, Some(&b), 1);
        assert!((floor(&e) - 1.0).abs() < 0.01, "{e:?}");
        assert!((e.secs - 3.0).abs() < 0.01, "{e:?}");
        // Three levels a request: (1 + 2) levels take 1 round.
        let e = eta(&p, Some(&b), 3);
        assert!((e.secs - 1.0).abs() < 0.01, "{e:?}");
        // A wide walk needs more pages of ids than rounds: 400 found on 4 levels, 200
        // queued; 200 + 2 × 100 ids in 8 pages at the 500 ms spacing after the first.
        p.discovered = 400;
        p.queued = 200;
        let e = eta(&p, Some(&b), 3);
        assert!((e.secs - (1.0 + 7.0 * 0.5)).abs() < 0.01, "{e:?}");
        // The guess never goes under the floor, and the wait for the budget is said alike.
        let b = budget(2, 60.0, 2, Some(25_000));
        let e = eta(&p, Some(&b), 3);
        assert!(e.secs >= floor(&e), "{e:?}");
        assert_eq!(e.waiting_secs, Some(25.0));
    }

    #[test]
    fn nothing_queued_or_finished_has_no_estimate() {
        let per_request = |_: usize| 1;
        let inputs = EtaInputs {
            budget: None,
            round_trip: None,
            levels_per_request: &per_request,
        };
        assert!(estimate(&progress(0, 0), &inputs).is_none());
        let mut done = progress(3, 1);
        done.state = ImportState::Done;
        assert!(estimate(&done, &inputs).is_none());
    }
}
