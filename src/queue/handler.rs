//! Adapts the crate's JobHandler to an apalis task function: tells the handler which attempt
//! this is, and maps its JobFailure onto the apalis errors that mean retry and abort.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use apalis::prelude::{AbortError, Attempt, BoxDynError, FromRequest, Task};
use futures::FutureExt;

use super::job::{FetchJob, JobContext, JobFailure, JobHandler, Lane};

/// What apalis knows about a delivery. The attempt counter is shared with apalis, which bumps
/// it just before the handler's future first runs, so it is read late (in `Adapter::call`).
pub(crate) struct Delivery {
    attempt: Attempt,
    max_attempts: Option<usize>,
}

impl FromRequest<Task<FetchJob>> for Delivery {
    type Error = Infallible;

    async fn from_request(task: &Task<FetchJob>) -> Result<Self, Infallible> {
        Ok(Delivery {
            attempt: task.ctx().raw_attempt().clone(),
            max_attempts: task.ctx().max_attempts(),
        })
    }
}

/// The handler plus what it needs to build a JobContext.
#[derive(Clone)]
pub(crate) struct Adapter {
    pub(crate) handler: JobHandler,
    pub(crate) lane: Lane,
    pub(crate) fallback_max_attempts: usize,
}

impl Adapter {
    /// Runs the handler once. A Retry becomes a plain error (apalis-redb schedules another
    /// attempt while any remain); an Abort becomes apalis' AbortError (failed at once). Never
    /// RetryAfterError or DeferredError: those can leave tasks stuck. The workers' handler
    /// catches its own panics and records the item's failure; a panic that still escapes here
    /// leaves the job to run again rather than ending it with its item unsettled.
    pub(crate) async fn call(self, job: FetchJob, delivery: Delivery) -> Result<(), BoxDynError> {
        let ctx = JobContext {
            lane: self.lane,
            attempt: delivery.attempt.current().max(1),
            max_attempts: delivery.max_attempts.unwrap_or(self.fallback_max_attempts),
        };
        let anime_id = job.anime_id;
        let outcome = AssertUnwindSafe((self.handler)(job, ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(JobFailure::Retry(format!(
                    "the handler panicked while fetching anime {anime_id}"
                )))
            });
        match outcome {
            Ok(()) => Ok(()),
            Err(retry @ JobFailure::Retry(_)) => Err(Box::new(retry)),
            Err(abort @ JobFailure::Abort(_)) => Err(Box::new(AbortError::new(abort))),
        }
    }
}
