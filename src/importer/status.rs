//! `status()`: progress per import with an ETA, queue depth per lane, the shared budget, the
//! live worker processes and the read cache's counters, from whichever process asks.

use serde::{Deserialize, Serialize};

use super::Importer;
use crate::cache::CacheStats;
use crate::error::Error;
use crate::queue::QueueDepth;
use crate::store::{ImportFilter, ImportProgress, ProcessInfo};
use crate::upstream::{BudgetState, Checkup, FirstContact, UpstreamStatus};
use crate::workers::estimate_with;

/// A heartbeat older than this means its process is gone.
pub(crate) const STALE_AFTER_MS: i64 = 5_000;

/// Everything a status view shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub imports: Vec<ImportStatus>,
    /// Queue depth per lane and state; `None` when no live process could read it.
    pub queue: Option<QueueDepth>,
    /// The AniList budget every process on this data shares.
    pub budget: Option<BudgetState>,
    /// AniList's state as every process on this data sees it; `None` if it could not be read.
    pub upstream: Option<UpstreamStatus>,
    /// Live processes running workers, with their last heartbeat.
    pub workers: Vec<ProcessInfo>,
    pub cache: CacheStats,
}

/// One import with its estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportStatus {
    #[serde(flatten)]
    pub progress: ImportProgress,
    /// Seconds left, from the ids still to fetch, the levels they span, the budget's pace
    /// and the round trip; `None` once finished, or while no live process runs the workers.
    pub eta_secs: Option<f64>,
    /// While the walk may still grow: the seconds its known part alone takes, a floor under
    /// `eta_secs` (which adds a guess of the levels not seen yet).
    #[serde(default)]
    pub eta_at_least_secs: Option<f64>,
    /// Of `eta_secs`, the wait for AniList's rate limit before the next request, when it is
    /// long enough to say.
    #[serde(default)]
    pub eta_waiting_secs: Option<f64>,
}

impl Importer {
    /// The status of the imports the filter selects, and of the queue, budget and workers.
    pub async fn status(&self, filter: &ImportFilter) -> Result<Status, Error> {
        let now = self.now();
        let mut workers = self.inner.store.processes(now - STALE_AFTER_MS).await?;
        let queue = match self.queue() {
            Some(queue) => queue.depth().await.ok(),
            // An embedded queue file this process can open is run by nobody: a heartbeat
            // younger than the staleness limit is then a killed process's, and its depth is
            // out of date.
            None => match super::backend::peek_queue_depth(&self.inner.settings).await {
                Some(depth) => {
                    workers.clear();
                    Some(depth)
                }
                None => workers.iter().find_map(|w| w.queue),
            },
        };
        let (budget, upstream) = match self.inner.client.budget().states().await {
            Ok((budget, upstream)) => (Some(budget), Some(upstream)),
            Err(_) => (None, None),
        };
        // Nobody runs the workers: nothing will happen until somebody does, so no estimate.
        let worked = !workers.is_empty() || self.is_running().await;
        let imports = self
            .inner
            .store
            .imports(filter)
            .await?
            .into_iter()
            .map(|progress| {
                let eta = estimate_with(&progress, budget.as_ref(), &self.inner.client)
                    .filter(|_| worked);
                ImportStatus {
                    eta_secs: eta.map(|e| e.secs),
                    eta_at_least_secs: eta.and_then(|e| e.at_least_secs),
                    eta_waiting_secs: eta.and_then(|e| e.waiting_secs),
                    progress,
                }
            })
            .collect();
        Ok(Status {
            imports,
            queue,
            budget,
            upstream,
            workers,
            cache: self.cache_stats(),
        })
    }

    /// AniList's state as every process on this data sees it: `ok`, `parked` (a 429),
    /// `unreachable`, `refused` (a 403, with AniList's sentence) or `not_anilist`.
    pub async fn upstream(&self) -> Result<UpstreamStatus, Error> {
        Ok(self.inner.client.budget().states().await?.1)
    }

    /// Checks the way to AniList step by step (`franchise doctor`): the name, the
    /// connection, TLS, one minimal import request with the configured headers through the
    /// shared budget (status, the Referer gate, rate-limit headers, round trip), and whether
    /// AniList's schema still has everything the import query uses. Two requests in all.
    pub async fn doctor(&self) -> Checkup {
        crate::upstream::checkup(&self.inner.client).await
    }

    /// Whether AniList ever answered this process, or how the first contact failed: a
    /// one-shot command gives up at a failed first contact, a long-running one waits.
    pub fn first_contact(&self) -> FirstContact {
        self.inner.client.first_contact()
    }
}
