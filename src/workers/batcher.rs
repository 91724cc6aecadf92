//! The batcher: coalesces the ids of concurrently running jobs into requests of up to 50.
//!
//! Before an id may cost a request it is triaged against the store, once per batch: an item
//! already settled, or whose anime another import stored (or AniList said was missing) since
//! it was queued, is settled without a request; an id already in flight waits for that flight.
//! Then the batcher takes a budget slot and only then picks the ids, interactive ones first,
//! so an id clicked while background batches wait for the budget rides the very next request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::fetch_count::FetchTally;
use super::parts::PipelineParts;
use super::release::release;
use super::request::{FetchRequest, FlushWork, Notice, NoticeOutcome, Settlement};
use crate::anime::AnimeId;
use crate::failpoint::FailAction;
use crate::halt::Halt;
use crate::queue::{JobFailure, Lane};
use crate::store::{ItemState, ItemTriage};
use crate::upstream::MAX_BATCH;

pub(crate) struct Batcher {
    parts: PipelineParts,
    requests: Arc<Mutex<mpsc::UnboundedReceiver<FetchRequest>>>,
    flusher: mpsc::UnboundedSender<FlushWork>,
    pending: Pending,
    /// Ids sent upstream whose answer is not committed yet.
    in_flight: HashSet<AnimeId>,
    /// Requests for an id in flight: they are triaged again once it lands.
    on_flight: HashMap<AnimeId, Vec<FetchRequest>>,
    inbox: Vec<FetchRequest>,
    landed_tx: mpsc::UnboundedSender<Landing>,
    landed_rx: mpsc::UnboundedReceiver<Landing>,
    /// Counts each request against its items.
    tally: FetchTally,
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

    fn drain(&mut self) -> Vec<FetchRequest> {
        self.interactive.clear();
        self.background.clear();
        self.waiting.drain().flat_map(|(_, r)| r).collect()
    }
}

/// A flight that came back: its ids are no longer in flight, and `retry` holds the jobs whose
/// request found AniList down, to be triaged and sent again.
#[derive(Default)]
struct Landing {
    ids: Vec<AnimeId>,
    retry: Vec<FetchRequest>,
}

impl Landing {
    fn ids(ids: Vec<AnimeId>) -> Self {
        Self {
            ids,
            retry: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.retry.is_empty()
    }
}

/// What woke the batcher up.
enum Wake {
    Request(FetchRequest),
    Landed(Landing),
    Stop,
    Closed,
}

impl Batcher {
    pub(crate) fn new(
        parts: PipelineParts,
        requests: Arc<Mutex<mpsc::UnboundedReceiver<FetchRequest>>>,
        flusher: mpsc::UnboundedSender<FlushWork>,
    ) -> Self {
        let (landed_tx, landed_rx) = mpsc::unbounded_channel();
        let tally = FetchTally::start(parts.store.clone());
        Self {
            tally,
            parts,
            requests,
            flusher,
            pending: Pending::default(),
            in_flight: HashSet::new(),
            on_flight: HashMap::new(),
            inbox: Vec::new(),
            landed_tx,
            landed_rx,
        }
    }

