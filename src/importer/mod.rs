//! `Importer`, the library's front door: open the store and queue, start the workers, enqueue a
//! franchise import, open one anime on click, and report status.

mod running;
mod status;

use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use crate::anime::AnimeId;
use crate::config::Settings;
use crate::error::Error;
use crate::producer::{ImportOptions, create_import};
use crate::queue::{FetchJob, JobQueue, Lane};
use crate::store::{QueuedItem, Store, StoredAnime, fresh_since};
use crate::upstream::{AniListClient, RateBudget};
use crate::workers::{Notice, NoticeOutcome};

pub use status::{ImportStatus, Status, WorkerInfo, status_of_store};

/// An open data directory: the SQLite store, the queue file, and one shared rate budget.
pub struct Importer {
    settings: Settings,
    store: Store,
    queue: JobQueue,
    client: AniListClient,
    notices: broadcast::Sender<Notice>,
    running: Mutex<Option<running::Running>>,
    /// Imports up to this id were re-queued by `open`; the watcher takes over after it.
    requeued_up_to: i64,
}

impl Importer {
    /// Opens the data directory. Imports a crash left unfinished are re-queued at once
    /// (re-pushes of jobs still in the queue are dropped by their idempotency keys).
    pub async fn open(settings: Settings) -> Result<Self, Error> {
        let store = Store::open_sqlite(&settings.store_path()).await?;
        let queue = match JobQueue::open(&settings.queue_path()).await {
            Ok(queue) => queue.with_max_attempts(settings.max_attempts())?,
            Err(e) => {
                // Leave the store as complete on disk as we found it.
                store.close().await;
                return Err(e.into());
            }
        };
        let budget = RateBudget::new(settings.budget()).map_err(Error::InvalidOption)?;
        let client = AniListClient::new(settings.client(), Arc::new(budget))
            .map_err(Error::InvalidOption)?;
        let (notices, _) = broadcast::channel(4096);
        // Read before the re-queue: an import another process records in between is newer
        // than this mark, so the watcher pushes it (pushes are idempotent, overlap is harmless).
        let requeued_up_to = store.latest_import_id().await?;
        let importer = Self {
            settings,
            store,
            queue,
            client,
            notices,
            running: Mutex::new(None),
            requeued_up_to,
        };
        let pending = importer.store.queued_items().await?;
        if !pending.is_empty() {
            let pushed = importer.enqueue(pending).await?;
            tracing::info!(pushed, "re-queued unfinished import items");
        }
        Ok(importer)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts an import of `root`'s franchise and returns its id at once. The walk runs in the
    /// workers (see [`Importer::start`]), here or in whichever process starts them next.
    pub async fn import(&self, root: AnimeId, options: &ImportOptions) -> Result<i64, Error> {
        options.validate().map_err(Error::InvalidOption)?;
        let (import_id, to_fetch) = create_import(
            &self.store,
            root,
            options,
            fresh_since(self.settings.franchise_ttl()),
        )
        .await?;
        self.enqueue(to_fetch).await?;
        Ok(import_id)
    }

    /// The anime the user just clicked, with its relations: from the store if it is fresh,
    /// else fetched in the interactive lane, ahead of every background import.
    pub async fn open_anime(&self, id: AnimeId) -> Result<StoredAnime, Error> {
        let detailed = self.settings.detailed_ttl();
        if let Some(anime) = self.store.anime(id).await?
            && anime.fetched_at_ms >= fresh_since(detailed)
        {
            return Ok(anime);
        }
        if self.running.lock().await.is_none() {
            return Err(Error::NotRunning);
        }
        let mut notices = self.notices.subscribe();
        let job = FetchJob {
            import_id: None,
            anime_id: id,
            depth: 0,
        };
        self.queue.push(Lane::Interactive, vec![job]).await?;
        loop {
            match notices.recv().await {
                Ok(notice) if notice.anime_id == id => {
                    return match notice.outcome {
                        NoticeOutcome::Stored => {
                            self.store.anime(id).await?.ok_or(Error::Stopped(id))
                        }
                        NoticeOutcome::NotFound => Err(Error::NotFound(id)),
                        NoticeOutcome::Failed(reason) => Err(Error::FetchFailed { id, reason }),
                    };
                }
                Ok(_) => {}
                // Missed notices: the store has the answer if it was ours.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(anime) = self.store.anime(id).await?
                        && anime.fetched_at_ms >= fresh_since(detailed)
                    {
                        return Ok(anime);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Stopped(id)),
            }
        }
    }

    /// Subscribes to the notices the flusher publishes after each commit.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    async fn enqueue(&self, items: Vec<QueuedItem>) -> Result<usize, Error> {
        let jobs = items.iter().map(FetchJob::from).collect();
        Ok(self.queue.push(Lane::Background, jobs).await?)
    }
}

/// Records an import in the store alone, for when another process owns the queue: its
/// workers pick the import up within a second. Returns the import id.
pub async fn record_import(
    settings: &Settings,
    root: AnimeId,
    options: &ImportOptions,
) -> Result<i64, Error> {
    options.validate().map_err(Error::InvalidOption)?;
    let store = Store::open_sqlite(&settings.store_path()).await?;
    let since = fresh_since(settings.franchise_ttl());
    let (import_id, _) = create_import(&store, root, options, since).await?;
    store.close().await;
    Ok(import_id)
}
