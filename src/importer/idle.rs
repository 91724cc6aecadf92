//! Waiting for the work to run out: no import has an item queued and the queue holds no job,
//! for `franchise work --until-idle` and for an app that imports a batch and then exits.

use std::time::Duration;

use super::Importer;
use crate::halt::Halt;
use crate::queue::LaneDepth;
use crate::store::{ImportFilter, ImportState};

/// How often `until_idle` looks.
const IDLE_CHECK: Duration = Duration::from_millis(250);

impl Importer {
    /// Whether nothing is left to do: no import has an item waiting and the queue holds no
    /// job. A job whose item is already settled (an orphan of a process killed between commit
    /// and acknowledgement) still counts, so it is run, as the no-op it is, before an app
    /// exits, and the next process finds an empty queue. A failing read counts as busy.
    pub async fn is_idle(&self) -> bool {
        let running = ImportFilter::in_state(ImportState::Running);
        // The cheap read first; the queue (with the rest of the status) once no import runs.
        if !self.imports(&running).await.is_ok_and(|r| r.is_empty()) {
            return false;
        }
        let drained = |lane: &LaneDepth| lane.pending == 0 && lane.running == 0;
        match self.status(&running).await {
            Ok(status) => {
                status.imports.is_empty()
                    && status
                        .queue
                        .is_none_or(|q| drained(&q.interactive) && drained(&q.background))
            }
            Err(_) => false,
        }
    }

    /// Waits until [`is_idle`](Importer::is_idle), looking every 250 ms, or until the
    /// workers halt (`Err` says why). The workers must run somewhere: in this process after
    /// [`start`](Importer::start), or in the process that owns the queue.
    pub async fn until_idle(&self) -> Result<(), Halt> {
        loop {
            tokio::select! {
                halt = self.until_halted() => return Err(halt),
                () = tokio::time::sleep(IDLE_CHECK) => {}
            }
            if self.is_idle().await {
                return Ok(());
            }
        }
    }
}
