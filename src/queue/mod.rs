//! The durable job queue: one redb file holding an interactive and a background lane of
//! fetch jobs, driven by supervised apalis workers that survive crashes and backend errors.
//!
//! Facts about apalis 1.0 / apalis-redb 0.1.1 this module relies on (read from their sources):
//! - A task's attempt counter is 0 in storage and is incremented just before the handler's
//!   future first runs, so the handler sees 1 on the first run; `JobContext::attempt` is that.
//!   apalis-redb retries a failed task while `attempt < max_attempts`, after a linear delay of
//!   `attempt` seconds, so a job runs at most `max_attempts` times.
//! - Orphans of dead workers are re-enqueued only by a live worker's heartbeat, once the dead
//!   worker's last heartbeat (whole seconds) is `heartbeat × missed_heartbeats` old. With the
//!   defaults (2 s × 3) a job held by a crashed process runs again 6–8 s after that process's
//!   last heartbeat, and never sooner than the first heartbeat of the new run (2 s after start).
//! - A worker skips heartbeats while it holds fetched tasks that wait for a free concurrency
//!   slot. A sibling worker of the same lane may then judge it dead and re-run its tasks, which
//!   is why each lane fetches exactly `concurrency` tasks at a time and one background worker
//!   with a high concurrency is the recommended shape.

mod config;
mod depth;
mod error;
mod handler;
mod job;
mod name;
mod open;
mod pidfile;
mod store;
mod supervise;
mod worker;

pub use config::RunOptions;
pub use depth::{LaneDepth, QueueDepth};
pub use error::QueueError;
pub use job::{FetchJob, JobContext, JobFailure, JobHandler, Lane};
pub use store::JobQueue;
pub use supervise::WorkerSet;
