//! The scale-out queue: apalis-postgres, in the same database (and pool) as the store, so a
//! flush pushes the next level's jobs inside its own transaction. Any number of processes
//! push and run workers; each lane is its own apalis queue (a click never waits behind an
//! import on any process).
//!
//! Sharp edges of apalis-postgres 1.0 this module handles (read from its source):
//! - `Config::default()` sets `missed_heartbeats = 10` (a 300 s orphan timeout) while its
//!   docs say 2: it is set explicitly, so a killed process's jobs come back in seconds.
//! - A same-named worker is refused (`WorkerAlreadyExists`): every incarnation gets a fresh
//!   name (`queue/name.rs`).
//! - Orphan re-enqueue puts jobs back without checking attempts, so a job that kills its
//!   process would loop: the store counts each item's requests and fails the item past a
//!   bound (`workers/batcher.rs`).
//! - apalis#530 (long jobs re-enqueued as orphans): 1.0 judges orphans by the worker's
//!   heartbeat only, but a worker holding fetched tasks it cannot start sends none; a job
//!   re-delivered that way meets its item's state in the batcher's triage and costs nothing.
//! - A duplicate task id fails the whole insert (there is no ON CONFLICT): ids are checked
//!   first and the push runs in a savepoint.
//! - Task ids must be ULIDs; a push notifies workers only if its `run_at` is not after the
//!   transaction's start, so jobs are pushed due two seconds in the past (and workers also
//!   poll every second).

/// Whether a row of `apalis.jobs` is still to run: waiting, running, or failed with attempts
/// left. One text for the index and the depth read, so the planner matches them.
macro_rules! unfinished_job {
    () => {
        "(status IN ('Pending', 'Queued', 'Running') \
         OR (status = 'Failed' AND attempts < max_attempts))"
    };
}

/// Whether a row of `apalis.jobs` is finished: done, killed, or failed with no attempt left.
/// One text for the index, retention's prune and the finished-job counts.
macro_rules! finished_job {
    () => {
        "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))"
    };
}

mod finished;

use std::collections::HashSet;
use std::time::Duration;

