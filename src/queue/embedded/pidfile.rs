//! The `<queue file>.pid` sidecar: the owner of the queue writes its pid there so that a
//! process refused by redb's file lock can say who holds it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where the sidecar of `queue_path` lives: the queue file's name with `.pid` appended.
pub(crate) fn sidecar_path(queue_path: &Path) -> PathBuf {
    let mut name = OsString::from(queue_path.as_os_str());
    name.push(".pid");
    PathBuf::from(name)
}

/// Records this process as the owner. Failure only costs a later error message its pid, so
/// it is logged, not returned.
pub(crate) fn record_owner(queue_path: &Path) {
    let sidecar = sidecar_path(queue_path);
    if let Err(err) = std::fs::write(&sidecar, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %sidecar.display(), %err, "could not record the queue owner's pid");
    }
}

/// The pid the current owner recorded, if it left a readable one.
pub(crate) fn read_owner(queue_path: &Path) -> Option<u32> {
    std::fs::read_to_string(sidecar_path(queue_path))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}
