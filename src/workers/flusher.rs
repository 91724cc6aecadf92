//! The flusher: turns fetched answers into ONE transaction (anime, relations, item outcomes,
//! the next level of the walk), pushes the new jobs, and only then answers the waiting jobs.
//!
//! A commit that fails is tried again with backoff while the jobs keep waiting: a store
//! problem never spends a job's attempt. A failure only a person can fix (a full disk, a
//! read-only or damaged file) halts the pipeline, and the waiting jobs are let go.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::parts::PipelineParts;
use super::release::release;
use super::request::{FetchRequest, FlushWork, Notice, NoticeOutcome, Reply, Settlement};
use crate::anime::{AnimeId, rewritten_by};
use crate::clock::fresh_since;
use crate::events::Event;
use crate::failpoint::FailAction;
use crate::halt::{Halt, HaltKind};
use crate::producer::{FlushBatch, FlushCommitted, NOT_FOUND, commit_flush};
use crate::queue::{FetchJob, JobFailure, Lane};
use crate::store::{Failure, ImportFilter, ItemOutcome, ItemResult, QueuedItem, StoreError};
use crate::upstream::UpstreamError;

/// How many fetched answers at most go into one transaction.
const MAX_WORK_PER_FLUSH: usize = 16;
/// Commit tries before a store that keeps failing halts the pipeline (about a minute).
const MAX_COMMIT_TRIES: u32 = 10;

pub(crate) struct Flusher {
    parts: PipelineParts,
    work: Arc<Mutex<mpsc::UnboundedReceiver<FlushWork>>>,
    /// Discovered items committed but not yet pushed (the push failed); tried again next flush.
    unpushed: Vec<QueuedItem>,
}

/// One flush's worth of work, taken apart.
#[derive(Default)]
struct Flush {
    write: FlushBatch,
    replies: Vec<(FetchRequest, Reply)>,
    notices: Vec<Notice>,
    landed: Vec<oneshot::Sender<()>>,
    /// Requests to let go without a verdict (AniList unreachable).
    let_go: Vec<FetchRequest>,
}

