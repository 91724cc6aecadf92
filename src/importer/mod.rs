//! `Importer`, the library's front door: open a data dir (or database), start the workers,
//! enqueue a franchise import, open one anime on click, cancel and retry imports, read
//! through the cache, subscribe to events, and report status.

mod backend;
mod click;
mod idle;
mod owner;
mod reads;
mod rewrites;
mod running;
mod status;
mod stream;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::{Arc, Mutex as SyncMutex};

use tokio::sync::{Mutex, broadcast};

use crate::anime::AnimeId;
use crate::cache::ReadCache;
use crate::clock::fresh_since;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::error::Error;
use crate::events::{EventBus, EventStream};
use crate::failpoint::FailPoints;
use crate::halt::Halt;
use crate::producer::{ImportOptions, Push, cancel_import, create_import, retry_import};
use crate::queue::{FetchJob, JobQueue, Lane};
use crate::store::{ImportFilter, ImportProgress, QueuedItem, Store};
use crate::upstream::{AniListClient, RateBudget, StoreLedger};
use crate::workers::Notice;

pub use backend::QueueOwner;

/// What AniList said about some ids, straight from the source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    pub found: Vec<crate::anime::Anime>,
    /// Ids AniList left out: unknown, deleted or adult.
    pub not_found: Vec<AnimeId>,
    /// Ids whose answer made no sense (e.g. a MANGA record for an ANIME query), with why.
    pub malformed: Vec<(AnimeId, String)>,
}
use backend::{Backend, Mode};
pub use status::{ImportStatus, Status};
pub use stream::FranchiseItem;

/// An open data dir (or database): the store, the queue if this process may use it, one
/// shared rate budget, the read cache and the event stream. Cheap to clone: clones share
/// everything, and the last [`close`](Importer::close) ends it (or
/// [`shutdown`](Importer::shutdown), for every clone at once).
#[derive(Clone)]
pub struct Importer {
    inner: Arc<Inner>,
    /// One count per handle the app holds (background tasks never clone it), so `close`
    /// knows which handle is the last.
    handles: Arc<()>,
}

struct Inner {
    settings: Settings,
    store: Store,
    queue: SyncMutex<Option<JobQueue>>,
    owner: SyncMutex<QueueOwner>,
    backend: Mutex<Backend>,
    client: AniListClient,
    events: EventBus,
    notices: broadcast::Sender<Notice>,
    cache: Arc<ReadCache>,
    failpoints: FailPoints,
    clock: Arc<dyn Clock>,
    running: Mutex<Option<running::Running>>,
    /// The running pipeline's halt switch, readable without waiting for `running`.
    halt_switch: SyncMutex<Option<crate::halt::HaltSwitch>>,
    last_halt: SyncMutex<Option<Halt>>,
    watch: watch::ProgressWatch,
    read_only: bool,
}

/// Options for [`Importer::builder`].
#[must_use]
pub struct ImporterBuilder {
    settings: Settings,
    failpoints: FailPoints,
    clock: Arc<dyn Clock>,
    read_only: bool,
    without_queue: bool,
}

impl ImporterBuilder {
    /// Named failure points for tests (see [`FailPoints`]).
    pub fn failpoints(mut self, failpoints: FailPoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// Where "now" comes from (freshness, cache tiers, the budget's window).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens for reading only: works on a read-only data dir, never takes the queue, and
    /// refuses imports. For status views and `show`.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Opens the store only, never the embedded queue file: imports are recorded for the
    /// process that runs the workers. For short commands (`cancel`, `fetch`) that must not
    /// hold the queue while a worker process starts.
    pub fn without_queue(mut self) -> Self {
        self.without_queue = true;
        self
    }

    pub async fn open(self) -> Result<Importer, Error> {
        Importer::open_with(self).await
    }
}

impl Importer {
    /// Opens the data dir the settings name (creating it if needed). If this process can own
    /// the embedded queue, imports a crash left unfinished are queued again at once; if
    /// another process owns it, this one records imports for that process to run.
    pub async fn open(settings: Settings) -> Result<Self, Error> {
        Self::builder(settings).open().await
    }

