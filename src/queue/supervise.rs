//! Starts every worker slot of both lanes and keeps each alive: a worker killed by a backend
//! error is restarted with exponential backoff and a fresh name until shutdown, unless the
//! backend itself is broken (a full disk, a poisoned file): then the pipeline halts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RunOptions;
use super::error::QueueError;
use super::job::{JobHandler, Lane};
use super::name::unique_worker_name;
use super::{JobQueue, QueueDriver};
use crate::halt::{Halt, HaltSwitch};
use crate::outage::DatabaseOutage;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing was healthy; its next failure starts the
/// backoff again from the minimum.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Resolves once `shutdown` is cancelled: the signal apalis' `run_until` takes to stop a
/// worker gracefully (stop fetching, finish in-flight jobs, return unstarted ones).
pub(crate) fn stopped(
    shutdown: &CancellationToken,
) -> impl Future<Output = Result<(), std::io::Error>> + Send + 'static {
    let token = shutdown.clone();
    async move {
        token.cancelled().await;
        Ok(())
    }
}

/// Runs one worker incarnation (`run`, started with [`stopped`]) and bounds its graceful
/// drain after `shutdown` by `grace`. `None`: the grace ran out and the in-flight jobs were
/// abandoned; the queue gives them back as orphans.
pub(crate) async fn within_grace<T>(
    run: impl Future<Output = T>,
    shutdown: &CancellationToken,
    grace: Duration,
) -> Option<T> {
    tokio::pin!(run);
    tokio::select! {
        ended = &mut run => Some(ended),
        () = shutdown.cancelled() => tokio::time::timeout(grace, &mut run).await.ok(),
    }
}

/// The running workers of one `JobQueue::run`.
#[derive(Debug)]
pub(crate) struct WorkerSet {
    handles: Vec<JoinHandle<()>>,
}

impl WorkerSet {
    /// Waits until every worker has stopped (after `shutdown` is cancelled, each drains its
    /// in-flight jobs for at most `RunOptions::grace`).
    pub(crate) async fn join(self) {
        for handle in self.handles {
            if let Err(err) = handle.await {
                tracing::error!(%err, "a queue worker supervisor ended abnormally");
            }
        }
    }
}

impl JobQueue {
    /// Starts the workers and returns at once; they run until `shutdown` is cancelled. The
    /// interactive lane gets its own always-polling worker(s) so a click never waits behind
    /// an import. Must be called inside a tokio runtime.
    pub(crate) fn run(
        &self,
        options: RunOptions,
        handler: JobHandler,
        shutdown: CancellationToken,
        halt: HaltSwitch,
        outage: DatabaseOutage,
    ) -> Result<WorkerSet, QueueError> {
        options.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| QueueError::NoRuntime)?;
        let slots = std::iter::repeat_n(Lane::Interactive, options.interactive_workers)
            .chain(std::iter::repeat_n(Lane::Background, options.workers));
        let handles = slots
            .map(|lane| {
                let slot = Slot {
                    driver: self.driver(),
                    lane,
                    options: options.clone(),
                    handler: handler.clone(),
                    shutdown: shutdown.clone(),
                    halt: halt.clone(),
                    outage: outage.clone(),
                };
                runtime.spawn(slot.supervise())
            })
            .collect();
        Ok(WorkerSet { handles })
    }
}

/// One worker position, restarted under a new name whenever its worker dies.
struct Slot {
    driver: Arc<dyn QueueDriver>,
    lane: Lane,
    options: RunOptions,
    handler: JobHandler,
    shutdown: CancellationToken,
    halt: HaltSwitch,
    /// A worker failing because the database is gone is said once for the process.
    outage: DatabaseOutage,
}

impl Slot {
    async fn supervise(self) {
        let mut backoff = MIN_BACKOFF;
        while !self.shutdown.is_cancelled() {
            // A fresh name every incarnation: a same-named worker is taken for the old one.
            let name = unique_worker_name(self.lane);
            let started = Instant::now();
            let ended = self
                .driver
                .run_worker(
                    self.lane,
                    &name,
                    &self.options,
                    self.handler.clone(),
                    &self.shutdown,
                )
                .await;
            match ended {
                Ok(()) if self.shutdown.is_cancelled() => {
                    tracing::info!(worker = %name, "queue worker stopped");
                    return;
                }
                Err(err) if self.shutdown.is_cancelled() => {
                    tracing::warn!(worker = %name, %err, "queue worker did not stop cleanly");
                    return;
                }
                _ => {}
            }
            // Restarting on a broken backend only repeats the failure: find out which it is.
            match (self.driver.health().await, ended) {
                (Err(err), _) if err.is_fatal() => {
                    self.halt.trip(Halt::from(&err));
                    return;
                }
                // The database is gone for now: the process says so once, not every worker.
                (Err(err), _) => self.outage.lost(&self.driver.location(), &err),
                (Ok(()), Ok(())) => {
                    tracing::warn!(worker = %name, "queue worker ended by itself");
                }
                (Ok(()), Err(err)) => tracing::error!(worker = %name, %err, "queue worker failed"),
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff = MIN_BACKOFF;
            }
            tracing::info!(lane = %self.lane, ?backoff, "restarting queue worker");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_that_drains_in_time_ends_with_its_result() {
        let shutdown = CancellationToken::new();
        let run = {
            let stop = stopped(&shutdown);
            async move { stop.await.map(|()| "drained") }
        };
        shutdown.cancel();
        let ended = within_grace(run, &shutdown, Duration::from_secs(5)).await;
        assert_eq!(ended.map(Result::unwrap), Some("drained"));
    }

    #[tokio::test]
    async fn a_run_still_busy_when_the_grace_runs_out_is_abandoned() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let stuck = std::future::pending::<()>();
        assert_eq!(
            within_grace(stuck, &shutdown, Duration::from_millis(20)).await,
            None
        );
    }
}
