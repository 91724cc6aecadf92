//! The messages between a job, the batcher and the flusher, and the notices the flusher
//! publishes for whoever waits on one anime (open-on-click).

use tokio::sync::oneshot;

use crate::anime::AnimeId;
use crate::queue::{FetchJob, JobFailure, Lane};
use crate::upstream::{BatchAnswer, UpstreamError};

/// How a job's wait ended.
pub(crate) type Reply = Result<(), JobFailure>;

/// One job's ask: fetch this anime, then tell me how it ended once it is written.
#[derive(Debug)]
pub(crate) struct FetchRequest {
    pub job: FetchJob,
    pub lane: Lane,
    /// No delivery follows this one: a failure now is final and is recorded as such.
    pub last_attempt: bool,
    pub reply: oneshot::Sender<Reply>,
}

/// How an item is settled without a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Another fetch stored the anime after this item was queued.
    FromStore,
    /// AniList was asked after this item was queued and did not have it.
    NotFound,
    /// The item fails with this reason (a panicking handler, a job that kept dying).
    Failed(String),
}

/// Work for the flusher: one upstream answer with the jobs waiting on it, or items settled
/// without a request.
#[derive(Debug)]
pub(crate) enum FlushWork {
    Fetched {
        outcome: Result<BatchAnswer, UpstreamError>,
        requests: Vec<FetchRequest>,
        /// Told once the answer is committed (or dropped), so the batcher knows the ids are
        /// no longer in flight.
        landed: Option<oneshot::Sender<()>>,
    },
    Settle(Vec<(FetchRequest, Settlement)>),
}

/// Published after each flush commits, one per anime it settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub anime_id: AnimeId,
    pub outcome: NoticeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoticeOutcome {
    /// Fetched and committed: the store has it.
    Stored,
    /// AniList left it out of the answer: unknown, deleted or adult.
    NotFound,
    /// The fetch failed for good (a permanent error, or the last attempt).
    Failed(String),
}
