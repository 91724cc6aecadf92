//! The messages between a job, the batcher and the flusher, and the notices the flusher
//! publishes for whoever waits on an anime (open-on-click).

use tokio::sync::oneshot;

use crate::anime::AnimeId;
use crate::queue::{FetchJob, JobFailure, Lane};
use crate::upstream::{BatchAnswer, UpstreamError};

/// One job's ask: fetch this anime, then tell me how it ended once it is written.
pub(crate) struct FetchRequest {
    pub job: FetchJob,
    pub lane: Lane,
    /// No delivery follows this one: a failure now is final and is recorded as such.
    pub last_attempt: bool,
    pub reply: oneshot::Sender<Result<(), JobFailure>>,
}

/// One upstream request's answer with the jobs that were waiting on it.
pub(crate) struct FetchedBatch {
    pub outcome: Result<BatchAnswer, UpstreamError>,
    pub requests: Vec<FetchRequest>,
}

/// Published after each flush commits, one per anime it settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub anime_id: AnimeId,
    pub outcome: NoticeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeOutcome {
    /// Fetched and committed: the store has it.
    Stored,
    /// AniList left it out of the answer: unknown, deleted or adult.
    NotFound,
    /// The fetch failed for good (a permanent error, or the last attempt).
    Failed(String),
}
