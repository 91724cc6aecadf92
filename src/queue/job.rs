//! What travels through the queue (a fetch job and its lane) and the contract a job handler
//! fulfils: what it is told about a delivery and how it reports failure.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::anime::AnimeId;
use crate::store::QueuedItem;

/// One unit of work: fetch anime `anime_id` for import `import_id` (None = a lazy
/// open-on-click job, which belongs to no import and so needs no de-duplication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchJob {
    pub import_id: Option<i64>,
    pub anime_id: AnimeId,
    pub depth: u32,
}

impl FetchJob {
    /// The key that makes re-pushing the same import item a no-op while the queue still knows
    /// it. Open jobs have none: a second click should be answered, not swallowed.
    pub fn idempotency_key(&self) -> Option<String> {
        self.import_id
            .map(|import| format!("import:{import}:anime:{}", self.anime_id))
    }
}

/// An import item waiting for a fetch becomes the job that fetches it.
impl From<&QueuedItem> for FetchJob {
    fn from(item: &QueuedItem) -> Self {
        Self {
            import_id: Some(item.import_id),
            anime_id: item.anime_id,
            depth: item.depth,
        }
    }
}

/// The two queues in the file. apalis-redb ignores task priority, so interactive work gets its
/// own queue and its own always-polling worker instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Interactive,
    Background,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Interactive, Lane::Background];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Background => "background",
        }
    }

    /// The apalis queue name; stable because it names tables inside existing files.
    pub(crate) fn queue_name(self) -> &'static str {
        match self {
            Lane::Interactive => "franchise.fetch.interactive",
            Lane::Background => "franchise.fetch.background",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a handler knows about this delivery, so that on the last attempt it can record a
/// permanent failure itself instead of leaving the import waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobContext {
    pub lane: Lane,
    /// 1 on the first run, `max_attempts` on the last.
    pub attempt: usize,
    pub max_attempts: usize,
}

impl JobContext {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Why a job did not succeed, and whether apalis should run it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// Transient: apalis runs the job again (after `attempt` seconds) until `max_attempts`.
    #[error("retryable failure: {0}")]
    Retry(String),
    /// Permanent: the job is marked failed at once.
    #[error("permanent failure: {0}")]
    Abort(String),
}

/// What runs one job. Returning Ok acks the job (apalis marks it done).
pub type JobHandler =
    Arc<dyn Fn(FetchJob, JobContext) -> BoxFuture<'static, Result<(), JobFailure>> + Send + Sync>;
