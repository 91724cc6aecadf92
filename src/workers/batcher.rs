//! The batcher: coalesces the ids of concurrently running jobs into requests of up to 50.
//! It takes a budget slot first and only then picks the ids, interactive ones first, so an
//! id clicked while background batches wait for the budget rides in the very next request.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::request::{FetchRequest, FetchedBatch};
use crate::anime::AnimeId;
use crate::queue::{JobFailure, Lane};
use crate::store::{ItemState, Store};
use crate::upstream::{AniListClient, MAX_BATCH};

pub(crate) struct Batcher {
    pub requests: mpsc::UnboundedReceiver<FetchRequest>,
    pub client: AniListClient,
    pub store: Store,
    /// How long to wait for more ids before a partial batch goes.
    pub window: Duration,
    pub flusher: mpsc::UnboundedSender<FetchedBatch>,
    pub shutdown: CancellationToken,
}

/// Ids waiting for a request, in arrival order per lane. Several jobs may wait on one id
/// (two imports, or an import and a click): they share its fetch.
#[derive(Default)]
struct Pending {
    interactive: VecDeque<AnimeId>,
    background: VecDeque<AnimeId>,
    waiting: HashMap<AnimeId, Vec<FetchRequest>>,
}

impl Pending {
    fn add(&mut self, request: FetchRequest) {
        let id = request.job.anime_id;
        let lane = request.lane;
        let known = self.waiting.contains_key(&id);
        self.waiting.entry(id).or_default().push(request);
        match lane {
            // A click on an id already waiting in the background promotes it.
            Lane::Interactive => self.interactive.push_back(id),
            Lane::Background if !known => self.background.push_back(id),
            Lane::Background => {}
        }
    }

    fn ids(&self) -> usize {
        self.waiting.len()
    }

    fn has_interactive(&self) -> bool {
        self.interactive
            .iter()
            .any(|id| self.waiting.contains_key(id))
    }

    /// Up to `n` ids, interactive first, with every request waiting on them.
    fn take(&mut self, n: usize) -> (Vec<AnimeId>, Vec<FetchRequest>) {
        let mut ids = Vec::with_capacity(n.min(self.ids()));
        let mut requests = Vec::new();
        while ids.len() < n {
            let Some(id) = self
                .interactive
                .pop_front()
                .or_else(|| self.background.pop_front())
            else {
                break;
            };
            // An id taken through the other lane has already gone.
            if let Some(waiting) = self.waiting.remove(&id) {
                ids.push(id);
                requests.extend(waiting);
            }
        }
        (ids, requests)
    }
}

impl Batcher {
    pub(crate) async fn run(mut self) {
        let mut pending = Pending::default();
        loop {
            if pending.ids() == 0 {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    next = self.requests.recv() => match next {
                        Some(request) => pending.add(request),
                        None => return,
                    },
                }
            }
            // Coalesce: a short window for more ids, unless a click waits or a batch is full.
            let deadline = Instant::now() + self.window;
            while !pending.has_interactive() && pending.ids() < MAX_BATCH {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    next = self.requests.recv() => match next {
                        Some(request) => pending.add(request),
                        None => return,
                    },
                }
            }
            // Take the slot first, and keep collecting while the budget makes us wait.
            let budget = self.client.budget().clone();
            let acquire = budget.acquire();
            tokio::pin!(acquire);
            let slot = loop {
                tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => return,
                    slot = &mut acquire => break slot,
                    next = self.requests.recv() => match next {
                        Some(request) => pending.add(request),
                        None => return,
                    },
                }
            };
            let (ids, requests) = pending.take(MAX_BATCH);
            let client = self.client.clone();
            let store = self.store.clone();
            let flusher = self.flusher.clone();
            tokio::spawn(async move {
                let (ids, requests) = drop_settled(&store, ids, requests).await;
                if ids.is_empty() {
                    return;
                }
                let outcome = client.fetch_with_slot(slot, &ids).await;
                // A closed flusher means shutdown: the jobs see their reply dropped and retry.
                let _ = flusher.send(FetchedBatch { outcome, requests });
            });
        }
    }
}

/// Answers, without a fetch, the re-delivered jobs whose items a flush already settled (at
/// least once delivery after a crash), with one store query per batch. Returns the ids and
/// requests still to fetch.
async fn drop_settled(
    store: &Store,
    ids: Vec<AnimeId>,
    requests: Vec<FetchRequest>,
) -> (Vec<AnimeId>, Vec<FetchRequest>) {
    let keys: Vec<(i64, AnimeId)> = requests
        .iter()
        .filter_map(|r| r.job.import_id.map(|import| (import, r.job.anime_id)))
        .collect();
    if keys.is_empty() {
        return (ids, requests);
    }
    let states = match store.item_states(&keys).await {
        Ok(states) => states,
        // Unknown: fetch them all; the flush ignores items already settled.
        Err(e) => {
            tracing::warn!(error = %e, "could not read item states; fetching the whole batch");
            return (ids, requests);
        }
    };
    let mut keep = Vec::with_capacity(requests.len());
    for request in requests {
        let Some(import_id) = request.job.import_id else {
            keep.push(request);
            continue;
        };
        match states.get(&(import_id, request.job.anime_id)) {
            Some(ItemState::Queued) => keep.push(request),
            Some(ItemState::Done | ItemState::Failed) => {
                let _ = request.reply.send(Ok(()));
            }
            None => {
                let reason = format!(
                    "import {import_id} has no item for anime {}",
                    request.job.anime_id
                );
                let _ = request.reply.send(Err(JobFailure::Abort(reason)));
            }
        }
    }
    let wanted: std::collections::HashSet<AnimeId> = keep.iter().map(|r| r.job.anime_id).collect();
    let ids = ids.into_iter().filter(|id| wanted.contains(id)).collect();
    (ids, keep)
}
