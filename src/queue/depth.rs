//! Queue depth per lane and state, so a status page can show how much work is waiting,
//! running, done or failed (finished jobs are kept for `queue.retention_secs`).

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
