//! The embedded queue: one redb file holding both lanes, owned by exactly one process (redb
//! locks the file). That process runs the workers; every other one records its imports in the
//! store, and the owner picks them up (see `importer/owner.rs`).

mod open;
mod pidfile;
mod tables;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BackendFactory, TaskBuilder, TaskId};
use apalis_redb::factory::RedbStorageFactory;
use apalis_redb::{Config, Connection, RedbStorage};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::config::RunOptions;
use super::depth::QueueDepth;
use super::error::QueueError;
use super::job::{FetchJob, JobHandler, Lane};
use super::{JobPresence, QueueDriver};

pub(crate) use pidfile::read_owner;

/// Jobs per push transaction.
const PUSH_CHUNK: usize = 5_000;

/// A handle over ONE redb file holding both lanes. redb lets one process open a file once,
/// so every producer and worker of the process shares this handle.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedQueue {
    path: Arc<PathBuf>,
    conn: Connection,
    factory: RedbStorageFactory,
    max_attempts: usize,
}

impl EmbeddedQueue {
    /// Opens or creates the queue file. Another process holding it gives `QueueError::Locked`
    /// (naming its pid when it recorded one in `<path>.pid`); a damaged file gives
    /// `QueueError::Corrupt`. On success this process's pid is recorded in `<path>.pid`.
    pub(crate) async fn open(path: &Path, max_attempts: usize) -> Result<Self, QueueError> {
        let conn = open::open_database(path).await?;
        let factory = RedbStorageFactory::new(conn.clone())
            .await
            .map_err(|source| classify(path, "creating the lane storages", source))?;
        Ok(Self {
            path: Arc::new(path.to_path_buf()),
            conn,
            factory,
            max_attempts: max_attempts.max(1),
        })
    }

    /// The same file, pushing jobs that may run `max_attempts` times.
    #[cfg(test)]
    pub(crate) fn with_max_attempts(&self, max_attempts: usize) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..self.clone()
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    async fn push_chunk(&self, lane: Lane, jobs: &[FetchJob]) -> Result<usize, QueueError> {
        let mut tasks = Vec::with_capacity(jobs.len());
        // Time-ordered ids, increasing within the chunk: tasks append at the end of the file's
        // trees. Ids packed from (import, anime, round) scattered the inserts and wrote 4.6×
        // the bytes; the triple is the idempotency key instead.
        let mut ids = ulid::Generator::new();
        for job in jobs {
            let args = serde_json::to_vec(job).map_err(|source| QueueError::Encode {
                anime_id: job.anime_id,
                source,
            })?;
            let mut task = TaskBuilder::new(args).max_attempts(self.max_attempts);
            if let Ok(id) = ids.generate() {
                task = task.task_id(TaskId::from_ulid(id));
            }
            if let Some(key) = job.queue_key() {
                task = task.idempotency_key(key);
            }
            tasks.push(task.build());
        }
        let (enqueued, scheduled) =
            apalis_redb::queries::push_tasks(&self.conn, &push_config(lane), tasks)
                .await
                .map_err(|source| classify(&self.path, "pushing jobs", source))?;
        Ok(enqueued as usize + scheduled as usize)
    }

    /// A storage over this file for the queue named in `config`.
    pub(crate) fn storage(&self, config: Config) -> Result<RedbStorage<FetchJob>, QueueError> {
        let mut factory = self.factory.clone();
        BackendFactory::<FetchJob>::create_with_config(&mut factory, config)
            .map_err(|source| classify(&self.path, "creating a lane storage", source))
    }
}

impl EmbeddedQueue {
    /// Pushes `jobs` as franchise did before keys: the (import, anime, round) triple packed
    /// into the task id, no idempotency key. For the test that such a file still works.
    #[cfg(test)]
    pub(crate) async fn push_with_packed_ids(&self, lane: Lane, jobs: &[FetchJob]) {
        let tasks: Vec<_> = jobs
            .iter()
            .map(|job| {
                let mut task = TaskBuilder::new(serde_json::to_vec(job).expect("a job encodes"));
                if let Some(id) = job.task_id() {
                    task = task.task_id(TaskId::from_ulid(id));
                }
                task.build()
            })
            .collect();
        apalis_redb::queries::push_tasks(&self.conn, &push_config(lane), tasks)
            .await
            .expect("the push goes in");
    }

    /// Runs `read` in one read transaction of the file, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, QueueError> {
        use redb::ReadableDatabase;
        let conn = self.conn.clone();
        let result = tokio::task::spawn_blocking(move || {
            let txn = conn.database().begin_read()?;
            read(&txn)
        })
        .await;
        self.blocking_result(operation, result)
    }

    fn blocking_result<T>(
        &self,
        operation: &'static str,
        result: Result<Result<T, redb::Error>, tokio::task::JoinError>,
    ) -> Result<T, QueueError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(
                &self.path,
                operation,
                apalis_redb::Error::Database(e),
            )),
            Err(join) => Err(QueueError::Broken {
                location: self.location(),
                reason: format!("{operation} did not finish: {join}"),
            }),
        }
    }
}

/// A dead worker is judged after this many heartbeats without news. With 1 s timestamp
/// resolution and a blocking pool that can lag, fewer than 3 risks stealing a live worker's jobs.
const MISSED_HEARTBEATS: usize = 3;

