//! Events for progress this process did not commit itself: imports run by another process
//! (the embedded queue's owner, or PostgreSQL peers) are read from the store while anyone is
//! subscribed, and published through the same dedupe as the flusher's own events.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Importer, Inner};
use crate::store::{ImportFilter, ImportState};
use crate::workers::estimate_with;

/// How often the store is read for other processes' progress.
const EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub(super) struct ProgressWatch {
    started: AtomicBool,
}

impl Importer {
    pub(super) fn ensure_progress_watch(&self) {
        if self.inner.watch.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(watch(weak));
    }

    /// Parks and resumes of the shared budget, and AniList going down or up, become events.
    pub(super) fn forward_budget_changes(&self) {
        let mut changes = self.inner.client.budget().changes();
        let events = self.inner.events.clone();
        tokio::spawn(async move {
            use crate::events::Event;
            use crate::upstream::BudgetChange;
            loop {
                match changes.recv().await {
                    Ok(BudgetChange::Parked { until_ms, reason }) => {
                        events.publish(Event::BudgetParked { until_ms, reason })
                    }
                    Ok(BudgetChange::Resumed) => events.publish(Event::BudgetResumed),
                    Ok(BudgetChange::UpstreamDown {
                        state,
                        message,
                        retry_at_ms,
                    }) => events.publish(Event::UpstreamDown {
                        state,
                        message,
                        retry_at_ms,
                    }),
                    Ok(BudgetChange::UpstreamUp) => events.publish(Event::UpstreamUp),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

async fn watch(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.events.has_subscribers() {
            continue;
        }
        let running = match inner
            .store
            .imports(&ImportFilter::in_state(ImportState::Running))
            .await
        {
            Ok(running) => running,
            Err(_) => continue,
        };
        let mut ids: Vec<i64> = running.iter().map(|p| p.import_id).collect();
        // Imports that were running at the last look and are not now have finished.
        for id in inner.events.running_imports() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let budget = inner.client.budget().last_state();
        for id in ids {
            let Ok(mut found) = inner.store.imports(&ImportFilter::one(id)).await else {
                continue;
            };
            let Some(progress) = found.pop() else {
                continue;
            };
            let eta = estimate_with(&progress, budget.as_ref(), &inner.client);
            inner.events.publish_progress(&progress, eta);
        }
    }
}
