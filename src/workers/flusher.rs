//! The flusher: turns fetched answers into ONE transaction (anime, relations, item outcomes,
//! the next level of the walk), pushes the new jobs, and only then answers the waiting jobs.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::request::{FetchedBatch, Notice, NoticeOutcome};
use crate::producer::{NOT_FOUND, commit_batch};
use crate::queue::{FetchJob, JobFailure, JobQueue, Lane};
use crate::store::{FlushBatch, ItemOutcome, ItemResult, QueuedItem, Store, fresh_since};

/// How many fetched answers at most go into one transaction.
const MAX_BATCHES_PER_FLUSH: usize = 16;

pub(crate) struct Flusher {
    pub batches: mpsc::UnboundedReceiver<FetchedBatch>,
    pub store: Store,
    pub queue: JobQueue,
    /// Anime stored more recently than this are walked through, not fetched again.
    pub fresh_for: Duration,
    pub notices: broadcast::Sender<Notice>,
}

impl Flusher {
    pub(crate) async fn run(mut self) {
        let mut unpushed: Vec<QueuedItem> = Vec::new();
        while let Some(first) = self.batches.recv().await {
            let mut batches = vec![first];
            while batches.len() < MAX_BATCHES_PER_FLUSH {
                match self.batches.try_recv() {
                    Ok(more) => batches.push(more),
                    Err(_) => break,
                }
            }
            self.flush(batches, &mut unpushed).await;
        }
    }

    async fn flush(&self, batches: Vec<FetchedBatch>, unpushed: &mut Vec<QueuedItem>) {
        let mut write = FlushBatch::default();
        let mut replies = Vec::new();
        let mut notices = Vec::new();
        for batch in batches {
            match batch.outcome {
                Ok(answer) => {
                    let missing: HashSet<_> = answer.not_found.iter().copied().collect();
                    notices.extend(answer.found.iter().map(|a| Notice {
                        anime_id: a.id,
                        outcome: NoticeOutcome::Stored,
                    }));
                    notices.extend(answer.not_found.iter().map(|id| Notice {
                        anime_id: *id,
                        outcome: NoticeOutcome::NotFound,
                    }));
                    write.fetched.extend(answer.found);
                    write.not_found.extend(answer.not_found);
                    for request in batch.requests {
                        if let Some(import_id) = request.job.import_id {
                            let outcome = if missing.contains(&request.job.anime_id) {
                                ItemOutcome::Failed(NOT_FOUND.to_string())
                            } else {
                                ItemOutcome::Done
                            };
                            write.items.push(ItemResult {
                                import_id,
                                anime_id: request.job.anime_id,
                                outcome,
                            });
                        }
                        replies.push((request.reply, Ok(())));
                    }
                }
                Err(error) => {
                    let reason = error.to_string();
                    for request in batch.requests {
                        let fatal = error.is_permanent() || request.last_attempt;
                        if !fatal {
                            replies.push((request.reply, Err(JobFailure::Retry(reason.clone()))));
                            continue;
                        }
                        if let Some(import_id) = request.job.import_id {
                            write.items.push(ItemResult {
                                import_id,
                                anime_id: request.job.anime_id,
                                outcome: ItemOutcome::Failed(reason.clone()),
                            });
                        }
                        notices.push(Notice {
                            anime_id: request.job.anime_id,
                            outcome: NoticeOutcome::Failed(reason.clone()),
                        });
                        replies.push((request.reply, Err(JobFailure::Abort(reason.clone()))));
                    }
                }
            }
        }

        match commit_batch(&self.store, &write, fresh_since(self.fresh_for)).await {
            Ok(next) => unpushed.extend(next),
            Err(e) => {
                // Nothing was written: every job goes back to the queue to try again.
                tracing::error!(error = %e, "flush failed; its jobs will be retried");
                let reason = format!("store write failed: {e}");
                for (reply, _) in replies {
                    let _ = reply.send(Err(JobFailure::Retry(reason.clone())));
                }
                return;
            }
        }
        // Discovered anime are enqueued before the jobs that found them are acknowledged. If
        // the push fails they stay queued in SQL; the next flush (or a restart) pushes them.
        if !unpushed.is_empty() {
            let jobs: Vec<FetchJob> = unpushed.iter().map(FetchJob::from).collect();
            match self.queue.push(Lane::Background, jobs).await {
                Ok(_) => unpushed.clear(),
                Err(e) => tracing::error!(error = %e, "enqueueing discovered anime failed"),
            }
        }
        for notice in notices {
            // No subscriber is fine: nobody is waiting on a click.
            let _ = self.notices.send(notice);
        }
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
    }
}
