//! Running the workers in this process: take the queue if another process let it go, queue
//! again whatever the store says is unfinished, start the pipeline and the owner's
//! housekeeping, and stop them all gracefully.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::owner::{self, ProcessCard};
use super::{Importer, QueueOwner};
use crate::error::Error;
use crate::halt::{Halt, HaltSwitch};
use crate::queue::JobQueue;
use crate::workers::{CommitBackoff, Pipeline, PipelineParts, supervised};

/// Requests an item may cost without its answer being stored: its attempts twice over, and
/// never fewer than ten (graceful stops and orphan copies also count).
fn max_fetches(max_attempts: usize) -> u32 {
    u32::try_from(max_attempts.saturating_mul(2).saturating_add(5))
        .unwrap_or(u32::MAX)
        .max(10)
}

pub(super) struct Running {
    pipeline: Pipeline,
    housekeeping: JoinHandle<()>,
    card: Arc<ProcessCard>,
    halt: HaltSwitch,
}

impl Importer {
    /// Starts the workers in this process. They run until [`Importer::stop`], or until a
    /// backend fails in a way only a person can fix (see [`Importer::halted`]).
    ///
    /// On the embedded backend only the process that owns the queue file can run them: if
    /// another process owns it, this fails with [`Error::NotOwner`] (try again once it is
    /// gone: the queue is taken over then).
    ///
    /// After a halt, `start` clears it and starts again (once the cause is fixed). AniList
    /// being down never halts the workers: they wait for it and go on by themselves.
    pub async fn start(&self) -> Result<(), Error> {
        self.writable()?;
        let mut running = self.inner.running.lock().await;
        if running.as_ref().is_some_and(|r| r.halt.is_tripped()) {
            // Halted by itself: wind the old pipeline down, then start afresh below.
            if let Some(old) = running.take() {
                self.wind_down(old).await;
            }
        }
        if running.is_some() {
            return Ok(());
        }
        let queue = self.claim_queue().await?;
        *self
            .inner
            .last_halt
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let parts = PipelineParts {
            store: self.inner.store.clone(),
            queue: queue.clone(),
            client: self.inner.client.clone(),
            events: self.inner.events.clone(),
            notices: self.inner.notices.clone(),
            failpoints: self.inner.failpoints.clone(),
            clock: self.inner.clock.clone(),
            cache: self.inner.cache.clone(),
            fresh_for: self.inner.settings.franchise_ttl,
            batch_window: self.inner.settings.batch_window,
            commit_backoff: CommitBackoff::SHIPPED,
            max_fetches: max_fetches(self.inner.settings.max_attempts),
            retention: self.inner.settings.retention,
            shutdown: CancellationToken::new(),
            halt: HaltSwitch::default(),
        };
        // Whatever the store says is queued goes (back) into the queue before the workers
        // start; pushing a job the queue already has is a no-op.
        owner::push_unfinished(&parts).await?;
        let options = self.inner.settings.run_options();
        let halt = parts.halt.clone();
        let pipeline = Pipeline::start(parts.clone(), options)?;
        let card = Arc::new(ProcessCard::new(self.now()));
        let housekeeping = {
            let card = card.clone();
            let keeper = parts.clone();
            supervised("housekeeping", parts, move || {
                owner::housekeeping(keeper.clone(), card.clone())
            })
        };
        *self
            .inner
            .halt_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(halt.clone());
        *running = Some(Running {
            pipeline,
            housekeeping,
            card,
            halt,
        });
        Ok(())
    }

    /// The queue, taken now if this process did not own it yet and nobody else does.
    async fn claim_queue(&self) -> Result<JobQueue, Error> {
        if let Some(queue) = self.queue() {
            return Ok(queue);
        }
        let mut backend = self.inner.backend.lock().await;
        let taken = backend.take_queue().await?;
        *self.inner.owner.lock().unwrap_or_else(|p| p.into_inner()) = backend.owner;
        match (taken, backend.queue.clone()) {
            (true, Some(queue)) => {
                *self.inner.queue.lock().unwrap_or_else(|p| p.into_inner()) = Some(queue.clone());
                // The sole writer now: the cache can be trusted.
                self.inner
                    .cache
                    .set_enabled(self.inner.settings.cache_entries > 0);
                Ok(queue)
            }
            _ => match backend.owner {
                QueueOwner::OtherProcess { pid } => Err(Error::NotOwner { pid }),
                _ => Err(Error::NotRunning),
            },
        }
    }

