//! One running pipeline in this process: the batcher and the flusher (each supervised and
//! restarted if it panics), the apalis workers of both lanes, and the graceful stop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::batcher::Batcher;
use super::flusher::Flusher;
use super::handler::job_handler;
use super::request::{FetchRequest, FlushWork, Notice};
use crate::cache::ReadCache;
use crate::clock::Clock;
use crate::events::EventBus;
use crate::failpoint::FailPoints;
use crate::halt::{Halt, HaltKind, HaltSwitch};
use crate::queue::{JobQueue, QueueError, RunOptions, WorkerSet};
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
    /// Requests one item may cost without its answer ever being stored (a job that keeps
    /// killing its worker) before it is failed.
    pub max_fetches: u32,
    /// Cancelled to stop gracefully.
    pub shutdown: CancellationToken,
    /// Tripped when a backend cannot go on.
    pub halt: HaltSwitch,
}

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
        let workers =
            parts
                .queue
                .run(options, handler, parts.shutdown.clone(), parts.halt.clone())?;
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

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
