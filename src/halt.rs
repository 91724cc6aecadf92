//! The pipeline's emergency stop: a backend that cannot go on until a person acts (a full
//! disk, a read-only or damaged file, an AniList that was never reachable) trips it once, the
//! workers stop, and the caller gets one clear error instead of a retry loop.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Why the pipeline stopped by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub kind: HaltKind,
    /// What happened, where, and what to do: ready to show a person.
    pub message: String,
}

/// The kinds of stop a caller may want to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HaltKind {
    /// No space left for the store or the queue.
    DiskFull,
    /// The store or queue cannot be written.
    ReadOnly,
    /// The store or queue failed in a way retrying cannot fix.
    Broken,
    /// AniList could not be reached at all (DNS, refused connection, TLS).
    Unreachable,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shared by every task of one running pipeline. The first halt wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct HaltSwitch {
    token: CancellationToken,
    reason: Arc<Mutex<Option<Halt>>>,
}

impl HaltSwitch {
    pub(crate) fn trip(&self, halt: Halt) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if reason.is_none() {
            tracing::info!(message = %halt.message, "the pipeline stops");
            *reason = Some(halt);
        }
        drop(reason);
        self.token.cancel();
    }

    pub(crate) fn halted(&self) -> Option<Halt> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn is_tripped(&self) -> bool {
        self.token.is_cancelled()
    }

    pub(crate) async fn tripped(&self) {
        self.token.cancelled().await;
    }
}
