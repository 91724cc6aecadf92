//! Store failures a user can act on: a missing or unwritable place, a full disk, a locked,
//! corrupt or newer database, a lost connection. Each names where and what to do.

use std::path::{Path, PathBuf};

use crate::halt::{Halt, HaltKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },

    #[error(
        "the store at {location} is locked by another process; wait for it to finish, or stop it"
    )]
    Locked { location: String },

    #[error(
        "the store at {} is not a readable SQLite database ({reason}); move it aside to start \
         a fresh store",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "the store at {location} was migrated by a newer franchise (schema version {version} is \
         unknown to this one); upgrade franchise, or point --data-dir elsewhere"
    )]
    NewerSchema { location: String, version: i64 },

    #[error(
        "the store at {location} is read-only ({reason}): `franchise status` and `show` can \
         read it, but importing needs write access to it and its folder"
    )]
    ReadOnly { location: String, reason: String },

    #[error(
        "the store at {location} needs an upgrade to this franchise's schema, but it is \
         read-only; run franchise once with write access to it"
    )]
    NeedsUpgrade { location: String },

    #[error("store query failed: {0}")]
    Sql(#[from] sqlx::Error),

    /// A read on a connection of its own (the embedded store's streamed franchise read).
    #[error("reading the store at {location} failed: {reason}")]
    Read { location: String, reason: String },

    /// The job queue failed inside a store transaction (PostgreSQL's flush pushes its next
    /// jobs there). It stays the queue's error, so its class is not lost on the way up.
    #[error("{0}")]
    Queue(#[from] crate::queue::QueueError),
}

/// What kind of failure a store error is, for deciding whether the pipeline can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The disk (or a size limit) is full: nothing more can be written until space is freed.
    DiskFull,
    /// The database or its folder cannot be written.
    ReadOnly,
    /// The operating system failed a read or write.
    Io,
    /// The file is damaged, or not a database.
    Corrupt,
    /// Another writer held the lock past the busy timeout.
    Busy,
    /// The connection to the database server was lost (it may come back).
    Connection,
    /// This process or the database server ran out of something it gets back when others let
    /// go (open files, the server's connection slots, memory): waited out, never a disk error.
    Exhausted,
    /// The job queue refused the new jobs for a reason of its own (not the database's).
    Queue,
    /// Anything else: a bug or bad data, not the environment.
    Other,
}

impl Failure {
    /// The environment, not the data, is at fault and retrying will not help until a person
    /// acts: the pipeline stops with this error instead of retrying jobs.
    pub(crate) fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::DiskFull | Self::ReadOnly | Self::Io | Self::Corrupt
        )
    }

    /// What kind of failure a queue error is, by the database's error under it if any.
    pub(crate) fn of_queue(error: &crate::queue::QueueError) -> Self {
        classify_queue(error)
    }

    /// Trouble that passes by itself (a database restarting, connections or open files
    /// freed by others): waited for as long as it lasts, not counted toward giving up.
    pub(crate) fn passes(self) -> bool {
        matches!(self, Self::Connection | Self::Exhausted)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::DiskFull => "the disk is full",
            Self::ReadOnly => "it is read-only",
            Self::Io => "the disk reported an I/O error",
            Self::Corrupt => "the database file is damaged",
            Self::Busy => "another process held its lock too long",
            Self::Connection => "the connection to the database was lost",
            Self::Exhausted => {
                "the process or the database server ran out of open files or connections"
            }
            Self::Queue => "the job queue refused the new jobs",
            Self::Other => "a query failed",
        }
    }
}

impl StoreError {
    /// Classifies the failure by SQLite's result code or PostgreSQL's SQLSTATE.
    pub(crate) fn failure(&self) -> Failure {
        match self {
            Self::ReadOnly { .. } | Self::NeedsUpgrade { .. } => Failure::ReadOnly,
            Self::Corrupt { .. } => Failure::Corrupt,
            Self::Locked { .. } => Failure::Busy,
            Self::Sql(e) => classify_sqlx(e),
            Self::Queue(e) => classify_queue(e),
            Self::Open { .. } | Self::NewerSchema { .. } | Self::Read { .. } => Failure::Other,
        }
    }

    pub(crate) fn from_open(path: &Path, error: sqlx::Error) -> Self {
        let location = path.display().to_string();
        match classify_sqlx(&error) {
            Failure::Busy => Self::Locked { location },
            Failure::Corrupt => Self::Corrupt {
                path: path.to_path_buf(),
                reason: error.to_string(),
            },
            Failure::ReadOnly => Self::ReadOnly {
                location,
                reason: error.to_string(),
            },
            _ => Self::Open {
                location,
                reason: error.to_string(),
            },
        }
    }

