//! Opens (or creates) the redb queue file and turns redb's refusals into the two errors a user
//! can act on: someone else owns the file (Locked) or the file is damaged (Corrupt).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use apalis_redb::{Connection, Database};
use redb::{DatabaseError, StorageError};

use super::error::QueueError;
use super::pidfile;

/// Opens the file off the async executor (redb's open may repair the file, which is slow) and
/// records this process as its owner.
pub(crate) async fn open_database(path: &Path) -> Result<Connection, QueueError> {
    let owned = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || Database::create(&owned)).await;
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
            path: path.to_path_buf(),
            reason: format!("the open was cancelled: {join}"),
        }),
    }
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
        DatabaseError::Storage(StorageError::Io(io)) if io.kind() == ErrorKind::WouldBlock => {
            let pid = pidfile::read_owner(&path);
            QueueError::Locked { path, pid }
        }
        other => QueueError::Open {
            path,
            reason: other.to_string(),
        },
    }
}
