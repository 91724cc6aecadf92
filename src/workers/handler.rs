//! What one fetch job does: hand its id to the batcher and wait until the flusher has
//! committed the answer. If the batcher or flusher restarts under it, it asks again; if the
//! pipeline stops, it lets go without spending an attempt; if it panics, its item is failed
//! with the reason, so the job never ends with its item unsettled.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::parts::{PipelineParts, panic_message};
use super::release::release_job;
use super::request::{FetchRequest, FlushWork, Reply, Settlement};
use crate::queue::{FetchJob, JobContext, JobFailure, JobHandler};

/// Times a job asks again after its answer was lost to a restarting batcher or flusher.
const MAX_ASKS: usize = 4;

pub(crate) fn job_handler(
    parts: PipelineParts,
    batcher: mpsc::UnboundedSender<FetchRequest>,
    flusher: mpsc::UnboundedSender<FlushWork>,
) -> JobHandler {
    Arc::new(move |job: FetchJob, ctx: JobContext| {
        let parts = parts.clone();
        let batcher = batcher.clone();
        let flusher = flusher.clone();
        Box::pin(async move {
            let run = AssertUnwindSafe(handle(&parts, &batcher, &flusher, job.clone(), ctx));
            match run.catch_unwind().await {
                Ok(reply) => reply,
                Err(panic) => {
                    let reason = format!("the fetch job panicked: {}", panic_message(panic));
                    settle(&flusher, job, ctx, Settlement::Failed(reason.clone()))
                        .await
                        .unwrap_or(Err(JobFailure::Retry(reason)))
                }
            }
        })
    })
}

async fn handle(
    parts: &PipelineParts,
    batcher: &mpsc::UnboundedSender<FetchRequest>,
    flusher: &mpsc::UnboundedSender<FlushWork>,
    job: FetchJob,
    ctx: JobContext,
) -> Reply {
    if parts.failpoints.check("handler.panic").is_some() {
        panic!("failure point handler.panic fired");
    }
    // A job re-delivered beyond its attempts (its worker kept dying with it in hand) would
    // otherwise loop forever: it fails with the reason.
    if ctx.attempt > ctx.max_attempts && job.import_id.is_some() {
        let reason = format!(
            "gave up after {} deliveries that never finished (its worker kept stopping)",
            ctx.attempt
        );
        if let Some(reply) = settle(flusher, job.clone(), ctx, Settlement::Failed(reason)).await {
            return reply;
        }
    }
    for _ in 0..MAX_ASKS {
        let (reply, answer) = oneshot::channel();
        let request = FetchRequest {
            job: job.clone(),
            lane: ctx.lane,
            last_attempt: ctx.is_last_attempt(),
            reply,
        };
        if batcher.send(request).is_err() {
            break;
        }
        match answer.await {
            Ok(reply) => return reply,
            // The answer was dropped: a graceful stop, or a batcher or flusher that restarted.
            Err(_) if parts.shutdown.is_cancelled() || parts.halt.is_tripped() => break,
            Err(_) => continue,
        }
    }
    // The pipeline is stopping: hand the item to a new job; this one ends as done.
    release_job(parts, &job).await;
    Ok(())
}

/// Has the flusher settle this job's item without a request; `None` if it is gone.
async fn settle(
    flusher: &mpsc::UnboundedSender<FlushWork>,
    job: FetchJob,
    ctx: JobContext,
    settlement: Settlement,
) -> Option<Reply> {
    let (reply, answer) = oneshot::channel();
    let request = FetchRequest {
        job,
        lane: ctx.lane,
        last_attempt: true,
        reply,
    };
    flusher
        .send(FlushWork::Settle(vec![(request, settlement)]))
        .ok()?;
    answer.await.ok()
}