    pub(crate) fn from_migrate(
        location: &str,
        path: &Path,
        error: sqlx::migrate::MigrateError,
    ) -> Self {
        use sqlx::migrate::MigrateError;
        match error {
            MigrateError::VersionMissing(version) => Self::NewerSchema {
                location: location.to_string(),
                version,
            },
            MigrateError::Execute(e) => Self::from_open(path, e),
            other => Self::Open {
                location: location.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// A queue failure by what lies under it: the database's own error where there is one,
/// else the queue's verdict (a full or damaged queue needs a person; the rest is the queue's).
fn classify_queue(error: &crate::queue::QueueError) -> Failure {
    use crate::queue::QueueError;
    match error {
        QueueError::Database { source, .. } => classify_sqlx(source),
        QueueError::DiskFull { .. } => Failure::DiskFull,
        QueueError::Corrupt { .. } | QueueError::Broken { .. } => Failure::Corrupt,
        _ => Failure::Queue,
    }
}

fn classify_sqlx(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return Failure::Other;
            };
            // SQLite: extended codes carry the primary code in the low byte.
            if let Ok(n) = code.parse::<i64>() {
                return match n & 0xff {
                    5 | 6 => Failure::Busy,
                    8 => Failure::ReadOnly,
                    10 | 14 => Failure::Io,
                    11 | 26 => Failure::Corrupt,
                    13 => Failure::DiskFull,
                    _ => Failure::Other,
                };
            }
            // PostgreSQL SQLSTATE classes.
            match &code[..code.len().min(2)] {
                // 53100 is a full disk; the rest of class 53 (too many connections, out of
                // memory, a configuration limit) passes when others let go.
                "53" if code == "53100" => Failure::DiskFull,
                "53" => Failure::Exhausted,
                "08" | "57" => Failure::Connection,
                "25" if code == "25006" => Failure::ReadOnly,
                "40" => Failure::Busy,
                "58" => Failure::Io,
                "XX" => Failure::Corrupt,
                _ => Failure::Other,
            }
        }
        sqlx::Error::Io(io) => {
            // EMFILE, ENFILE: out of file descriptors (idle sockets, say), not a disk fault.
            if matches!(io.raw_os_error(), Some(23 | 24)) {
                Failure::Exhausted
            } else if io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull
            {
                Failure::DiskFull
            } else if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::NotConnected
            ) {
                Failure::Connection
            } else {
                Failure::Io
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            Failure::Connection
        }
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => Failure::Connection,
        _ => Failure::Other,
    }
}

impl Halt {
    /// The store at `location` failed for good: say what, where, and what to do.
    pub(crate) fn store(e: &StoreError, location: &str) -> Self {
        const KEPT: &str = "Nothing stored was lost";
        let (kind, message) = match e.failure() {
            Failure::DiskFull => (
                HaltKind::DiskFull,
                format!(
                    "the disk holding the store {location} is full ({e}). {KEPT}: free some \
                     space (or move the data dir to a bigger disk and point --data-dir at it) \
                     and run franchise again to finish the imports"
                ),
            ),
            Failure::ReadOnly => (
                HaltKind::ReadOnly,
                format!(
                    "the store {location} cannot be written any more ({e}). {KEPT}: make it \
                     and its folder writable and run franchise again"
                ),
            ),
            other => (
                HaltKind::Broken,
                format!(
                    "the store {location} failed ({}): {e}. {KEPT}: fix the disk and run \
                     franchise again",
                    other.describe()
                ),
            ),
        };
        Halt { kind, message }
    }
}

#[cfg(test)]
mod tests {
    use super::{Failure, StoreError};
    use crate::queue::QueueError;

    fn database(source: sqlx::Error) -> StoreError {
        StoreError::Queue(QueueError::Database {
            location: "the PostgreSQL job queue".into(),
            operation: "pushing jobs",
            source,
        })
    }

    /// A queue failure inside a store transaction keeps its class: a lost connection under
    /// it is still one (waited for), the queue's own refusal is the queue's (counted toward
    /// the flusher's ten tries, then a halt), and a full queue disk needs a person.
    #[test]
    fn a_queue_error_keeps_its_class_across_the_store_seam() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            database(sqlx::Error::Io(reset)).failure(),
            Failure::Connection
        );
        assert_eq!(
            database(sqlx::Error::PoolTimedOut).failure(),
            Failure::Connection
        );
        let refused = StoreError::Queue(QueueError::Backend {
            location: "the PostgreSQL job queue".into(),
            operation: "pushing jobs",
            reason: "no".into(),
        });
        assert_eq!(refused.failure(), Failure::Queue);
        assert!(!refused.failure().is_fatal());
        assert!(
            refused.to_string().contains("pushing jobs failed: no"),
            "{refused}"
        );
        let full = StoreError::Queue(QueueError::DiskFull {
            location: "queue.redb".into(),
            reason: "ENOSPC".into(),
        });
        assert!(full.failure().is_fatal());
    }

    /// Out of file descriptors (a thousand idle sockets) is neither a disk fault nor fatal: it
    /// passes once they close.
    #[test]
    fn running_out_of_descriptors_is_waited_out_not_a_disk_error() {
        for errno in [23, 24] {
            let e = StoreError::Sql(sqlx::Error::Io(std::io::Error::from_raw_os_error(errno)));
            assert_eq!(e.failure(), Failure::Exhausted, "errno {errno}");
            assert!(!e.failure().is_fatal() && e.failure().passes());
            assert!(!e.failure().describe().contains("disk"));
        }
        let eio = StoreError::Sql(sqlx::Error::Io(std::io::Error::from_raw_os_error(5)));
        assert_eq!(eio.failure(), Failure::Io);
    }
}
