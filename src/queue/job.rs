//! What travels through the queue (a fetch job and its lane) and the contract a job handler
//! fulfils: what it is told about a delivery and how it reports failure.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::anime::AnimeId;

/// One unit of work: fetch anime `anime_id` for import `import_id` (None = a lazy
/// open-on-click job, which belongs to no import and so needs no de-duplication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchJob {
    pub import_id: Option<i64>,
    pub anime_id: AnimeId,
    pub depth: u32,
    /// The item's round when this job was pushed (jobs pushed before rounds existed read 0).
    #[serde(default)]
    pub round: u32,
}

impl FetchJob {
    /// A click: fetch this anime ahead of all background work.
    pub(crate) fn open(anime_id: AnimeId) -> Self {
        Self {
            import_id: None,
            anime_id,
            depth: 0,
            round: 0,
        }
    }

    /// The key of an import job: the same (import, anime, round) always gives the same key,
    /// so pushing it again is a no-op while the queue knows it, and the queue can be asked
    /// where it stands. The embedded queue files it as the task's idempotency key beside a
    /// time-ordered id, so its tasks append in order.
    pub(crate) fn queue_key(&self) -> Option<String> {
        let import = self.import_id?;
        Some(format!("{import}:{}:{}", self.anime_id, self.round))
    }

    /// The same key packed into a ULID, the task's id on PostgreSQL (apalis-postgres stores
    /// ids as ULIDs), and the id the embedded queue gave import jobs before it had keys.
    pub(crate) fn task_id(&self) -> Option<ulid::Ulid> {
        let import = u64::try_from(self.import_id?).ok()?;
        let low = (u64::from(self.anime_id.get()) << 32) | u64::from(self.round);
        Some(ulid::Ulid::from(
            (u128::from(import) << 64) | u128::from(low),
        ))
    }
}

/// The two lanes. Interactive work (a click) is served ahead of every background import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
pub(crate) struct JobContext {
    pub lane: Lane,
    /// 1 on the first run, `max_attempts` on the last.
    pub attempt: usize,
    pub max_attempts: usize,
}

impl JobContext {
    pub(crate) fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Why a job did not succeed, and whether the queue should run it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JobFailure {
    /// Transient: the queue runs the job again until `max_attempts`.
    #[error("retryable failure: {0}")]
    Retry(String),
    /// Permanent: the job is marked failed at once (its item already says why).
    #[error("permanent failure: {0}")]
    Abort(String),
}

/// What runs one job. Returning Ok acks the job (the queue marks it done).
pub(crate) type JobHandler =
    Arc<dyn Fn(FetchJob, JobContext) -> BoxFuture<'static, Result<(), JobFailure>> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_stable_per_round_and_distinct_across_rounds_and_items() {
        let job = |import, anime, round| FetchJob {
            import_id: Some(import),
            anime_id: AnimeId::new(anime).unwrap(),
            depth: 3,
            round,
        };
        let a = job(7, 16498, 0).task_id().unwrap();
        assert_eq!(a, job(7, 16498, 0).task_id().unwrap());
        assert_ne!(a, job(7, 16498, 1).task_id().unwrap());
        assert_ne!(a, job(8, 16498, 0).task_id().unwrap());
        assert_ne!(a, job(7, 16499, 0).task_id().unwrap());
        // The depth is not part of the identity: a lowered depth is the same job.
        let mut deeper = job(7, 16498, 0);
        deeper.depth = 9;
        assert_eq!(a, deeper.task_id().unwrap());
        // Its text form round-trips as a ULID, as both queue backends store it.
        assert_eq!(a.to_string().parse::<ulid::Ulid>().unwrap(), a);
        assert_eq!(FetchJob::open(AnimeId::new(1).unwrap()).task_id(), None);
        // The key says the same triple, and nothing else.
        assert_eq!(job(7, 16498, 0).queue_key().as_deref(), Some("7:16498:0"));
        assert_eq!(deeper.queue_key(), job(7, 16498, 0).queue_key());
        assert_ne!(job(7, 16498, 1).queue_key(), job(7, 16498, 0).queue_key());
        assert_eq!(FetchJob::open(AnimeId::new(1).unwrap()).queue_key(), None);
    }

    #[test]
    fn jobs_pushed_before_rounds_existed_still_decode() {
        let old = r#"{"import_id":3,"anime_id":21,"depth":1}"#;
        let job: FetchJob = serde_json::from_str(old).unwrap();
        assert_eq!(job.round, 0);
        assert_eq!(job.import_id, Some(3));
    }
}
