//! What every task of one pipeline shares (the store, the queue, the client, the switches),
//! kept apart from `pipeline.rs` so the tasks it starts need not import the file that starts them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::request::Notice;
use crate::cache::ReadCache;
use crate::clock::Clock;
use crate::events::EventBus;
use crate::failpoint::FailPoints;
use crate::halt::HaltSwitch;
use crate::queue::JobQueue;
use crate::store::Store;
use crate::upstream::AniListClient;

/// Everything the pipeline's tasks share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PipelineParts {
    pub store: Store,
    pub queue: JobQueue,
    pub client: AniListClient,
    pub events: EventBus,
    pub notices: broadcast::Sender<Notice>,
    pub failpoints: FailPoints,
    pub clock: Arc<dyn Clock>,
    pub cache: Arc<ReadCache>,
    /// Anime stored more recently than this are walked through, not fetched again.
    pub fresh_for: Duration,
    /// How long the batcher waits for more ids before it sends a partial batch.
    pub batch_window: Duration,
    /// How long the flusher waits before it tries a failed commit again.
    pub commit_backoff: CommitBackoff,
    /// Requests one item may cost without its answer ever being stored (a job that keeps
    /// killing its worker) before it is failed.
    pub max_fetches: u32,
    /// How long the queue keeps a finished job.
    pub retention: Duration,
    /// Cancelled to stop gracefully.
    pub shutdown: CancellationToken,
    /// Tripped when a backend cannot go on.
    pub halt: HaltSwitch,
}

/// The flusher's wait between tries of a failed commit: `first`, doubling up to `max`. Ten
/// tries at the shipped values span about half a minute, long enough for a lock or a busy
/// disk to pass; tests shorten it rather than sleep through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommitBackoff {
    pub first: Duration,
    pub max: Duration,
}

impl CommitBackoff {
    pub(crate) const SHIPPED: Self = Self {
        first: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };
}

/// What a panic said, for the reason a failed item or a halt carries.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
