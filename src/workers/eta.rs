//! How long an import has left, from what the walk knows: the ids discovered but not yet
//! fetched, the levels they span, the budget's pace and the measured round trip. While the
//! walk can still grow, the figure is a lower bound, and says so.

use std::time::Duration;

use crate::events::Eta;
use crate::store::ImportProgress;
use crate::upstream::{BudgetState, MAX_BATCH};

/// The estimate for `progress`, or `None` if it is finished.
pub(crate) fn estimate(
    progress: &ImportProgress,
    budget: Option<&BudgetState>,
    round_trip: Option<Duration>,
) -> Option<Eta> {
    if progress.is_finished() || progress.queued == 0 {
        return None;
    }
    let requests = progress.queued.div_ceil(MAX_BATCH as u64).max(1) as f64;
    let levels = f64::from(progress.queued_levels.max(1));
    // Without a measurement, assume a second: AniList's usual answer time.
    let rtt = round_trip.unwrap_or(Duration::from_secs(1)).as_secs_f64();
    let (pace_per_sec, parked) = match budget {
        Some(b) => {
            let per_minute = if b.pace_per_minute > 0.0 {
                b.pace_per_minute
            } else {
                f64::from(b.limit_per_window) * 60.0 / b.window_secs.max(1.0)
            };
            (
                per_minute / 60.0,
                b.parked_for_ms.unwrap_or(0) as f64 / 1000.0,
            )
        }
        None => (0.5, 0.0),
    };
    // Requests beyond what is left in the window wait for the window to roll.
    let rate_time = match budget {
        Some(b) => {
            let left_in_window = f64::from(b.limit_per_window.saturating_sub(b.used_in_window));
            if requests <= left_in_window {
                (requests - 1.0).max(0.0) * b.min_spacing_ms as f64 / 1000.0
            } else {
                (requests - left_in_window) / pace_per_sec.max(1e-9)
            }
        }
        None => requests / pace_per_sec,
    };
    // Each level needs at least one round trip after the one before it.
    let walk_time = levels * rtt;
    Some(Eta {
        secs: parked + rate_time.max(walk_time),
        // Every queued item may still add relatives, unless the size cap is reached.
        lower_bound: true,
    })
}
