//! An exclusive lock on a sidecar file, held while a process creates or migrates a shared file,
//! so processes started at once on a fresh data dir take turns instead of racing.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Holds the lock until dropped (closing the file releases it).
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// Waits for the exclusive lock on `path` (created if missing), off the async executor.
pub(crate) async fn lock_exclusive(path: &Path) -> std::io::Result<LockGuard> {
    let path: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(LockGuard { _file: file })
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `path` with `suffix` appended to its file name (`queue.redb` → `queue.redb.lock`).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
