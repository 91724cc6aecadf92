//! Running the workers in this process: the batcher, the flusher, the apalis workers of both
//! lanes, and a watcher that picks up imports other processes recorded and publishes our state.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Importer;
use crate::error::Error;
use crate::queue::{RunOptions, WorkerSet};
use crate::store::unix_ms_now;
use crate::workers::{Batcher, Flusher, job_handler};

/// How often the worker process looks for imports recorded by other processes and publishes
/// its budget and queue state for their `status`.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Running {
    shutdown: CancellationToken,
    workers: WorkerSet,
    tasks: Vec<JoinHandle<()>>,
}

impl Importer {
    /// Starts the workers in this process. They run until [`Importer::stop`].
    pub async fn start(&self) -> Result<(), Error> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let shutdown = CancellationToken::new();
        let (request_tx, request_rx) = mpsc::unbounded_channel();
        let (batch_tx, batch_rx) = mpsc::unbounded_channel();
        let batcher = Batcher {
            requests: request_rx,
            client: self.client.clone(),
            store: self.store.clone(),
            window: self.settings.batch_window(),
            flusher: batch_tx,
            shutdown: shutdown.clone(),
        };
        let flusher = Flusher {
            batches: batch_rx,
            store: self.store.clone(),
            queue: self.queue.clone(),
            fresh_for: self.settings.franchise_ttl(),
            notices: self.notices.clone(),
        };
        let mut tasks = vec![tokio::spawn(batcher.run()), tokio::spawn(flusher.run())];
        let options = RunOptions {
            workers: 1,
            interactive_workers: 1,
            concurrency: self.settings.worker_count(),
            heartbeat: self.settings.heartbeat(),
            max_attempts: self.settings.max_attempts(),
            ..RunOptions::default()
        };
        let handler = job_handler(request_tx);
        let workers = self.queue.run(options, handler, shutdown.clone())?;
        tasks.push(tokio::spawn(watch(
            self.store.clone(),
            self.queue.clone(),
            self.client.clone(),
            self.requeued_up_to,
            shutdown.clone(),
        )));
        *running = Some(Running {
            shutdown,
            workers,
            tasks,
        });
        Ok(())
    }

    /// Stops the workers gracefully: in-flight jobs finish (within the queue's grace period),
    /// then the batcher and flusher drain and stop.
    pub async fn stop(&self) {
        let Some(running) = self.running.lock().await.take() else {
            return;
        };
        running.shutdown.cancel();
        running.workers.join().await;
        for task in running.tasks {
            task.abort();
            let _ = task.await;
        }
        let _ = self.store.retract_runtime(std::process::id()).await;
    }

    /// Stops the workers and closes the store, which checkpoints SQLite's WAL so the database
    /// file is complete on its own. Call it before the process exits.
    pub async fn close(self) {
        self.stop().await;
        self.store.close().await;
    }

    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }
}

/// Picks up imports other processes recorded in the store (they cannot open the queue we
/// own) and publishes the budget and queue depth for their `status`.
async fn watch(
    store: crate::store::Store,
    queue: crate::queue::JobQueue,
    client: crate::upstream::AniListClient,
    mut seen: i64,
    shutdown: CancellationToken,
) {
    let pid = std::process::id();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.latest_import_id().await {
            Ok(latest) if latest > seen => match store.queued_items_after(seen).await {
                Ok(items) => {
                    let jobs = items.iter().map(crate::queue::FetchJob::from).collect();
                    match queue.push(crate::queue::Lane::Background, jobs).await {
                        Ok(_) => seen = latest,
                        Err(e) => tracing::warn!(error = %e, "could not enqueue new imports"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read new imports"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for new imports"),
        }
        if let Err(e) = store.checkpoint().await {
            tracing::debug!(error = %e, "background checkpoint failed");
        }
        let snapshot = serde_json::json!({
            "budget": client.budget().state(),
            "queue": queue.depth().await.ok(),
        });
        if let Err(e) = store
            .publish_runtime(pid, unix_ms_now(), &snapshot.to_string())
            .await
        {
            tracing::debug!(error = %e, "could not publish runtime status");
        }
    }
}
