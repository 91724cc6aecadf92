//! What the process running the workers does besides fetching: at start, push whatever the
//! store says is queued and queue again items whose job the queue already finished; then,
//! every second, pick up work other processes handed off, publish its heartbeat (with the
//! queue depth only it can read, on the embedded backend) and checkpoint the store.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::halt::Halt;
use crate::queue::{FetchJob, JobPresence, Lane, host_name};
use crate::store::{ProcessInfo, ProcessRole, QueuedItem};
use crate::workers::PipelineParts;

/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(1);
/// Finished jobs past the retention are pruned at start and then once a minute.
const PRUNE_EVERY_TICKS: u64 = 60;
/// Items checked against the queue per presence query.
const PRESENCE_CHUNK: usize = 1_000;

/// This process as its heartbeat row describes it.
pub(super) struct ProcessCard {
    pub id: String,
    started_at_ms: i64,
    /// Where its local API listens, and whether that is `franchise serve` (API and pages)
    /// rather than the API alone that `work` and `import --wait` answer other terminals on.
    api: Mutex<Option<(String, ProcessRole)>>,
}

impl ProcessCard {
    pub(super) fn new(now_ms: i64) -> Self {
        Self {
            id: format!(
                "{}-{}-{:08x}",
                host_name(),
                std::process::id(),
                rand::random::<u32>()
            ),
            started_at_ms: now_ms,
            api: Mutex::new(None),
        }
    }

    pub(super) fn set_api(&self, api: Option<(String, ProcessRole)>) {
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) = api;
    }

    pub(super) fn info(&self, now_ms: i64, queue: Option<crate::queue::QueueDepth>) -> ProcessInfo {
        let (api_url, role) = match self.api.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some((url, role)) => (Some(url), role),
            None => (None, ProcessRole::Worker),
        };
        ProcessInfo {
            id: self.id.clone(),
            host: host_name(),
            pid: std::process::id(),
            role,
            started_at_ms: self.started_at_ms,
            heartbeat_at_ms: now_ms,
            api_url,
            queue,
        }
    }
}

/// Pushes a job for every queued item (a job the queue already has is skipped): items whose
/// push a crash interrupted, and work other processes recorded.
pub(super) async fn push_unfinished(parts: &PipelineParts) -> Result<(), Error> {
    let items = parts.store.queued_items(0).await?;
    if items.is_empty() {
        return Ok(());
    }
    let jobs: Vec<FetchJob> = items.iter().map(FetchJob::from).collect();
    let pushed = parts.queue.push(Lane::Background, &jobs).await?;
    if pushed > 0 {
        tracing::info!(pushed, "queued unfinished import items again");
    }
    Ok(())
}

/// Items still queued in the store whose job the queue has already finished (a job that
/// ended without its item, from an older franchise or a failure in between) get a new job.
pub(super) async fn reconcile(parts: &PipelineParts) -> Result<usize, Error> {
    let items = parts.store.queued_items(0).await?;
    let mut requeued = 0;
    for chunk in items.chunks(PRESENCE_CHUNK) {
        if parts.shutdown.is_cancelled() {
            break;
        }
        let jobs: Vec<FetchJob> = chunk.iter().map(FetchJob::from).collect();
        let presence = parts.queue.presence(&jobs).await?;
        let finished: Vec<QueuedItem> = chunk
            .iter()
            .zip(presence)
            .filter(|(_, p)| *p == JobPresence::Finished)
            .map(|(item, _)| *item)
            .collect();
        if finished.is_empty() {
            continue;
        }
        let to_push =
            crate::producer::requeue(&parts.store, &finished, parts.clock.now_ms()).await?;
        let jobs: Vec<FetchJob> = to_push.iter().map(FetchJob::from).collect();
        requeued += parts.queue.push(Lane::Background, &jobs).await?;
    }
    if requeued > 0 {
        tracing::warn!(
            requeued,
            "queued items whose job had ended without them again"
        );
    }
    Ok(requeued)
}

pub(super) async fn housekeeping(parts: PipelineParts, card: std::sync::Arc<ProcessCard>) {
    if let Err(e) = reconcile(&parts).await {
        report(&parts, &e, "reconciling the queue with the store");
    }
    let mut handoff_seq = 0;
    let mut tick = tokio::time::interval(EVERY);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = parts.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if ticks.is_multiple_of(PRUNE_EVERY_TICKS) {
            match parts.queue.prune(parts.retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "pruned finished jobs from the queue"),
                Err(e) if parts.store.outage().is_lost() => {
                    tracing::debug!(error = %e, "could not prune finished jobs");
                }
                Err(e) => tracing::warn!(error = %e, "could not prune finished jobs"),
            }
        }
        ticks += 1;
        match pick_up_handoffs(&parts, handoff_seq).await {
            Ok(seq) => handoff_seq = seq,
            Err(e) => report(&parts, &e, "picking up imports recorded by other processes"),
        }
        let depth = parts.queue.depth().await.ok();
        let now = parts.clock.now_ms();
        match parts.store.heartbeat(&card.info(now, depth)).await {
            Ok(()) => parts.store.outage().answered(),
            Err(e) => report(
                &parts,
                &Error::Store(e),
                "publishing this process's heartbeat",
            ),
        }
        if let Err(e) = parts.store.maintain().await {
            tracing::debug!(error = %e, "background checkpoint failed");
        }
    }
}

/// Pushes the queued items of imports other processes recorded (or retried) for us.
async fn pick_up_handoffs(parts: &PipelineParts, after: i64) -> Result<i64, Error> {
    let handoffs = parts.store.handoffs(after).await?;
    let Some(last) = handoffs.last().map(|(seq, _)| *seq) else {
        return Ok(after);
    };
    let imports: Vec<i64> = handoffs
        .iter()
        .map(|(_, import)| *import)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let items = parts.store.queued_items_of(&imports).await?;
    let jobs: Vec<FetchJob> = items.iter().map(FetchJob::from).collect();
    parts.queue.push(Lane::Background, &jobs).await?;
    parts.store.clear_handoffs(last).await?;
    Ok(last)
}

/// A housekeeping failure: fatal ones stop the pipeline, others are logged and retried.
fn report(parts: &PipelineParts, error: &Error, doing: &str) {
    let fatal = match error {
        Error::Store(e) => e
            .failure()
            .is_fatal()
            .then(|| Halt::store(e, &parts.store.location())),
        Error::Queue(e) => e.is_fatal().then(|| Halt::from(e)),
        _ => None,
    };
    match fatal {
        Some(halt) => parts.halt.trip(halt),
        // The database is gone for now: said once for the whole process, not per tick.
        None if error.is_temporary() => parts
            .store
            .outage()
            .lost(&parts.store.location(), &format!("{doing}: {error}")),
        None => tracing::warn!(error = %error, "{doing} failed; trying again"),
    }
}
