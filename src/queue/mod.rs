//! The durable job queue seam: push fetch jobs into a lane, run supervised workers over it,
//! read its depth, and say where a job stands. Two backends implement it: one redb file owned
//! by one process (embedded default) and apalis-postgres shared by any number (scale-out).
//!
//! Facts about apalis 1.0 this module relies on (read from its sources):
//! - A task's attempt counter is 0 in storage and is incremented just before the handler's
//!   future first runs, so the handler sees 1 on the first run; `JobContext::attempt` is that.
//! - Orphans of dead workers are re-enqueued only by a live worker's heartbeat, once the dead
//!   worker's last heartbeat is `heartbeat × missed_heartbeats` old.
//! - A worker skips heartbeats while it holds fetched tasks that wait for a free concurrency
//!   slot. A sibling worker of the same lane may then judge it dead and re-run its tasks, which
//!   is why each lane fetches exactly `concurrency` tasks at a time and one background worker
//!   with a high concurrency is the recommended shape.

mod config;
mod depth;
pub(crate) mod embedded;
mod error;
mod handler;
mod job;
mod name;
pub(crate) mod postgres;
mod supervise;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub(crate) use config::{GRACE, RunOptions};
pub use depth::{LaneDepth, QueueDepth};
pub use error::QueueError;
pub use job::Lane;
pub(crate) use job::{FetchJob, JobContext, JobFailure, JobHandler};
pub(crate) use name::host_name;
pub(crate) use postgres::{INDEXES as PG_INDEXES, count_finished_jobs as pg_count_finished_jobs};
pub(crate) use supervise::WorkerSet;

/// Where one job stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobPresence {
    /// The queue has never had it (or has forgotten it).
    Absent,
    /// Waiting, scheduled for a retry, or running.
    Live,
    /// Done, failed or killed: it will not run again.
    Finished,
}

/// A durable queue of fetch jobs in two lanes.
#[async_trait]
pub(crate) trait QueueDriver: Send + Sync + std::fmt::Debug {
    /// Where the queue lives, for messages.
    fn location(&self) -> String;

    /// Pushes `jobs` into `lane`. A job whose id the queue already knows is skipped, so pushing
    /// the same import item twice is harmless. Returns how many were new.
    async fn push(&self, lane: Lane, jobs: &[FetchJob]) -> Result<usize, QueueError>;

    /// Task counts per lane and state.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Where each of these import jobs stands (same order as `jobs`).
    async fn presence(&self, jobs: &[FetchJob]) -> Result<Vec<JobPresence>, QueueError>;

    /// Forgets the jobs that finished (done, or failed for good) more than `finished_before`
    /// ago, in both lanes; their items' outcomes are in the store. Returns how many went.
    async fn prune(&self, finished_before: Duration) -> Result<u64, QueueError>;

    /// Runs ONE worker incarnation named `name` on `lane` until it fails or `shutdown` is
    /// cancelled; the supervisor restarts it.
    async fn run_worker(
        &self,
        lane: Lane,
        name: &str,
        options: &RunOptions,
        handler: JobHandler,
        shutdown: &CancellationToken,
    ) -> Result<(), QueueError>;

    /// A small write that surfaces a broken backend (a poisoned file, a full disk) as the
    /// error a person can act on.
    async fn health(&self) -> Result<(), QueueError>;
}

/// A handle to the queue, whichever backend holds it. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct JobQueue {
    driver: Arc<dyn QueueDriver>,
}

impl JobQueue {
    pub(crate) fn new(driver: Arc<dyn QueueDriver>) -> Self {
        Self { driver }
    }

    pub(crate) fn driver(&self) -> Arc<dyn QueueDriver> {
        self.driver.clone()
    }
}

impl Deref for JobQueue {
    type Target = dyn QueueDriver;
    fn deref(&self) -> &Self::Target {
        &*self.driver
    }
}

#[cfg(test)]
pub(crate) mod tests;
