//! What one fetch job does: skip a re-delivered job whose item is already settled, otherwise
//! hand the id to the batcher and wait until the flusher has committed the answer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::request::FetchRequest;
use crate::queue::{FetchJob, JobContext, JobFailure, JobHandler};
use crate::store::{ItemState, Store};

pub(crate) fn job_handler(
    store: Store,
    batcher: mpsc::UnboundedSender<FetchRequest>,
) -> JobHandler {
    Arc::new(move |job: FetchJob, ctx: JobContext| {
        let store = store.clone();
        let batcher = batcher.clone();
        Box::pin(async move {
            if let Some(import_id) = job.import_id {
                match store.item_state(import_id, job.anime_id).await {
                    Ok(Some(ItemState::Queued)) => {}
                    // Delivered again after it was written (at-least-once): nothing to do.
                    Ok(Some(ItemState::Done | ItemState::Failed)) => return Ok(()),
                    Ok(None) => {
                        return Err(JobFailure::Abort(format!(
                            "import {import_id} has no item for anime {}",
                            job.anime_id
                        )));
                    }
                    Err(e) => return Err(JobFailure::Retry(format!("store read failed: {e}"))),
                }
            }
            let (reply, answer) = oneshot::channel();
            let request = FetchRequest {
                job,
                lane: ctx.lane,
                last_attempt: ctx.is_last_attempt(),
                reply,
            };
            if batcher.send(request).is_err() {
                return Err(JobFailure::Retry("the pipeline is shutting down".into()));
            }
            answer.await.unwrap_or_else(|_| {
                Err(JobFailure::Retry(
                    "the pipeline stopped before the answer was written".into(),
                ))
            })
        })
    })
}
