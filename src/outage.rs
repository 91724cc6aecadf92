//! Database trouble that passes by itself (the server restarting, the network gone, its
//! connection slots full), said once when it starts and once when it ends, however many
//! workers, retries and ticks meet it meanwhile.

use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Whether this process has lost its database, shared by everything that holds the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct DatabaseOutage {
    since: Arc<Mutex<Option<Instant>>>,
}

impl DatabaseOutage {
    /// A call failed in a way that passes: the first since the database last answered is
    /// said (at warn, so a terminal shows it), the rest only at debug.
    pub(crate) fn lost(&self, location: &str, error: &dyn Display) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            tracing::warn!(
                "lost the database {location}: waiting for it to come back (nothing stored is \
                 lost; the work goes on once it answers). The cause: {error}"
            );
        } else {
            tracing::debug!(%error, "the database is still unreachable");
        }
    }

    /// A call went through: if the database had been lost, say it is back.
    pub(crate) fn answered(&self) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lost_at) = since.take() {
            tracing::warn!(
                "the database answers again after {:.0} s; going on",
                lost_at.elapsed().as_secs_f64()
            );
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}