/// The storage settings of one lane. `batch_size == concurrency` keeps fetched-but-waiting
/// tasks (during which the worker sends no heartbeat) to a minimum.
pub(crate) fn lane_config(lane: Lane, concurrency: usize, heartbeat: Duration) -> Config {
    Config::default()
        .queue(lane.queue_name())
        .batch_size(concurrency.max(1))
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS)
}

/// The settings for pushing and reading: only the queue name matters there.
fn push_config(lane: Lane) -> Config {
    // The heartbeat is a worker's; a push only names the queue.
    lane_config(lane, 1, Duration::from_secs(1))
}

#[async_trait]
impl QueueDriver for EmbeddedQueue {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// One redb transaction per 5,000 jobs (so pushing 100,000 does not hold them all
    /// encoded in memory at once).
    async fn push(&self, lane: Lane, jobs: &[FetchJob]) -> Result<usize, QueueError> {
        let mut enqueued = 0;
        for chunk in jobs.chunks(PUSH_CHUNK) {
            enqueued += self.push_chunk(lane, chunk).await?;
        }
        Ok(enqueued)
    }

    /// From table lengths: the same cost with 100 or 100,000 finished jobs behind it.
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.read("reading queue depth", |txn| {
            Ok(QueueDepth {
                interactive: tables::depth(txn, &push_config(Lane::Interactive))?,
                background: tables::depth(txn, &push_config(Lane::Background))?,
            })
        })
        .await
    }

    async fn presence(&self, jobs: &[FetchJob]) -> Result<Vec<JobPresence>, QueueError> {
        let jobs = jobs.to_vec();
        self.read("looking up a job", move |txn| {
            let config = push_config(Lane::Background);
            jobs.iter()
                .map(|job| match job.queue_key() {
                    None => Ok(JobPresence::Absent),
                    Some(key) => {
                        let legacy = job.task_id().map(|id| id.to_string());
                        tables::presence(txn, &config, &key, legacy.as_deref())
                    }
                })
                .collect()
        })
        .await
    }

    async fn prune(&self, finished_before: Duration) -> Result<u64, QueueError> {
        let conn = self.conn.clone();
        let cutoff = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(finished_before)
            .as_secs();
        let pruned = tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for lane in Lane::ALL {
                removed += tables::prune(conn.database(), &push_config(lane), cutoff)?;
            }
            Ok::<_, redb::Error>(removed)
        })
        .await;
        self.blocking_result("pruning finished jobs", pruned)
    }

    async fn run_worker(
        &self,
        lane: Lane,
        name: &str,
        options: &RunOptions,
        handler: JobHandler,
        shutdown: &CancellationToken,
    ) -> Result<(), QueueError> {
        worker::run_worker(self, lane, name, options, handler, shutdown).await
    }

    async fn health(&self) -> Result<(), QueueError> {
        let conn = self.conn.clone();
        let probe = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let txn = conn.database().begin_write()?;
            txn.commit()?;
            Ok(())
        })
        .await;
        self.blocking_result("checking the queue file", probe)
    }
}

/// Turns an apalis-redb error into the error a person can act on: a full disk, a file redb
/// will no longer write after a failed write, a damaged file, or a plain backend failure.
pub(crate) fn classify(
    path: &Path,
    operation: &'static str,
    error: apalis_redb::Error,
) -> QueueError {
    let location = path.display().to_string();
    if let apalis_redb::Error::Database(db) = &error {
        match db {
            redb::Error::Io(io) if is_disk_full(io) => {
                return QueueError::DiskFull {
                    location,
                    reason: io.to_string(),
                };
            }
            redb::Error::PreviousIo | redb::Error::LockPoisoned(_) => {
                // redb refuses every write after a failed one until the file is reopened. The
                // usual cause is a full disk: say so when the folder cannot take a small write.
                if let Some(reason) = folder_is_full(path) {
                    return QueueError::DiskFull { location, reason };
                }
                return QueueError::Broken {
                    location,
                    reason: db.to_string(),
                };
            }
            redb::Error::Corrupted(reason) => {
                return QueueError::Corrupt {
                    path: path.to_path_buf(),
                    reason: reason.clone(),
                };
            }
            _ => {}
        }
    }
    QueueError::Backend {
        location,
        operation,
        reason: error.to_string(),
    }
}

/// ENOSPC, EDQUOT, or a file-size limit (EFBIG): no more room for the file.
pub(crate) fn is_disk_full(io: &std::io::Error) -> bool {
    matches!(io.raw_os_error(), Some(28) | Some(122) | Some(27))
        || matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull
                | std::io::ErrorKind::QuotaExceeded
                | std::io::ErrorKind::FileTooLarge
        )
}

/// Whether the folder of `path` cannot take a 64 KiB write; the reason if it cannot.
fn folder_is_full(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let probe = dir.join(format!(".franchise-space-check-{}", std::process::id()));
    let result = std::fs::write(&probe, vec![0u8; 64 * 1024]);
    let _ = std::fs::remove_file(&probe);
    match result {
        Err(e) if is_disk_full(&e) => Some(e.to_string()),
        _ => None,
    }
}
