//! Opening the store and the queue a `Settings` names, and what this process may do with
//! them: own the embedded queue (run the workers), record work for the process that owns it,
//! or share a database with any number of processes. The redb single-owner model lives here
//! and in `owner.rs`, not in the importer's callers.

use std::sync::Arc;

use crate::config::Settings;
use crate::error::Error;
use crate::failpoint::FailPoints;
use crate::queue::JobQueue;
use crate::queue::QueueError;
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::postgres::PgQueue;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Who runs the workers over this data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueOwner {
    /// This process owns the embedded queue file: it runs the workers.
    ThisProcess,
    /// Another process owns the embedded queue file; this one records imports for it.
    OtherProcess { pid: Option<u32> },
    /// A shared database: every process pushes jobs and may run workers.
    Shared,
}

/// How to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read and write; take the queue if it is free.
    ReadWrite,
    /// Read and write the store; never take the queue (work is handed to its owner).
    Record,
    /// Only read (a read-only data dir is fine); never take the queue.
    Read,
}

pub(crate) struct Backend {
    pub store: Store,
    pub queue: Option<JobQueue>,
    pub owner: QueueOwner,
    settings: Settings,
}

impl Backend {
    pub(crate) async fn open(
        settings: &Settings,
        mode: Mode,
        failpoints: &FailPoints,
    ) -> Result<Self, Error> {
        if let Some(url) = settings.database_url() {
            // One pool for the store and the queue: the flush pushes inside its transaction.
            // A one-shot reader runs no workers: two connections serve it.
            let pool_size = match mode {
                Mode::Read => settings.database_pool_size().min(2),
                Mode::ReadWrite | Mode::Record => settings.database_pool_size(),
            };
            let store = PgStore::connect(url, settings.max_attempts, pool_size)
                .await?
                .with_failpoints(failpoints.clone());
            let location = format!("{} (schema apalis)", crate::store::redact_url(url));
            let queue = PgQueue::new(store.pool().clone(), location, settings.max_attempts);
            return Ok(Self {
                store: Store::new(Arc::new(store)),
                queue: Some(JobQueue::new(Arc::new(queue))),
                owner: QueueOwner::Shared,
                settings: settings.clone(),
            });
        }
        let store = match mode {
            Mode::ReadWrite | Mode::Record => SqliteStore::open(&settings.store_path()).await?,
            Mode::Read => SqliteStore::open_for_reading(&settings.store_path()).await?,
        };
        let store = Store::new(Arc::new(store));
        let mut backend = Self {
            store,
            queue: None,
            owner: QueueOwner::OtherProcess { pid: None },
            settings: settings.clone(),
        };
        if mode == Mode::ReadWrite {
            if let Err(e) = backend.take_queue().await {
                backend.store.close().await;
                return Err(e);
            }
        } else {
            backend.owner = QueueOwner::OtherProcess {
                pid: crate::queue::embedded::read_owner(&settings.queue_path()),
            };
        }
        Ok(backend)
    }

    /// Takes the embedded queue if no other process holds it; true if this process owns it
    /// now. Locked is not an error: this process records work for the owner.
    pub(crate) async fn take_queue(&mut self) -> Result<bool, Error> {
        if self.queue.is_some() {
            return Ok(true);
        }
        let path = self.settings.queue_path();
        match EmbeddedQueue::open(&path, self.settings.max_attempts).await {
            Ok(queue) => {
                self.queue = Some(JobQueue::new(Arc::new(queue)));
                self.owner = QueueOwner::ThisProcess;
                Ok(true)
            }
            Err(QueueError::Locked { pid, .. }) => {
                self.owner = QueueOwner::OtherProcess { pid };
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The depth of an embedded queue nobody runs, read by opening its file for a moment. `None`
/// if there is no file or another process holds it.
pub(crate) async fn peek_queue_depth(settings: &Settings) -> Option<crate::queue::QueueDepth> {
    let path = settings.queue_path();
    if settings.database_url().is_some() || !path.exists() {
        return None;
    }
    let queue = EmbeddedQueue::open(&path, settings.max_attempts)
        .await
        .ok()?;
    crate::queue::QueueDriver::depth(&queue).await.ok()
}
