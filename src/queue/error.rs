//! Everything that can go wrong opening, filling, reading or running the job queue, worded so
//! the person who sees it knows what happened and what to do next.

use std::path::{Path, PathBuf};

use crate::halt::{Halt, HaltKind};

/// A job-queue failure. Each message names the file or value at fault and what would be right.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
        "could not open the job queue {location}: {reason}. Check that its folder exists and is \
         writable by this user"
    )]
    Open { location: String, reason: String },

    #[error(
        "the disk holding the job queue {location} is full ({reason}). Nothing stored was lost: \
         free some space (or move the data dir to a bigger disk and point --data-dir at it) \
         and run franchise again to finish the imports"
    )]
    DiskFull { location: String, reason: String },

    #[error(
        "the job queue {location} stopped working after a failed write ({reason}); nothing \
         stored was lost: fix the disk and run franchise again"
    )]
    Broken { location: String, reason: String },

    #[error("job queue {location}: {operation} failed: {reason}")]
    Backend {
        location: String,
        operation: &'static str,
        reason: String,
    },

    /// A database-backed queue's statement failed; the database's own error is kept, so a
    /// lost connection still reads as one where this error is handled.
    #[error("job queue {location}: {operation} failed: {source}")]
    Database {
        location: String,
        operation: &'static str,
        #[source]
        source: sqlx::Error,
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
        "the job queue needs a running tokio runtime: call it from inside #[tokio::main] or a \
         Runtime::block_on"
    )]
    NoRuntime,
}

impl QueueError {
    /// The backend cannot go on until a person acts (a full disk, a damaged or poisoned
    /// file): the pipeline stops with this error instead of retrying.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::DiskFull { .. } | Self::Broken { .. } | Self::Corrupt { .. }
        )
    }
}

fn locked_text(path: &Path, pid: Option<u32>) -> String {
    let path = path.display();
    match pid {
        Some(pid) if pid == std::process::id() => format!(
            "the job queue {path} is already open in this process (pid {pid}); share the \
             existing handle instead of opening the file twice"
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

impl From<&QueueError> for Halt {
    fn from(e: &QueueError) -> Self {
        let kind = match e {
            QueueError::DiskFull { .. } => HaltKind::DiskFull,
            _ => HaltKind::Broken,
        };
        Halt {
            kind,
            message: e.to_string(),
        }
    }
}
