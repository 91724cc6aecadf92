//! The JobQueue handle: owns the open redb file, pushes jobs into a lane in bulk and reads the
//! depth of both lanes; `run` (in supervise.rs) starts the workers over the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apalis::prelude::{BackendFactory, Metrics, TaskBuilder};
use apalis_redb::factory::RedbStorageFactory;
use apalis_redb::{Config, Connection, RedbStorage};

use super::config::{DEFAULT_MAX_ATTEMPTS, push_config};
use super::depth::{LaneDepth, QueueDepth};
use super::error::QueueError;
use super::job::{FetchJob, Lane};
use super::open::open_database;

/// Jobs per push transaction.
const PUSH_CHUNK: usize = 5_000;

/// A cheap-to-clone handle over ONE redb file holding both lanes. redb lets one process open a
/// file once, so every producer and worker of the process must share this handle.
#[derive(Debug, Clone)]
pub struct JobQueue {
    path: Arc<PathBuf>,
    conn: Connection,
    factory: RedbStorageFactory,
    max_attempts: usize,
}

impl JobQueue {
    /// Opens or creates the queue file. Another process holding it gives `QueueError::Locked`
    /// (naming its pid when it recorded one in `<path>.pid`); a damaged file gives
    /// `QueueError::Corrupt`. On success this process's pid is recorded in `<path>.pid`.
    pub async fn open(path: &Path) -> Result<JobQueue, QueueError> {
        let conn = open_database(path).await?;
        let factory = RedbStorageFactory::new(conn.clone())
            .await
            .map_err(|source| QueueError::Backend {
                path: path.to_path_buf(),
                operation: "creating the lane storages",
                source: Box::new(source),
            })?;
        Ok(JobQueue {
            path: Arc::new(path.to_path_buf()),
            conn,
            factory,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        })
    }

    /// How many times jobs pushed from now on may run (default 5). apalis-redb stores the limit
    /// with each task, so jobs already queued keep theirs.
    pub fn with_max_attempts(mut self, max_attempts: usize) -> Result<JobQueue, QueueError> {
        if max_attempts == 0 {
            return Err(QueueError::InvalidOption {
                name: "max_attempts",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        self.max_attempts = max_attempts;
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn max_attempts(&self) -> usize {
        self.max_attempts
    }

    /// Pushes `jobs` into `lane`, one redb transaction per 5,000 jobs (so pushing 100,000 does
    /// not hold them all encoded in memory at once). A job whose idempotency key the queue
    /// still knows (queued, running, or finished within 7 days) is skipped, so a start-up
    /// re-push is safe. Returns how many were newly enqueued.
    pub async fn push(&self, lane: Lane, jobs: Vec<FetchJob>) -> Result<usize, QueueError> {
        let mut enqueued = 0;
        for chunk in jobs.chunks(PUSH_CHUNK) {
            enqueued += self.push_chunk(lane, chunk).await?;
        }
        Ok(enqueued)
    }

    async fn push_chunk(&self, lane: Lane, jobs: &[FetchJob]) -> Result<usize, QueueError> {
        let mut tasks = Vec::with_capacity(jobs.len());
        for job in jobs {
            let args = serde_json::to_vec(job).map_err(|source| QueueError::Encode {
                anime_id: job.anime_id,
                source,
            })?;
            let mut task = TaskBuilder::new(args).max_attempts(self.max_attempts);
            if let Some(key) = job.idempotency_key() {
                task = task.idempotency_key(key);
            }
            tasks.push(task.build());
        }
        let (enqueued, scheduled) =
            apalis_redb::queries::push_tasks(&self.conn, &push_config(lane), tasks)
                .await
                .map_err(|source| self.backend_error("pushing jobs", source))?;
        Ok(enqueued as usize + scheduled as usize)
    }

    /// Counts per lane and state, from one read transaction per lane.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut depth = QueueDepth::default();
        for lane in Lane::ALL {
            let storage = self.storage(push_config(lane))?;
            let stats = storage
                .fetch_by_queue()
                .await
                .map_err(|source| self.backend_error("reading queue depth", source))?;
            let counts = LaneDepth::from_statistics(&stats);
            match lane {
                Lane::Interactive => depth.interactive = counts,
                Lane::Background => depth.background = counts,
            }
        }
        Ok(depth)
    }

    /// A storage over this file for the queue named in `config`.
    pub(crate) fn storage(&self, config: Config) -> Result<RedbStorage<FetchJob>, QueueError> {
        let mut factory = self.factory.clone();
        BackendFactory::<FetchJob>::create_with_config(&mut factory, config)
            .map_err(|source| self.backend_error("creating a lane storage", source))
    }

    pub(crate) fn backend_error(
        &self,
        operation: &'static str,
        source: apalis_redb::Error,
    ) -> QueueError {
        QueueError::Backend {
            path: self.path.to_path_buf(),
            operation,
            source: Box::new(source),
        }
    }
}
