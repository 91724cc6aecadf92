//! The queue file's tables as apalis-redb lays them out, read and pruned directly where its
//! API costs too much: depth from table lengths, presence by idempotency key, and retention.
//!
//! apalis-redb 0.1's statistics walk the last week of finished tasks on every read, and it
//! never forgets a task: a depth read (every heartbeat) grew with every job ever done. The
//! table names and types here are apalis-redb's own (`Config::*_set()`, `queries::tables`);
//! redb refuses a table opened with other types, so a change there fails loudly, in tests.

use apalis::prelude::Status;
use apalis_redb::Config;
use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};
use serde::Deserialize;

use crate::queue::JobPresence;
use crate::queue::depth::LaneDepth;

/// Finished tasks removed per write transaction, so a prune never holds the file for long.
const PRUNE_CHUNK: usize = 5_000;

fn data(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}
fn meta(name: &str) -> TableDefinition<'_, &'static str, &'static str> {
    TableDefinition::new(name)
}
fn active(name: &str) -> TableDefinition<'_, u64, &'static str> {
    TableDefinition::new(name)
}
fn timeline(name: &str) -> TableDefinition<'_, (u64, &'static str), ()> {
    TableDefinition::new(name)
}
fn inflight(name: &str) -> MultimapTableDefinition<'_, &'static str, &'static str> {
    MultimapTableDefinition::new(name)
}
fn keys(name: &str) -> TableDefinition<'_, &'static str, (&'static str, u64)> {
    TableDefinition::new(name)
}

/// The part of apalis-redb's task metadata (JSON) this module reads.
#[derive(Deserialize)]
struct TaskMeta {
    status: Status,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// The rows of a table that may not exist yet (a lane nobody pushed to).
fn len_of<T: ReadableTableMetadata>(table: Result<T, TableError>) -> Result<u64, redb::Error> {
    match table {
        Ok(table) => Ok(table.len()?),
        Err(TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The lane's task counts from table lengths: the same figures as apalis-redb's
/// `PENDING_JOBS`, `RUNNING_JOBS`, `DONE_JOBS` and `FAILED_JOBS`, without walking any.
pub(super) fn depth(txn: &ReadTransaction, config: &Config) -> Result<LaneDepth, redb::Error> {
    Ok(LaneDepth {
        pending: len_of(txn.open_table(active(&config.active_jobs_list())))?
            + len_of(txn.open_table(timeline(&config.scheduled_jobs_set())))?,
        running: len_of(txn.open_multimap_table(inflight(&config.inflight_jobs_set())))?,
        done: len_of(txn.open_table(timeline(&config.done_jobs_set())))?,
        failed: len_of(txn.open_table(timeline(&config.dead_jobs_set())))?,
    })
}

/// Where the task pushed under `key` stands; `legacy_id` is the id a task pushed before
/// keys existed was given (the key's triple packed into a ULID).
pub(super) fn presence(
    txn: &ReadTransaction,
    config: &Config,
    key: &str,
    legacy_id: Option<&str>,
) -> Result<JobPresence, redb::Error> {
    let task_id = match txn.open_table(keys(&config.idempotency_key_set())) {
        Ok(table) => table.get(key)?.map(|v| v.value().0.to_owned()),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(task_id) = task_id.or_else(|| legacy_id.map(str::to_owned)) else {
        return Ok(JobPresence::Absent);
    };
    let metas = match txn.open_table(meta(&config.job_meta_hash())) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(JobPresence::Absent),
        Err(e) => return Err(e.into()),
    };
    let Some(raw) = metas.get(task_id.as_str())? else {
        return Ok(JobPresence::Absent);
    };
    // A task whose metadata does not parse is taken as live: the worker still knows it.
    Ok(match serde_json::from_str::<TaskMeta>(raw.value()) {
        Ok(TaskMeta {
            status: Status::Done | Status::Failed | Status::Killed,
            ..
        }) => JobPresence::Finished,
        _ => JobPresence::Live,
    })
}

/// Removes the lane's tasks that finished (done, or failed for good) at or before `cutoff`
/// (Unix seconds, apalis-redb's clock): their data, metadata, timeline entry and key. Walks
/// only what it removes, oldest first. Returns how many went.
pub(super) fn prune(db: &Database, config: &Config, cutoff: u64) -> Result<u64, redb::Error> {
    let mut removed = 0;
    loop {
        let txn = db.begin_write()?;
        let mut taken = 0;
        {
            let mut data = txn.open_table(data(&config.job_data_hash()))?;
            let mut metas = txn.open_table(meta(&config.job_meta_hash()))?;
            let mut key_table = txn.open_table(keys(&config.idempotency_key_set()))?;
            for set in [config.done_jobs_set(), config.dead_jobs_set()] {
                let mut finished = txn.open_table(timeline(&set))?;
                let old: Vec<(u64, String)> = finished
                    .range((0, "")..(cutoff.saturating_add(1), ""))?
                    .take(PRUNE_CHUNK - taken)
                    .map(|entry| entry.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                    .collect::<Result<_, _>>()?;
                for (at, task_id) in &old {
                    finished.remove((*at, task_id.as_str()))?;
                    data.remove(task_id.as_str())?;
                    let key = metas
                        .remove(task_id.as_str())?
                        .and_then(|raw| serde_json::from_str::<TaskMeta>(raw.value()).ok())
                        .and_then(|m| m.idempotency_key);
                    if let Some(key) = key {
                        let ours = key_table
                            .get(key.as_str())?
                            .is_some_and(|v| v.value().0 == task_id.as_str());
                        if ours {
                            key_table.remove(key.as_str())?;
                        }
                    }
                }
                taken += old.len();
            }
        }
        txn.commit()?;
        removed += taken as u64;
        if taken < PRUNE_CHUNK {
            return Ok(removed);
        }
    }
}