use apalis::prelude::{BackendExt, TaskBuilder, TaskId, WorkerBuilder, WorkerBuilderExt};
use apalis_core::backend::ext::poll_strategy::Strategy;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use async_trait::async_trait;
use sqlx::{Acquire, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use super::config::RunOptions;
use super::depth::{LaneDepth, QueueDepth};
use super::error::QueueError;
use super::handler::{Adapter, Delivery};
use super::job::{FetchJob, JobHandler, Lane};
use super::supervise::{stopped, within_grace};
use super::{JobPresence, QueueDriver};

/// Heartbeats a worker may miss before its jobs are handed to others: 3 × the heartbeat
/// (6 s by default).
const MISSED_HEARTBEATS: usize = 3;
/// Workers look for jobs at least this often, whether or not a notification came.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Jobs one fetch claims: a level of a walk (up to a request's 50 ids) goes to one process.
const FETCH_BATCH: usize = 50;
/// Jobs are due this long before they are pushed, so the insert trigger notifies workers
/// even inside a transaction that began a moment earlier (apalis compares with `now()`).
const DUE_EARLIER_SECS: u64 = 2;

/// Finished jobs one prune statement deletes.
const PRUNE_CHUNK: i64 = 5_000;

pub(crate) use finished::count_finished_jobs;

/// Our indexes on apalis-postgres' table, created after its migrations (ours run first, on a
/// database where its table may not exist yet): one for the unfinished jobs, which every
/// depth read counts, and one for the finished ones, which retention deletes oldest first.
/// The predicates are the queries' own, so the planner uses them.
pub(crate) const INDEXES: [&str; 2] = [
    concat!(
        "CREATE INDEX IF NOT EXISTS franchise_jobs_unfinished ON apalis.jobs (job_type, status) \
         WHERE ",
        unfinished_job!()
    ),
    concat!(
        "CREATE INDEX IF NOT EXISTS franchise_jobs_finished ON apalis.jobs (job_type, done_at) \
         WHERE ",
        finished_job!()
    ),
];

#[derive(Debug, Clone)]
pub(crate) struct PgQueue {
    pool: PgPool,
    location: String,
    max_attempts: usize,
}

impl PgQueue {
    pub(crate) fn new(pool: PgPool, location: String, max_attempts: usize) -> Self {
        Self {
            pool,
            location,
            max_attempts: max_attempts.max(1),
        }
    }

    fn error(&self, operation: &'static str, e: impl std::fmt::Display) -> QueueError {
        QueueError::Backend {
            location: self.location.clone(),
            operation,
            reason: e.to_string(),
        }
    }

    /// A failed statement, its database error kept (a lost connection stays one).
    fn database(&self, operation: &'static str, source: sqlx::Error) -> QueueError {
        QueueError::Database {
            location: self.location.clone(),
            operation,
            source,
        }
    }
}

fn task_ids(jobs: &[FetchJob]) -> Vec<Option<String>> {
    jobs.iter()
        .map(|job| job.task_id().map(|id| id.to_string()))
        .collect()
}

/// Pushes `jobs` into `lane` on `conn` (a pooled connection, or a transaction's): jobs whose
/// id the queue already has are skipped. Returns how many were new.
pub(crate) async fn push_in(
    conn: &mut PgConnection,
    lane: Lane,
    jobs: &[FetchJob],
    max_attempts: usize,
) -> Result<usize, QueueError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let backend = |operation: &'static str, source: sqlx::Error| QueueError::Database {
        location: "in PostgreSQL (schema apalis)".to_string(),
        operation,
        source,
    };
    // Twice at most: a concurrent push of the same id between our check and our insert
    // fails the savepoint, and the second check sees it.
    for round in 0..2 {
        let ids = task_ids(jobs);
        let known: Vec<String> = ids.iter().flatten().cloned().collect();
        let existing: HashSet<String> = if known.is_empty() {
            HashSet::new()
        } else {
            sqlx::query("SELECT id FROM apalis.jobs WHERE id = ANY($1)")
                .bind(&known)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| backend("looking up jobs", e))?
                .iter()
                .filter_map(|row| row.try_get::<String, _>(0).ok())
                .collect()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut tasks = Vec::new();
        for (job, id) in jobs.iter().zip(&ids) {
            if id.as_ref().is_some_and(|id| existing.contains(id)) {
                continue;
            }
            let args = serde_json::to_vec(job).map_err(|source| QueueError::Encode {
                anime_id: job.anime_id,
                source,
            })?;
            let task_id = job.task_id().unwrap_or_else(ulid::Ulid::generate);
            let task = TaskBuilder::new(args)
                .task_id(TaskId::from_ulid(task_id))
                .max_attempts(max_attempts)
                .run_at_timestamp(now.saturating_sub(DUE_EARLIER_SECS))
                .build();
            tasks.push(task);
        }
        if tasks.is_empty() {
            return Ok(0);
        }
        let count = tasks.len();
        let mut savepoint = conn
            .begin()
            .await
            .map_err(|e| backend("opening a savepoint", e))?;
        match apalis_postgres::queries::push_tasks(&mut *savepoint, lane.queue_name(), tasks).await
        {
            Ok(()) => {
                savepoint
                    .commit()
                    .await
                    .map_err(|e| backend("pushing jobs", e))?;
                return Ok(count);
            }
            Err(e) if round == 0 && is_duplicate(&e) => {
                savepoint
                    .rollback()
                    .await
                    .map_err(|e| backend("pushing jobs", e))?;
            }
            Err(apalis_postgres::Error::Database(e)) => return Err(backend("pushing jobs", e)),
            Err(e) => {
                return Err(QueueError::Backend {
                    location: "in PostgreSQL (schema apalis)".to_string(),
                    operation: "pushing jobs",
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(0)
}

fn is_duplicate(error: &apalis_postgres::Error) -> bool {
    error.to_string().contains("duplicate key")
}

#[async_trait]
impl QueueDriver for PgQueue {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn push(&self, lane: Lane, jobs: &[FetchJob]) -> Result<usize, QueueError> {
        let mut total = 0;
        for chunk in jobs.chunks(5_000) {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(|e| self.database("pushing jobs", e))?;
            total += push_in(&mut tx, lane, chunk, self.max_attempts).await?;
            tx.commit()
                .await
                .map_err(|e| self.database("pushing jobs", e))?;
        }
        Ok(total)
    }

    /// Unfinished jobs counted through their partial index ([`INDEXES`]), finished ones read
    /// from the counts triggers keep ([`finished`]): both cost the same with any number of
    /// finished jobs behind them.
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        // A failed job with attempts left is fetched again: it is waiting, not failed.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT job_type, CASE WHEN status = 'Failed' THEN 'Pending' ELSE status END, \
             COUNT(*) FROM apalis.jobs WHERE job_type = ANY($1) AND {} \
             GROUP BY 1, 2 UNION ALL {}",
            unfinished_job!(),
            finished::READ
        )))
        .bind(Lane::ALL.map(|l| l.queue_name().to_string()).to_vec())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.database("reading queue depth", e))?;
        let mut depth = QueueDepth::default();
        for row in rows {
            let queue: String = row
                .try_get(0)
                .map_err(|e| self.database("reading queue depth", e))?;
            let status: String = row
                .try_get(1)
                .map_err(|e| self.database("reading queue depth", e))?;
            let count: i64 = row
                .try_get(2)
                .map_err(|e| self.database("reading queue depth", e))?;
            let lane = if queue == Lane::Interactive.queue_name() {
                &mut depth.interactive
            } else {
                &mut depth.background
            };
            add_status(lane, &status, count.max(0) as u64);
        }
        Ok(depth)
    }

    async fn prune(&self, finished_before: Duration) -> Result<u64, QueueError> {
        let mut removed = 0;
        loop {
            let done = sqlx::query(concat!(
                "DELETE FROM apalis.jobs WHERE id IN (SELECT id FROM apalis.jobs \
                 WHERE job_type = ANY($1) AND ",
                finished_job!(),
                " AND done_at < now() - make_interval(secs => $2) LIMIT $3)"
            ))
            .bind(Lane::ALL.map(|l| l.queue_name().to_string()).to_vec())
            .bind(finished_before.as_secs_f64())
            .bind(PRUNE_CHUNK)
            .execute(&self.pool)
            .await
            .map_err(|e| self.database("pruning finished jobs", e))?
            .rows_affected();
            removed += done;
            if done < PRUNE_CHUNK as u64 {
                return Ok(removed);
            }
        }
    }

    async fn presence(&self, jobs: &[FetchJob]) -> Result<Vec<JobPresence>, QueueError> {
        let ids: Vec<String> = task_ids(jobs).into_iter().flatten().collect();
        let rows = sqlx::query(
            "SELECT id, status, attempts, max_attempts FROM apalis.jobs WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.database("looking up jobs", e))?;
        let mut found = std::collections::HashMap::new();
        for row in rows {
            let id: String = row
                .try_get(0)
                .map_err(|e| self.database("looking up jobs", e))?;
            let status: String = row
                .try_get(1)
                .map_err(|e| self.database("looking up jobs", e))?;
            let attempts: i32 = row.try_get(2).unwrap_or(0);
            let max: i32 = row.try_get(3).unwrap_or(1);
            let finished = matches!(status.as_str(), "Done" | "Killed")
                || (status == "Failed" && attempts >= max);
            found.insert(
                id,
                if finished {
                    JobPresence::Finished
                } else {
                    JobPresence::Live
                },
            );
        }
        Ok(jobs
            .iter()
            .map(|job| {
                job.task_id()
                    .and_then(|id| found.get(&id.to_string()).copied())
                    .unwrap_or(JobPresence::Absent)
            })
            .collect())
    }

    async fn run_worker(
        &self,
        lane: Lane,
        name: &str,
        options: &RunOptions,
        handler: JobHandler,
        shutdown: &CancellationToken,
    ) -> Result<(), QueueError> {
        let config = Config::default()
            .queue(lane.queue_name())
            .batch_size(FETCH_BATCH.min(options.concurrency).max(1))
            .heartbeat_interval(options.heartbeat)
            .missed_heartbeats(MISSED_HEARTBEATS);
        // Woken by the insert trigger's notifications, and every second whatever happens.
        let wake = Strategy::new()
            .stream(Pubsub::new(
                self.pool.clone(),
                lane.queue_name().to_string(),
            ))
            .interval(POLL_EVERY);
        let storage = PostgresStorage::<FetchJob>::new(&self.pool)
            .with_config(config)
            .poll_with_strategy(wake);
        let adapter = Adapter {
            handler,
            lane,
            fallback_max_attempts: options.max_attempts,
        };
        let worker = WorkerBuilder::new(name)
            .backend(storage)
            .concurrency(options.concurrency)
            .build(move |job: FetchJob, delivery: Delivery| adapter.clone().call(job, delivery));
        let Some(ended) =
            within_grace(worker.run_until(stopped(shutdown)), shutdown, options.grace).await
        else {
            return Err(self.error(
                "stopping a worker",
                format!(
                    "in-flight jobs did not finish within {:?}; other processes take them \
                     over as orphans",
                    options.grace
                ),
            ));
        };
        ended.map_err(|e| self.error("running a worker", e))
    }

    async fn health(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.database("reaching the database", e))
    }
}

/// apalis' statuses: Pending and Queued wait, Running runs, Failed may still retry.
fn add_status(lane: &mut LaneDepth, status: &str, count: u64) {
    match status {
        "Pending" | "Queued" => lane.pending += count,
        "Running" => lane.running += count,
        "Done" => lane.done += count,
        _ => lane.failed += count,
    }
}
