//! One running pipeline in this process: the batcher and the flusher (each supervised and
//! restarted if it panics), the apalis workers of both lanes, and the graceful stop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::batcher::Batcher;
use super::flusher::Flusher;
use super::handler::job_handler;
use super::parts::{PipelineParts, panic_message};
use super::request::{FetchRequest, FlushWork};
use crate::halt::{Halt, HaltKind};
use crate::queue::{QueueError, RunOptions, WorkerSet};

/// A started pipeline; `stop` ends it.
pub(crate) struct Pipeline {
    parts: PipelineParts,
    workers: WorkerSet,
    tasks: Vec<JoinHandle<()>>,
}

/// A task that panics this often within a minute is broken, not unlucky.
const MAX_RESTARTS_PER_MINUTE: u32 = 5;

impl Pipeline {
    pub(crate) fn start(parts: PipelineParts, options: RunOptions) -> Result<Self, QueueError> {
        let (request_tx, request_rx) = mpsc::unbounded_channel::<FetchRequest>();
        let (flush_tx, flush_rx) = mpsc::unbounded_channel::<FlushWork>();
        let request_rx = Arc::new(Mutex::new(request_rx));
        let flush_rx = Arc::new(Mutex::new(flush_rx));
        let mut tasks = Vec::new();
        {
            let parts = parts.clone();
            let flush_tx = flush_tx.clone();
            tasks.push(supervised("batcher", parts.clone(), move || {
                Batcher::new(parts.clone(), request_rx.clone(), flush_tx.clone()).run()
            }));
        }
        {
            let parts = parts.clone();
            tasks.push(supervised("flusher", parts.clone(), move || {
                Flusher::new(parts.clone(), flush_rx.clone()).run()
            }));
        }
        let handler = job_handler(parts.clone(), request_tx, flush_tx);
        // A halt stops the workers as a graceful stop does.
        let stop = parts.shutdown.clone();
        let halt = parts.halt.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = halt.tripped() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        }));
        let workers = parts.queue.run(
            options,
            handler,
            parts.shutdown.clone(),
            parts.halt.clone(),
            parts.store.outage().clone(),
        )?;
        Ok(Self {
            parts,
            workers,
            tasks,
        })
    }

    /// Stops gracefully: the workers stop fetching, jobs waiting for a request are handed to
    /// new jobs (no attempt spent), requests in flight are committed (within the queue's
    /// grace period), then the batcher and flusher stop.
    pub(crate) async fn stop(self) {
        self.parts.shutdown.cancel();
        self.workers.join().await;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Runs the task `make` builds, and builds it again if it panics; a task that keeps
/// panicking halts the pipeline rather than looping.
pub(crate) fn supervised<F, Fut>(
    name: &'static str,
    parts: PipelineParts,
    make: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut recent: Vec<Instant> = Vec::new();
        loop {
            let task = tokio::spawn(make());
            // Aborting the supervisor aborts the task it watches.
            let _abort = AbortOnDrop(task.abort_handle());
            match task.await {
                Ok(()) => return,
                Err(join) if join.is_panic() => {
                    let message = panic_message(join.into_panic());
                    tracing::error!(task = name, %message, "pipeline task panicked; restarting it");
                    recent.retain(|t| t.elapsed() < Duration::from_secs(60));
                    recent.push(Instant::now());
                    if recent.len() as u32 > MAX_RESTARTS_PER_MINUTE {
                        parts.halt.trip(Halt {
                            kind: HaltKind::Broken,
                            message: format!(
                                "the {name} panicked {} times within a minute (last: \
                                 {message}); this is a bug in franchise, please report it. \
                                 Nothing stored was lost",
                                recent.len()
                            ),
                        });
                        return;
                    }
                    if parts.shutdown.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => return,
            }
        }
    })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
