//! Builds and runs ONE apalis-redb worker incarnation on one lane until it fails or `shutdown` is
//! cancelled, bounding the graceful drain of in-flight jobs by `RunOptions::grace`.

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use tokio_util::sync::CancellationToken;

use super::EmbeddedQueue;
use super::lane_config;
use crate::queue::QueueError;
use crate::queue::config::RunOptions;
use crate::queue::handler::{Adapter, Delivery};
use crate::queue::job::{FetchJob, JobHandler, Lane};
use crate::queue::supervise::{stopped, within_grace};

pub(super) async fn run_worker(
    queue: &EmbeddedQueue,
    lane: Lane,
    name: &str,
    options: &RunOptions,
    handler: JobHandler,
    shutdown: &CancellationToken,
) -> Result<(), QueueError> {
    let storage = queue.storage(lane_config(lane, options.concurrency, options.heartbeat))?;
    let adapter = Adapter {
        handler,
        lane,
        fallback_max_attempts: options.max_attempts,
    };
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .concurrency(options.concurrency)
        .build(move |job: FetchJob, delivery: Delivery| adapter.clone().call(job, delivery));

    let Some(ended) =
        within_grace(worker.run_until(stopped(shutdown)), shutdown, options.grace).await
    else {
        return Err(QueueError::Backend {
            location: queue.path().display().to_string(),
            operation: "stopping a worker",
            reason: format!(
                "in-flight jobs did not finish within {:?}; they were abandoned and the next \
                 run re-queues them as orphans",
                options.grace
            ),
        });
    };
    ended.map_err(|err| QueueError::Backend {
        location: queue.path().display().to_string(),
        operation: "running a worker",
        reason: err.to_string(),
    })
}