    pub(crate) async fn run(mut self) {
        let requests = self.requests.clone();
        let mut rx = requests.lock().await;
        loop {
            if self.pending.ids() == 0 && self.inbox.is_empty() {
                match self.wait(&mut rx, None).await {
                    Wake::Stop => return self.stop(&mut rx).await,
                    Wake::Closed => return,
                    wake => self.take_in(wake),
                }
            }
            self.drain_ready(&mut rx);
            self.triage().await;
            if self.pending.ids() == 0 {
                continue;
            }
            // Coalesce: a short window for more ids, unless a click waits or a batch is full.
            let deadline = Instant::now() + self.parts.batch_window;
            while !self.pending.has_interactive()
                && self.pending.ids() + self.inbox.len() < MAX_BATCH
            {
                match self.wait(&mut rx, Some(deadline)).await {
                    Wake::Stop => return self.stop(&mut rx).await,
                    Wake::Closed => return,
                    Wake::Request(r) if r.lane == Lane::Interactive => {
                        self.inbox.push(r);
                        break;
                    }
                    Wake::Landed(landing) if landing.is_empty() => break,
                    wake => self.take_in(wake),
                }
            }
            self.triage().await;
            if self.pending.ids() == 0 {
                continue;
            }
            // Take the slot first, and keep collecting while the budget makes us wait. A
            // click claims the next slot ahead of background batches of every process; one
            // that arrives while we wait turns the wait into such a claim at once.
            let budget = self.parts.client.budget().clone();
            let mut urgent = self.pending.has_interactive()
                || self.inbox.iter().any(|r| r.lane == Lane::Interactive);
            let acquire = budget.acquire_for(urgent);
            tokio::pin!(acquire);
            let slot = loop {
                tokio::select! {
                    biased;
                    () = self.parts.shutdown.cancelled() => return self.stop(&mut rx).await,
                    slot = &mut acquire => break slot,
                    next = rx.recv() => match next {
                        Some(request) => {
                            if !urgent && request.lane == Lane::Interactive {
                                urgent = true;
                                acquire.set(budget.acquire_for(true));
                            }
                            self.inbox.push(request);
                        }
                        None => return,
                    },
                    Some(landing) = self.landed_rx.recv() => self.on_landed(landing),
                }
            };
            let slot = match slot {
                Ok(slot) => slot,
                Err(e) => {
                    // The budget lives in the store: a broken store stops the pipeline.
                    if e.failure().is_fatal() {
                        self.parts
                            .halt
                            .trip(Halt::store(&e, &self.parts.store.location()));
                        return self.stop(&mut rx).await;
                    }
                    tracing::warn!(error = %e, "could not take a budget slot; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            // Anything that arrived while we waited is triaged before the ids are picked, so
            // a click joins this very request.
            self.drain_ready(&mut rx);
            self.triage().await;
            if self.parts.failpoints.check("batcher.panic").is_some() {
                panic!("failure point batcher.panic fired");
            }
            let size = self
                .parts
                .client
                .batch_size(self.pending.ids(), slot.walk_cap());
            let (ids, requests) = self.pending.take(size);
            if ids.is_empty() {
                // Everything turned out settled: the slot goes unused, which only costs pace.
                continue;
            }
            self.in_flight.extend(ids.iter().copied());
            tracing::debug!(ids = ids.len(), jobs = requests.len(), "sending a request");
            self.spawn_fetch(slot, ids, requests);
        }
    }

    /// Waits for a request, a landing, the deadline (reported as an empty landing) or stop.
    async fn wait(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<FetchRequest>,
        deadline: Option<Instant>,
    ) -> Wake {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.parts.shutdown.cancelled() => Wake::Stop,
            next = rx.recv() => match next {
                Some(request) => Wake::Request(request),
                None => Wake::Closed,
            },
            Some(landing) = self.landed_rx.recv() => Wake::Landed(landing),
            () = sleep => Wake::Landed(Landing::default()),
        }
    }

    fn take_in(&mut self, wake: Wake) {
        match wake {
            Wake::Request(request) => self.inbox.push(request),
            Wake::Landed(landing) => self.on_landed(landing),
            Wake::Stop | Wake::Closed => {}
        }
    }

    /// Takes in whatever is already waiting, without blocking.
    fn drain_ready(&mut self, rx: &mut mpsc::UnboundedReceiver<FetchRequest>) {
        while let Ok(request) = rx.try_recv() {
            self.inbox.push(request);
        }
        while let Ok(landing) = self.landed_rx.try_recv() {
            self.on_landed(landing);
        }
    }

    /// These ids' answers are committed: jobs that waited on them look at the store again (a
    /// click's waiter already heard the outcome from the flusher's notice).
    fn on_landed(&mut self, landing: Landing) {
        let Landing { ids, retry } = landing;
        // Jobs whose request found AniList down ask again: the budget holds them until the
        // next probe.
        self.inbox.extend(retry);
        for id in ids {
            self.in_flight.remove(&id);
            for request in self.on_flight.remove(&id).unwrap_or_default() {
                if request.job.import_id.is_some() {
                    self.inbox.push(request);
                } else {
                    let _ = request.reply.send(Ok(()));
                }
            }
        }
    }

    /// Sorts the inbox: settled jobs are answered, jobs the store can settle go to the
    /// flusher, ids in flight wait for their flight, the rest wait for a request.
    async fn triage(&mut self) {
        if self.inbox.is_empty() {
            return;
        }
        let inbox = std::mem::take(&mut self.inbox);
        let keys: Vec<(i64, AnimeId)> = inbox
            .iter()
            .filter_map(|r| r.job.import_id.map(|import| (import, r.job.anime_id)))
            .collect();
        let triage = if keys.is_empty() {
            Some(HashMap::new())
        } else {
            match self.parts.store.triage(&keys).await {
                Ok(states) => Some(states),
                Err(e) => {
                    // Unknown: fetch them; the flush ignores items already settled.
                    tracing::warn!(error = %e, "could not triage jobs; fetching them");
                    None
                }
            }
        };
        let mut settle = Vec::new();
        for request in inbox {
            let Some(import_id) = request.job.import_id else {
                self.route(request);
                continue;
            };
            let Some(states) = triage.as_ref() else {
                self.route(request);
                continue;
            };
            match states.get(&(import_id, request.job.anime_id)) {
                None => {
                    let reason = format!(
                        "import {import_id} has no item for anime {}",
                        request.job.anime_id
                    );
                    let _ = request.reply.send(Err(JobFailure::Abort(reason)));
                }
                Some(ItemTriage { state, .. }) if *state != ItemState::Queued => {
                    let _ = request.reply.send(Ok(()));
                }
                // A newer job carries this item (it was released and queued again).
                Some(t) if request.job.round < t.round => {
                    let _ = request.reply.send(Ok(()));
                }
                Some(t) if t.stored_since_queued => settle.push((request, Settlement::FromStore)),
                // Sent again and again, and its answer never stored: the job kills its worker
                // (a queue re-delivers it as an orphan without counting an attempt).
                Some(t) if t.fetches >= self.parts.max_fetches => {
                    let reason = format!(
                        "sent to AniList {} times without its answer being stored: the fetch \
                         stops its worker every time, or AniList never answers it (5xx or no \
                         answer in time)",
                        t.fetches
                    );
                    settle.push((request, Settlement::Failed(reason)));
                }
                Some(t) if t.missing_since_queued => settle.push((request, Settlement::NotFound)),
                Some(_) => self.route(request),
            }
        }
        if !settle.is_empty()
            && let Err(mpsc::error::SendError(FlushWork::Settle(settle))) =
                self.flusher.send(FlushWork::Settle(settle))
        {
            // The flusher is gone (shutdown): let the jobs go.
            release(&self.parts, settle.into_iter().map(|(r, _)| r).collect()).await;
        }
    }

    fn route(&mut self, request: FetchRequest) {
        let id = request.job.anime_id;
        if self.in_flight.contains(&id) {
            self.on_flight.entry(id).or_default().push(request);
        } else {
            self.pending.add(request);
        }
    }

    fn spawn_fetch(
        &self,
        slot: crate::upstream::Slot,
        ids: Vec<AnimeId>,
        requests: Vec<FetchRequest>,
    ) {
        let client = self.parts.client.clone();
        let store = self.parts.store.clone();
        let tally = self.tally.clone();
        let flusher = self.flusher.clone();
        let landed = self.landed_tx.clone();
        let failpoints = self.parts.failpoints.clone();
        let shutdown = self.parts.shutdown.clone();
        let notices = self.parts.notices.clone();
        let counted: Vec<(i64, AnimeId)> = requests
            .iter()
            .filter_map(|r| r.job.import_id.map(|import| (import, r.job.anime_id)))
            .collect();
        tokio::spawn(async move {
            // The count goes with the request, not before it: the request does not wait for
            // the store's writer (behind a flush, 5.4 ms on average at 10,000 anime), and the
            // answer is handled only once the count is in, so a fetch that kills its worker is
            // still counted every time it is delivered.
            let ((), outcome) = tokio::join!(
                tally.add(counted.clone()),
                client.fetch_with_slot(slot, &ids)
            );
            failpoints.check("fetch.crash");
            if let Err(error) = &outcome
                && error.is_down()
            {
                // AniList is down, and the budget parks every process until a probe. The
                // import jobs keep waiting here (no attempt spent, no new job); a click, and
                // anyone waiting on these anime, hears it now.
                if error.blames_no_id()
                    && let Err(e) = store.count_fetches(&counted, -1).await
                {
                    tracing::debug!(error = %e, "could not take the request's count back");
                }
                let reason = error.to_string();
                for id in &ids {
                    let _ = notices.send(Notice {
                        anime_id: *id,
                        outcome: NoticeOutcome::Failed(reason.clone()),
                    });
                }
                let (clicks, jobs): (Vec<_>, Vec<_>) = requests
                    .into_iter()
                    .partition(|r| r.job.import_id.is_none());
                for click in clicks {
                    let _ = click.reply.send(Err(JobFailure::Abort(reason.clone())));
                }
                let _ = landed.send(Landing { ids, retry: jobs });
                return;
            }
            if failpoints.hit("fetch.stall") == Some(FailAction::Stall) {
                // Hold the answer until shutdown, then drop it: its jobs must let go.
                shutdown.cancelled().await;
                drop(requests);
                let _ = landed.send(Landing::ids(ids));
                return;
            }
            let (tx, rx) = oneshot::channel();
            if flusher
                .send(FlushWork::Fetched {
                    outcome,
                    requests,
                    landed: Some(tx),
                })
                .is_ok()
            {
                let _ = rx.await;
            }
            let _ = landed.send(Landing::ids(ids));
        });
    }

    /// Graceful stop (or halt): every job still waiting for a request lets go without
    /// spending an attempt; its item goes to a new job.
    async fn stop(mut self, rx: &mut mpsc::UnboundedReceiver<FetchRequest>) {
        self.drain_ready(rx);
        let mut waiting = self.pending.drain();
        waiting.extend(std::mem::take(&mut self.inbox));
        waiting.extend(self.on_flight.drain().flat_map(|(_, r)| r));
        release(&self.parts, waiting).await;
        // Jobs that arrive while the workers wind down are let go the same way.
        rx.close();
        let mut late = Vec::new();
        while let Some(request) = rx.recv().await {
            late.push(request);
        }
        release(&self.parts, late).await;
    }
}

#[cfg(test)]
mod tests;
