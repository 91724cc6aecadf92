//! Queue depth per lane and state, read through apalis' public Metrics API (never its tables)
//! so a status page can show how much work is waiting, running, done or failed.

use apalis::prelude::Statistic;
use serde::Serialize;

/// Task counts of one lane. `pending` includes tasks waiting for a retry; `running` includes
/// tasks a worker has fetched but not yet started; `failed` counts aborted and exhausted tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LaneDepth {
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
}

/// Task counts of both lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct QueueDepth {
    pub interactive: LaneDepth,
    pub background: LaneDepth,
}

impl LaneDepth {
    /// Reads the counters apalis-redb reports as `PENDING_JOBS`, `RUNNING_JOBS`, `DONE_JOBS`
    /// and `FAILED_JOBS`; a missing or unparsable one counts as 0 rather than failing a status
    /// read.
    pub(crate) fn from_statistics(stats: &[Statistic]) -> Self {
        let count = |title: &str| {
            stats
                .iter()
                .find(|stat| stat.title == title)
                .and_then(|stat| stat.value.parse().ok())
                .unwrap_or(0)
        };
        Self {
            pending: count("PENDING_JOBS"),
            running: count("RUNNING_JOBS"),
            done: count("DONE_JOBS"),
            failed: count("FAILED_JOBS"),
        }
    }
}
