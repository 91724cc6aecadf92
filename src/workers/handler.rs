//! What one fetch job does: hand its id to the batcher and wait until the flusher has
//! committed the answer. (Whether a re-delivered job's item is already settled is checked
//! once per batch by the batcher, not once per job.)

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::request::FetchRequest;
use crate::queue::{FetchJob, JobContext, JobFailure, JobHandler};

pub(crate) fn job_handler(batcher: mpsc::UnboundedSender<FetchRequest>) -> JobHandler {
    Arc::new(move |job: FetchJob, ctx: JobContext| {
        let batcher = batcher.clone();
        Box::pin(async move {
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
