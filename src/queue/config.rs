//! How workers run (RunOptions): how many, how many jobs in flight, heartbeat and grace,
//! chosen so fetching is bulk, dead workers are noticed within seconds and retries stay few.

use std::time::Duration;

use super::error::QueueError;

/// How long a stopping worker waits for its in-flight handlers.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// How `JobQueue::run` shapes its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Background workers (apalis workers on the background lane). One with a high
    /// `concurrency` is the safe shape; see the module docs about heartbeats.
    pub workers: usize,
    /// Interactive workers; at least one so a click never waits behind an import.
    pub interactive_workers: usize,
    /// Jobs in flight per worker, and jobs fetched per bulk fetch: 50 lets a batcher coalesce
    /// a full AniList page.
    pub concurrency: usize,
    /// Worker heartbeat; orphans of a dead process are re-run about 3 heartbeats after its last.
    pub heartbeat: Duration,
    /// Fallback for `JobContext::max_attempts` when a stored task carries none (tasks pushed by
    /// `JobQueue::push` always carry theirs).
    pub max_attempts: usize,
    /// How long a stopping worker waits for in-flight handlers before abandoning them (they
    /// are then re-run by the next process, as orphans).
    pub grace: Duration,
}

impl RunOptions {
    /// Refuses values apalis would panic on or that would silently starve a lane.
    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        let invalid = |name, value: String, expected| QueueError::InvalidOption {
            name,
            value,
            expected,
        };
        if self.interactive_workers == 0 {
            return Err(invalid(
                "interactive_workers",
                "0".into(),
                "at least 1, so interactive jobs are always picked up",
            ));
        }
        if self.concurrency == 0 {
            return Err(invalid("concurrency", "0".into(), "at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts", "0".into(), "at least 1"));
        }
        if self.heartbeat < Duration::from_secs(1) {
            return Err(invalid(
                "heartbeat",
                format!("{:?}", self.heartbeat),
                "at least 1 s (apalis-redb stores heartbeats in whole seconds)",
            ));
        }
        Ok(())
    }
}