    /// Stops the workers gracefully: jobs waiting for a request let go of their items
    /// without spending an attempt, answers in flight are committed (within the queue's
    /// grace period), then everything stops.
    pub async fn stop(&self) {
        let Some(running) = self.inner.running.lock().await.take() else {
            return;
        };
        self.wind_down(running).await;
    }

    /// Stops one pipeline and its housekeeping, and keeps why it halted, if it did.
    async fn wind_down(&self, running: Running) {
        running.pipeline.stop().await;
        running.housekeeping.abort();
        let _ = running.housekeeping.await;
        if let Err(e) = self.inner.store.retire(&running.card.id).await {
            tracing::debug!(error = %e, "could not remove this process's heartbeat row");
        }
        if let Some(halt) = running.halt.halted() {
            *self
                .inner
                .last_halt
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(halt);
        }
        *self
            .inner
            .halt_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Waits until the running pipeline halts by itself, and says why. Pending forever if
    /// the workers are not running or stop normally.
    pub async fn until_halted(&self) -> Halt {
        let halt = {
            let running = self.inner.running.lock().await;
            running.as_ref().map(|r| r.halt.clone())
        };
        match halt {
            Some(halt) => {
                halt.tripped().await;
                match halt.halted() {
                    Some(reason) => reason,
                    None => std::future::pending().await,
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Lets go of this handle. The last handle's close stops the workers and closes the
    /// store, which checkpoints SQLite's WAL so the database file is complete on its own;
    /// until then the other clones go on working. Call it before the process exits.
    pub async fn close(self) {
        let Self { inner, handles } = self;
        // Atomic: of two clones closing at once, exactly one is the last.
        if Arc::into_inner(handles).is_none() {
            return;
        }
        Self {
            inner,
            handles: Arc::new(()),
        }
        .shutdown()
        .await;
    }

    /// Stops the workers and closes the store now, for every clone: a process that is
    /// exiting while clones may still be held (an API server's open connections) ends it
    /// here. Calls on any clone afterwards fail with the store's error.
    pub async fn shutdown(&self) {
        self.stop().await;
        self.inner.store.close().await;
    }

    /// Whether the workers run in this process: started, and neither stopped nor halted.
    pub async fn is_running(&self) -> bool {
        self.inner
            .running
            .lock()
            .await
            .as_ref()
            .is_some_and(|r| !r.halt.is_tripped())
    }

    /// Why the running pipeline halted, if it has (it stays halted until `start` or `stop`).
    pub(super) fn running_halt(&self) -> Option<Halt> {
        self.inner
            .halt_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(HaltSwitch::halted)
    }

    /// Tells other processes where this one's local API listens, at once: the CLI of another
    /// terminal reads it to talk to this process instead of the data dir. `None` withdraws
    /// it. Needs the workers running. [`crate::ApiServer`] calls it, with the role its pages
    /// give it.
    pub(crate) async fn advertise_api(
        &self,
        api: Option<(String, crate::store::ProcessRole)>,
    ) -> Result<(), Error> {
        let running = self.inner.running.lock().await;
        let Some(running) = running.as_ref() else {
            return Err(Error::NotRunning);
        };
        running.card.set_api(api);
        let depth = match self.queue() {
            Some(queue) => queue.depth().await.ok(),
            None => None,
        };
        self.inner
            .store
            .heartbeat(&running.card.info(self.now(), depth))
            .await?;
        Ok(())
    }

    /// The local API of the process that runs the workers over this embedded data dir, if
    /// it serves one (`franchise serve`, `work`, `import --wait`, or an app through
    /// [`crate::ApiServer::bind_local`]), for a CLI in another terminal to talk to.
    pub(crate) async fn owner_api(&self) -> Result<Option<String>, Error> {
        if !matches!(self.queue_owner(), QueueOwner::OtherProcess { .. }) {
            return Ok(None);
        }
        let now = self.now();
        let live = self
            .inner
            .store
            .processes(now - super::status::STALE_AFTER_MS)
            .await?;
        Ok(live.into_iter().find_map(|p| p.api_url))
    }

    pub(super) fn parts_for_click(&self) -> Option<JobQueue> {
        self.queue()
    }
}
