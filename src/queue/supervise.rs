//! Starts every worker slot of both lanes and keeps each alive: a worker killed by a backend
//! error is restarted with exponential backoff and a fresh name until shutdown.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RunOptions;
use super::error::QueueError;
use super::job::{JobHandler, Lane};
use super::name::unique_worker_name;
use super::store::JobQueue;
use super::worker::run_worker;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing was healthy; its next failure starts the
/// backoff again from the minimum.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// The running workers of one `JobQueue::run`.
#[derive(Debug)]
pub struct WorkerSet {
    handles: Vec<JoinHandle<()>>,
    names: Vec<Arc<Mutex<String>>>,
}

impl WorkerSet {
    /// Waits until every worker has stopped (after `shutdown` is cancelled, each drains its
    /// in-flight jobs for at most `RunOptions::grace`).
    pub async fn join(self) {
        for handle in self.handles {
            if let Err(err) = handle.await {
                tracing::error!(%err, "a queue worker supervisor ended abnormally");
            }
        }
    }

    /// The current apalis worker names, one per slot (a restarted slot shows its new name).
    pub fn names(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|name| name.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

impl JobQueue {
    /// Starts the workers and returns at once; they run until `shutdown` is cancelled. The
    /// interactive lane gets its own always-polling worker(s) so a click never waits behind
    /// an import. Must be called inside a tokio runtime.
    pub fn run(
        &self,
        options: RunOptions,
        handler: JobHandler,
        shutdown: CancellationToken,
    ) -> Result<WorkerSet, QueueError> {
        options.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| QueueError::NoRuntime)?;
        let slots = std::iter::repeat_n(Lane::Interactive, options.interactive_workers)
            .chain(std::iter::repeat_n(Lane::Background, options.workers));
        let mut set = WorkerSet {
            handles: Vec::new(),
            names: Vec::new(),
        };
        for lane in slots {
            let name = Arc::new(Mutex::new(unique_worker_name(lane)));
            let slot = Slot {
                queue: self.clone(),
                lane,
                options: options.clone(),
                handler: handler.clone(),
                shutdown: shutdown.clone(),
                name: name.clone(),
            };
            set.handles.push(runtime.spawn(slot.supervise()));
            set.names.push(name);
        }
        Ok(set)
    }
}

/// One worker position, restarted under a new name whenever its worker dies.
struct Slot {
    queue: JobQueue,
    lane: Lane,
    options: RunOptions,
    handler: JobHandler,
    shutdown: CancellationToken,
    name: Arc<Mutex<String>>,
}

impl Slot {
    async fn supervise(self) {
        let mut backoff = MIN_BACKOFF;
        let mut first = true;
        while !self.shutdown.is_cancelled() {
            let name = if first {
                self.current_name()
            } else {
                self.rename()
            };
            first = false;
            let started = Instant::now();
            let ended = run_worker(
                &self.queue,
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
                Ok(()) => tracing::warn!(worker = %name, "queue worker ended by itself"),
                Err(err) => tracing::error!(worker = %name, %err, "queue worker failed"),
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

    fn current_name(&self) -> String {
        self.name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn rename(&self) -> String {
        let fresh = unique_worker_name(self.lane);
        *self.name.lock().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        fresh
    }
}