    pub fn builder(settings: Settings) -> ImporterBuilder {
        ImporterBuilder {
            settings,
            failpoints: FailPoints::default(),
            clock: Arc::new(SystemClock),
            read_only: false,
            without_queue: false,
        }
    }

    async fn open_with(b: ImporterBuilder) -> Result<Self, Error> {
        let mode = if b.read_only {
            Mode::Read
        } else if b.without_queue {
            Mode::Record
        } else {
            Mode::ReadWrite
        };
        let backend = Backend::open(&b.settings, mode, &b.failpoints).await?;
        let store = backend.store.clone();
        let budget = RateBudget::new(
            b.settings.budget(),
            Arc::new(StoreLedger(store.clone())),
            b.clock.clone(),
        );
        let client = match AniListClient::new(b.settings.client(), Arc::new(budget)) {
            Ok(client) => client,
            Err(reason) => {
                store.close().await;
                return Err(Error::InvalidOption {
                    name: "anilist.url",
                    value: b.settings.anilist_url().to_string(),
                    expected: reason,
                });
            }
        };
        let (notices, _) = broadcast::channel(4096);
        let cache = Arc::new(ReadCache::new(
            b.settings.cache_entries,
            b.settings.basic_ttl,
            b.settings.detailed_ttl,
            b.settings.franchise_ttl,
            b.clock.clone(),
        ));
        // A cache stays true to the store only where every rewrite is heard: in the embedded
        // queue's owner (the sole writer), or on PostgreSQL, whose flushes announce theirs.
        let caching = b.settings.cache_entries > 0;
        match backend.owner {
            QueueOwner::ThisProcess => cache.set_enabled(caching),
            QueueOwner::Shared if caching => {
                cache.set_enabled(true);
                rewrites::keep_cache_true(store.clone(), &cache, b.failpoints.clone());
            }
            _ => cache.set_enabled(false),
        }
        let importer = Self {
            handles: Arc::new(()),
            inner: Arc::new(Inner {
                queue: SyncMutex::new(backend.queue.clone()),
                owner: SyncMutex::new(backend.owner),
                backend: Mutex::new(backend),
                settings: b.settings,
                store,
                client,
                events: EventBus::default(),
                notices,
                cache,
                failpoints: b.failpoints,
                clock: b.clock,
                running: Mutex::new(None),
                halt_switch: SyncMutex::new(None),
                last_halt: SyncMutex::new(None),
                watch: watch::ProgressWatch::default(),
                read_only: b.read_only,
            }),
        };
        importer.forward_budget_changes();
        Ok(importer)
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Who runs the workers over this data.
    pub fn queue_owner(&self) -> QueueOwner {
        *self.inner.owner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> Option<JobQueue> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    fn writable(&self) -> Result<(), Error> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Starts an import of `root`'s franchise and returns its id at once. The walk runs in
    /// the workers: this process's (see [`Importer::start`]) or the queue owner's.
    pub async fn import(&self, root: AnimeId, options: &ImportOptions) -> Result<i64, Error> {
        self.writable()?;
        options.validate()?;
        let now = self.now();
        let queue = self.queue();
        let push = if queue.is_some() {
            Push::Caller
        } else {
            Push::HandOff
        };
        let (import_id, to_push) = create_import(
            &self.inner.store,
            root,
            &options.rules(),
            fresh_since(now, self.inner.settings.franchise_ttl),
            now,
            push,
        )
        .await?;
        if let Some(queue) = queue {
            push_items(&queue, &to_push).await?;
        }
        Ok(import_id)
    }

    /// Cancels an import: its queued items become `cancelled` and are never fetched; jobs
    /// already in flight finish. Honoured by the process running the workers within a second,
    /// whichever process asks. [`Error::AlreadyFinished`] if it had finished (nothing is
    /// queued to cancel); [`Error::UnknownImport`] if there is no such import.
    pub async fn cancel(&self, import_id: i64) -> Result<ImportProgress, Error> {
        self.writable()?;
        let before = self.progress(import_id).await?;
        if before.is_finished() {
            return Err(Error::AlreadyFinished {
                import_id,
                state: before.state,
            });
        }
        cancel_import(&self.inner.store, import_id, self.now())
            .await?
            .ok_or(Error::UnknownImport(import_id))?;
        self.progress(import_id).await
    }

    /// Queues an import's failed (and cancelled) items again, under the same import id.
    /// [`Error::NothingToRetry`] if it has none; [`Error::UnknownImport`] if there is no such
    /// import.
    pub async fn retry(&self, import_id: i64) -> Result<ImportProgress, Error> {
        self.writable()?;
        let before = self.progress(import_id).await?;
        if before.failed == 0 && before.cancelled == 0 {
            return Err(Error::NothingToRetry {
                import_id,
                state: before.state,
                done: before.done,
                queued: before.queued,
            });
        }
        let queue = self.queue();
        let push = if queue.is_some() {
            Push::Caller
        } else {
            Push::HandOff
        };
        let to_push = retry_import(&self.inner.store, import_id, self.now(), push)
            .await?
            .ok_or(Error::UnknownImport(import_id))?;
        if let Some(queue) = queue {
            push_items(&queue, &to_push).await?;
        }
        self.progress(import_id).await
    }

    /// The imports the filter selects, newest first.
    pub async fn imports(&self, filter: &ImportFilter) -> Result<Vec<ImportProgress>, Error> {
        Ok(self.inner.store.imports(filter).await?)
    }

    /// One import's progress.
    pub async fn progress(&self, import_id: i64) -> Result<ImportProgress, Error> {
        self.imports(&ImportFilter::one(import_id))
            .await?
            .into_iter()
            .next()
            .ok_or(Error::UnknownImport(import_id))
    }

    /// The failed items of an import, with their reasons (at most `limit`).
    pub async fn failures(
        &self,
        import_id: i64,
        limit: u32,
    ) -> Result<Vec<(AnimeId, String)>, Error> {
        Ok(self.inner.store.failed_items(import_id, limit).await?)
    }

    /// Typed events in commit order: import progress, anime stored, import finished, the
    /// budget parked or resumed. A subscriber that falls behind gets `Event::Lagged` and can
    /// re-read [`Importer::imports`]; it never silently misses a "finished".
    pub fn subscribe(&self) -> EventStream {
        let stream = self.inner.events.subscribe();
        self.ensure_progress_watch();
        stream
    }

    /// Asks AniList directly about these anime (one request per 50 ids, through the shared
    /// budget) and stores nothing.
    ///
    /// While AniList is known to be down and its next probe is not due, it fails at once
    /// with [`Error::UpstreamDown`] instead of waiting for the probe.
    pub async fn fetch(&self, ids: &[AnimeId]) -> Result<Fetched, Error> {
        if let Ok(upstream) = self.upstream().await
            && upstream.is_down()
            && upstream.retry_at_ms.is_some()
        {
            return Err(Error::UpstreamDown(upstream));
        }
        let answer = self.inner.client.fetch_batch(ids).await?;
        Ok(Fetched {
            found: answer.found,
            not_found: answer.not_found,
            malformed: answer.malformed,
        })
    }

    /// Why the workers stopped by themselves, if they did: a full disk, a read-only or
    /// damaged store (never AniList being down: that is waited out). Said while halted, and
    /// after `stop`, until the next `start`.
    pub fn halted(&self) -> Option<Halt> {
        if let Some(halt) = self.running_halt() {
            return Some(halt);
        }
        self.inner
            .last_halt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn push_items(queue: &JobQueue, items: &[QueuedItem]) -> Result<(), Error> {
    if items.is_empty() {
        return Ok(());
    }
    let jobs: Vec<FetchJob> = items.iter().map(FetchJob::from).collect();
    queue.push(Lane::Background, &jobs).await?;
    Ok(())
}
