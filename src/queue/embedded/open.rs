//! Opens (or creates) the redb queue file and turns redb's refusals into the two errors a user
//! can act on: someone else owns the file (Locked) or the file is damaged (Corrupt).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use apalis_redb::Connection;
use redb::{DatabaseError, StorageError};

use super::pidfile;
use crate::queue::QueueError;

/// redb's page cache. Its default (1 GiB) let the cache alone pass 100 MiB of memory while a
/// 100,000-job queue was pushed; the queue's working set is the head of two lanes.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Opens the file off the async executor (redb's open may repair the file, which is slow) and
/// records this process as its owner.
pub(super) async fn open_database(path: &Path) -> Result<Connection, QueueError> {
    // Creating the file under a lock: two processes on a fresh data dir would otherwise both
    // build `queue.redb.new`, and one would rename away the other's half-made file.
    let lock_path = crate::fs_lock::sidecar(path, ".lock");
    let lock = crate::fs_lock::lock_exclusive(&lock_path)
        .await
        .map_err(|e| QueueError::Open {
            location: path.display().to_string(),
            reason: format!("cannot lock {}: {e}", lock_path.display()),
        })?;
    let owned = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        create_whole(&owned)?;
        redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&owned)
    })
    .await;
    drop(lock);
    match opened {
        Ok(Ok(db)) => {
            pidfile::record_owner(path);
            Ok(Connection::new(db))
        }
        Ok(Err(err)) => Err(classify(path.to_path_buf(), err)),
        // redb's debug builds assert on some malformed pages; a panic while opening means the
        // file is not a database we can trust.
        Err(join) if join.is_panic() => Err(QueueError::Corrupt {
            path: path.to_path_buf(),
            reason: "redb panicked while reading it".to_string(),
        }),
        Err(join) => Err(QueueError::Open {
            location: path.display().to_string(),
            reason: format!("the open was cancelled: {join}"),
        }),
    }
}

/// Creates a missing queue file under a temporary name and renames it into place once redb has
/// finished it. redb writes a new file's header last, so a process killed while creating
/// `queue.redb` in place left a file every later start refused as damaged.
fn create_whole(path: &Path) -> Result<(), DatabaseError> {
    if path.exists() {
        return Ok(());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".new");
    let partial = PathBuf::from(partial);
    // A leftover from a killed creation holds nothing: start it again.
    let _ = std::fs::remove_file(&partial);
    drop(redb::Builder::new().create(&partial)?);
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| DatabaseError::Storage(StorageError::Io(e)))
}

fn classify(path: PathBuf, err: DatabaseError) -> QueueError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            let pid = pidfile::read_owner(&path);
            QueueError::Locked { path, pid }
        }
        DatabaseError::UpgradeRequired(version) => QueueError::Corrupt {
            path,
            reason: format!("it uses the old redb file format {version}"),
        },
        DatabaseError::RepairAborted => QueueError::Corrupt {
            path,
            reason: "redb could not repair it".to_string(),
        },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => {
            QueueError::Corrupt { path, reason }
        }
        DatabaseError::Storage(StorageError::Io(io)) if io.kind() == ErrorKind::InvalidData => {
            QueueError::Corrupt {
                path,
                reason: format!("it is not a redb database: {io}"),
            }
        }
        // The file ends inside redb's own header: cut short (a copy that stopped, a full
        // disk at creation), damaged like any other.
        DatabaseError::Storage(StorageError::Io(io)) if io.kind() == ErrorKind::UnexpectedEof => {
            QueueError::Corrupt {
                path,
                reason: format!("it ends before its header does: {io}"),
            }
        }
        DatabaseError::Storage(StorageError::Io(io)) if io.kind() == ErrorKind::WouldBlock => {
            let pid = pidfile::read_owner(&path);
            QueueError::Locked { path, pid }
        }
        DatabaseError::Storage(StorageError::Io(io)) if super::is_disk_full(&io) => {
            QueueError::DiskFull {
                location: path.display().to_string(),
                reason: io.to_string(),
            }
        }
        other => QueueError::Open {
            location: path.display().to_string(),
            reason: other.to_string(),
        },
    }
}
