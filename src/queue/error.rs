//! Everything that can go wrong opening, filling, reading or running the job queue, worded so
//! the person who sees it knows what happened and what to do next.

use std::path::{Path, PathBuf};

/// A job-queue failure. Each message names the file or value at fault and what would be right.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{}", locked_text(path, *pid))]
    Locked { path: PathBuf, pid: Option<u32> },

    #[error(
        "the job queue file {} is damaged ({reason}). Move it aside (e.g. rename it to {}.broken) \
         and start franchise again: a fresh queue is created and unfinished imports are \
         re-queued from the SQL store at start-up",
        path.display(),
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "could not open the job queue file {}: {reason}. Check that its folder exists and is \
         writable by this user",
        path.display()
    )]
    Open { path: PathBuf, reason: String },

    #[error("job queue {}: {operation} failed: {source}", path.display())]
    Backend {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: Box<apalis_redb::Error>,
    },

    #[error("job for anime {anime_id} could not be encoded as JSON: {source}")]
    Encode {
        anime_id: crate::anime::AnimeId,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid queue option {name} = {value}: expected {expected}")]
    InvalidOption {
        name: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "JobQueue::run needs a running tokio runtime: call it from inside #[tokio::main] or a \
         Runtime::block_on"
    )]
    NoRuntime,
}

fn locked_text(path: &Path, pid: Option<u32>) -> String {
    let path = path.display();
    match pid {
        Some(pid) if pid == std::process::id() => format!(
            "the job queue {path} is already open in this process (pid {pid}); share the \
             existing JobQueue handle (it is cheap to clone) instead of opening the file twice"
        ),
        Some(pid) => format!(
            "the job queue {path} is owned by another franchise process (pid {pid}). Only one \
             process can own the queue: wait for it to finish, or stop it (e.g. `kill {pid}`). \
             `franchise status` reads progress from SQLite and works meanwhile"
        ),
        None => format!(
            "the job queue {path} is owned by another franchise process (its pid is unknown). \
             Only one process can own the queue: wait for it to finish, or stop it. \
             `franchise status` reads progress from SQLite and works meanwhile"
        ),
    }
}
