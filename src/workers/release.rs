//! Letting jobs go without spending an attempt: at a graceful stop (or a halt), a job still
//! waiting for its answer hands its item to a new job (the item's round goes up and the new
//! job is pushed), then returns as done. If the store cannot take that write, the item stays
//! queued under a finished job, and start-up reconciliation pushes it again.

use super::parts::PipelineParts;
use super::request::FetchRequest;
use crate::queue::{FetchJob, Lane};
use crate::store::QueuedItem;

/// Releases these jobs' items and answers every request as done.
pub(crate) async fn release(parts: &PipelineParts, requests: Vec<FetchRequest>) {
    if requests.is_empty() {
        return;
    }
    let items: Vec<QueuedItem> = requests
        .iter()
        .filter_map(|r| {
            Some(QueuedItem {
                import_id: r.job.import_id?,
                anime_id: r.job.anime_id,
                depth: r.job.depth,
                round: r.job.round,
            })
        })
        .collect();
    hand_over(parts, &items).await;
    for request in requests {
        let _ = request.reply.send(Ok(()));
    }
}

/// Releases one job whose request never got an answer.
pub(crate) async fn release_job(parts: &PipelineParts, job: &FetchJob) {
    let Some(import_id) = job.import_id else {
        return;
    };
    let item = QueuedItem {
        import_id,
        anime_id: job.anime_id,
        depth: job.depth,
        round: job.round,
    };
    hand_over(parts, &[item]).await;
}

async fn hand_over(parts: &PipelineParts, items: &[QueuedItem]) {
    if items.is_empty() {
        return;
    }
    let now = parts.clock.now_ms();
    match crate::producer::requeue(&parts.store, items, now).await {
        Ok(to_push) if !to_push.is_empty() => {
            let jobs: Vec<FetchJob> = to_push.iter().map(FetchJob::from).collect();
            if let Err(e) = parts.queue.push(Lane::Background, &jobs).await {
                tracing::warn!(error = %e, "could not push released items; the next start will");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not release items; the next start re-queues them");
        }
    }
}
