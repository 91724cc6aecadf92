//! `status()`: progress per import with an ETA from the rate budget, queue depth per lane and
//! the budget's state, from this process or from the worker process's published snapshot.

use serde::Serialize;

use super::Importer;
use crate::error::Error;
use crate::queue::QueueDepth;
use crate::store::{ImportProgress, Store, unix_ms_now};
use crate::upstream::{BudgetState, MAX_BATCH};

/// A snapshot older than this means its process is gone.
const STALE_AFTER_MS: i64 = 5_000;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub imports: Vec<ImportStatus>,
    /// Queue depth per lane and state; `None` when no live process reported it.
    pub queue: Option<QueueDepth>,
    pub budget: Option<BudgetState>,
    /// The process running the workers, if one is live.
    pub worker: Option<WorkerInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub pid: u32,
    pub this_process: bool,
    pub seen_ms_ago: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportStatus {
    #[serde(flatten)]
    pub progress: ImportProgress,
    /// "running", "done" or "done_with_failures".
    pub state: &'static str,
    /// Seconds until the queued items are fetched at the budget's current pace.
    pub eta_secs: Option<f64>,
}

impl Importer {
    pub async fn status(&self) -> Result<Status, Error> {
        let queue = self.queue.depth().await.ok();
        let budget = self.client.budget().state();
        let worker = self.is_running().await.then(|| WorkerInfo {
            pid: std::process::id(),
            this_process: true,
            seen_ms_ago: 0,
        });
        status_from(&self.store, queue, Some(budget), worker).await
    }
}

/// Status read by a process that does not own the queue: progress from SQLite, budget and
/// queue from the worker process's snapshot if it is live.
pub async fn status_of_store(store: &Store) -> Result<Status, Error> {
    let runtime = store.runtime().await?;
    let live = runtime.filter(|r| unix_ms_now() - r.updated_at_ms < STALE_AFTER_MS);
    let (queue, budget, worker) = match live {
        Some(r) => {
            let snapshot: serde_json::Value = serde_json::from_str(&r.snapshot).unwrap_or_default();
            (
                serde_json::from_value(snapshot["queue"].clone()).ok(),
                serde_json::from_value(snapshot["budget"].clone()).ok(),
                Some(WorkerInfo {
                    pid: r.pid,
                    this_process: false,
                    seen_ms_ago: unix_ms_now() - r.updated_at_ms,
                }),
            )
        }
        None => (None, None, None),
    };
    status_from(store, queue, budget, worker).await
}

async fn status_from(
    store: &Store,
    queue: Option<QueueDepth>,
    budget: Option<BudgetState>,
    worker: Option<WorkerInfo>,
) -> Result<Status, Error> {
    let imports = store
        .import_progress(None)
        .await?
        .into_iter()
        .map(|progress| {
            let state = match (progress.queued, progress.failed) {
                (0, 0) => "done",
                (0, _) => "done_with_failures",
                _ => "running",
            };
            let eta_secs = budget
                .as_ref()
                .filter(|_| worker.is_some())
                .map(|b| eta(progress.queued, b));
            ImportStatus {
                progress,
                state,
                eta_secs,
            }
        })
        .collect();
    Ok(Status {
        imports,
        queue,
        budget,
        worker,
    })
}

/// Requests left (50 ids each, at least one per remaining level we cannot see, so a lower
/// bound) spent at the budget's pace, plus any park in force.
fn eta(queued: u64, budget: &BudgetState) -> f64 {
    if queued == 0 {
        return 0.0;
    }
    let requests = queued.div_ceil(MAX_BATCH as u64) as f64;
    let parked = budget.parked_for_ms.unwrap_or(0) as f64 / 1000.0;
    let per_minute = if budget.pace_per_minute > 0.0 {
        budget.pace_per_minute
    } else {
        f64::from(budget.limit_per_window) * 60.0 / budget.window_secs.max(1.0)
    };
    parked + requests * 60.0 / per_minute.max(f64::MIN_POSITIVE)
}