impl Flusher {
    pub(crate) fn new(
        parts: PipelineParts,
        work: Arc<Mutex<mpsc::UnboundedReceiver<FlushWork>>>,
    ) -> Self {
        Self {
            parts,
            work,
            unpushed: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let work = self.work.clone();
        let mut rx = work.lock().await;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_WORK_PER_FLUSH {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if self.parts.failpoints.check("flusher.panic").is_some() {
                panic!("failure point flusher.panic fired");
            }
            self.flush(batch).await;
        }
    }

    async fn flush(&mut self, work: Vec<FlushWork>) {
        let mut f = Flush::default();
        for item in work {
            match item {
                FlushWork::Fetched {
                    outcome,
                    requests,
                    landed,
                } => {
                    f.landed.extend(landed);
                    match outcome {
                        Ok(answer) => self.answered(&mut f, answer, requests),
                        Err(error) => self.failed(&mut f, &error, requests),
                    }
                }
                FlushWork::Settle(settled) => {
                    for (request, settlement) in settled {
                        settle(&mut f, request, settlement);
                    }
                }
            }
        }
        let Some(committed) = self.commit(&f.write).await else {
            tracing::debug!("flush abandoned: the pipeline is stopping");
            // Halted or stopping: nothing was written; every waiting job lets go.
            let mut requests: Vec<FetchRequest> = f.replies.into_iter().map(|(r, _)| r).collect();
            requests.extend(f.let_go);
            release(&self.parts, requests).await;
            return;
        };
        // A crash here leaves the flush committed and its jobs unacknowledged: the next run
        // gets them back as orphans whose items are already done.
        self.parts.failpoints.check("flusher.committed");
        tracing::debug!(
            anime = f.write.fetched.len(),
            items = f.write.items.len(),
            discovered = committed.discovered,
            pushed_after_commit = committed.to_push.len(),
            "flush committed"
        );
        self.invalidate_cache(&f.write);
        self.push_discovered(committed.to_push.clone()).await;
        self.publish(&f, &committed).await;
        let carried = committed.carried_stored.iter().map(|id| Notice {
            anime_id: *id,
            outcome: NoticeOutcome::Stored,
        });
        for notice in f.notices.into_iter().chain(carried) {
            let _ = self.parts.notices.send(notice);
        }
        for (request, reply) in f.replies {
            let _ = request.reply.send(reply);
        }
        release(&self.parts, f.let_go).await;
        for landed in f.landed {
            let _ = landed.send(());
        }
    }

    fn answered(
        &self,
        f: &mut Flush,
        answer: crate::upstream::BatchAnswer,
        requests: Vec<FetchRequest>,
    ) {
        let missing: HashSet<AnimeId> = answer.not_found.iter().copied().collect();
        let malformed: std::collections::HashMap<AnimeId, String> =
            answer.malformed.iter().cloned().collect();
        // Anime the answer carried whole beyond the ids asked for are stored where the walk
        // reaches them; a click waiting on one hears it once they are (see `publish`).
        f.notices.extend(answer.found.iter().map(|a| Notice {
            anime_id: a.id,
            outcome: NoticeOutcome::Stored,
        }));
        f.notices.extend(answer.not_found.iter().map(|id| Notice {
            anime_id: *id,
            outcome: NoticeOutcome::NotFound,
        }));
        f.write.fetched.extend(answer.found);
        f.write.carried.extend(answer.walked);
        f.write.not_found.extend(answer.not_found);
        for request in requests {
            let id = request.job.anime_id;
            if let Some(reason) = malformed.get(&id) {
                // AniList's answer for this one id made no sense: a malformed response,
                // retried like one.
                let error = UpstreamError::Malformed {
                    reason: reason.clone(),
                    excerpt: String::new(),
                };
                self.failed(f, &error, vec![request]);
                continue;
            }
            if let Some(import_id) = request.job.import_id {
                let outcome = if missing.contains(&id) {
                    ItemOutcome::Failed(NOT_FOUND.to_string())
                } else {
                    ItemOutcome::Done
                };
                f.write.items.push(ItemResult {
                    import_id,
                    anime_id: id,
                    outcome,
                });
            }
            f.replies.push((request, Ok(())));
        }
    }

    fn failed(&self, f: &mut Flush, error: &UpstreamError, requests: Vec<FetchRequest>) {
        let reason = error.to_string();
        if error.is_down() {
            // AniList is down for everyone. The batcher keeps such jobs waiting itself and
            // never sends them here; should one come anyway, no item fails for it: a click
            // hears it now, an import's item goes to a new job (no attempt spent).
            for request in requests {
                if request.job.import_id.is_some() {
                    f.let_go.push(request);
                    continue;
                }
                f.notices.push(Notice {
                    anime_id: request.job.anime_id,
                    outcome: NoticeOutcome::Failed(reason.clone()),
                });
                f.replies
                    .push((request, Err(JobFailure::Abort(reason.clone()))));
            }
            return;
        }
        for request in requests {
            let fatal = error.is_permanent() || request.last_attempt;
            if !fatal {
                f.replies
                    .push((request, Err(JobFailure::Retry(reason.clone()))));
                continue;
            }
            if let Some(import_id) = request.job.import_id {
                f.write.items.push(ItemResult {
                    import_id,
                    anime_id: request.job.anime_id,
                    outcome: ItemOutcome::Failed(reason.clone()),
                });
            }
            f.notices.push(Notice {
                anime_id: request.job.anime_id,
                outcome: NoticeOutcome::Failed(reason.clone()),
            });
            f.replies
                .push((request, Err(JobFailure::Abort(reason.clone()))));
        }
    }

    /// Commits the flush, trying again while the store's trouble may pass. `None` if the
    /// pipeline halted or is stopping instead.
    async fn commit(&self, write: &FlushBatch) -> Option<FlushCommitted> {
        let backoff = self.parts.commit_backoff;
        let mut delay = backoff.first;
        let mut tries = 0;
        loop {
            let now = self.parts.clock.now_ms();
            let result = match self.parts.failpoints.hit("flusher.commit") {
                // An ordinary failure, counted toward giving up (not a lost connection).
                Some(FailAction::Error) => Err(StoreError::Sql(sqlx::Error::Configuration(
                    "failure point flusher.commit fired".into(),
                ))),
                _ => {
                    let fresh = fresh_since(now, self.parts.fresh_for);
                    commit_flush(&self.parts.store, write, fresh, now).await
                }
            };
            let error = match result {
                Ok(committed) => {
                    self.parts.store.outage().answered();
                    return Some(committed);
                }
                Err(e) => e,
            };
            // A lost connection may come back (a database restarting), and connections or
            // open files others hold are let go: wait for it as long as it takes, without
            // counting toward giving up.
            if !error.failure().passes() {
                tries += 1;
            }
            if error.failure().is_fatal() {
                self.parts
                    .halt
                    .trip(Halt::store(&error, &self.parts.store.location()));
                return None;
            }
            if tries >= MAX_COMMIT_TRIES {
                let what = error.failure().describe();
                let message = match &error {
                    // The store is fine; the queue it pushes the next level to is not.
                    StoreError::Queue(queue) => format!(
                        "the job queue kept refusing the flush's new jobs: {queue}. Nothing \
                         stored was lost (each flush rolled back whole); run franchise \
                         again once the queue works"
                    ),
                    _ => format!(
                        "the store at {} kept failing ({what}): {error}. Nothing stored was \
                         lost; run franchise again once it works",
                        self.parts.store.location()
                    ),
                };
                self.parts.halt.trip(Halt {
                    kind: HaltKind::Broken,
                    message,
                });
                return None;
            }
            if error.failure().passes() {
                let location = self.parts.store.location();
                self.parts.store.outage().lost(&location, &error);
            } else if error.failure() != Failure::Busy {
                tracing::warn!(error = %error, tries, "flush failed; trying again");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.parts.halt.tripped() => return None,
            }
            delay = (delay * 2).min(backoff.max);
        }
    }

    /// Discovered anime are enqueued before the jobs that found them are acknowledged. If the
    /// push fails they stay queued in SQL; the next flush (or a restart) pushes them.
    async fn push_discovered(&mut self, mut items: Vec<QueuedItem>) {
        items.append(&mut self.unpushed);
        if items.is_empty() {
            return;
        }
        let jobs: Vec<FetchJob> = items.iter().map(FetchJob::from).collect();
        if let Err(e) = self.parts.queue.push(Lane::Background, &jobs).await {
            if e.is_fatal() {
                self.parts.halt.trip(Halt::from(&e));
            } else {
                tracing::error!(error = %e, "enqueueing discovered anime failed; will retry");
            }
            self.unpushed = items;
        }
    }

    /// Rewritten anime, and the anime whose derived relations they rewrote, leave the cache.
    fn invalidate_cache(&self, write: &FlushBatch) {
        if !self.parts.cache.is_enabled() {
            return;
        }
        // Carried anime the walk did not reach were not written; dropping them too costs a
        // re-read at most.
        let touched: HashSet<AnimeId> = rewritten_by(&write.fetched)
            .chain(rewritten_by(&write.carried))
            .collect();
        self.parts.cache.invalidate(&touched);
    }

    /// Events for what this flush committed, in commit order.
    async fn publish(&self, f: &Flush, committed: &FlushCommitted) {
        let events = &self.parts.events;
        if !events.has_subscribers() {
            return;
        }
        let stored: Vec<AnimeId> = f
            .write
            .fetched
            .iter()
            .map(|a| a.id)
            .chain(committed.carried_stored.iter().copied())
            .collect();
        if !stored.is_empty() {
            events.publish(Event::Stored { anime: stored });
        }
        let touched: BTreeSet<i64> = committed.touched.clone();
        let budget = self.parts.client.last_budget();
        for import_id in touched {
            let progress = match self
                .parts
                .store
                .imports(&ImportFilter::one(import_id))
                .await
            {
                Ok(mut p) if !p.is_empty() => p.remove(0),
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, import_id, "could not read progress for an event");
                    continue;
                }
            };
            let eta = super::estimate_with(&progress, budget.as_ref(), &self.parts.client);
            events.publish_progress(&progress, eta);
        }
    }
}

/// An item settled without a request.
fn settle(f: &mut Flush, request: FetchRequest, settlement: Settlement) {
    let Some(import_id) = request.job.import_id else {
        f.replies.push((request, Ok(())));
        return;
    };
    let anime_id = request.job.anime_id;
    let (outcome, reply) = match settlement {
        Settlement::FromStore => (ItemOutcome::Done, Ok(())),
        Settlement::NotFound => (ItemOutcome::Failed(NOT_FOUND.to_string()), Ok(())),
        Settlement::Failed(reason) => (
            ItemOutcome::Failed(reason.clone()),
            Err(JobFailure::Abort(reason)),
        ),
    };
    f.write.items.push(ItemResult {
        import_id,
        anime_id,
        outcome,
    });
    f.replies.push((request, reply));
}

#[cfg(test)]
mod tests;
