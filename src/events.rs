//! Events instead of polling: typed events in commit order (import progress, anime stored,
//! import finished, the budget parked or resumed, AniList down or up again), for a UI, the CLI's progress bar and the
//! HTTP API's Server-Sent Events alike.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::anime::AnimeId;
use crate::store::{ImportProgress, ImportState};
use crate::upstream::{ParkReason, UpstreamState};

/// How many events a subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 4096;

/// An estimate of the time left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Eta {
    /// Seconds left, the waits below included. While the walk may still find anime, this
    /// includes a guess of the levels it has not shown yet (as many again as it has shown).
    pub secs: f64,
    /// While the walk may still find anime: the seconds the known part alone takes, a floor
    /// the true figure cannot go under. `None` once nothing more can be found.
    pub at_least_secs: Option<f64>,
    /// The next request waits this long for AniList's rate limit (the budget's window or
    /// spacing, or a park), when that is long enough to say ("waiting for AniList's rate
    /// limit, resuming in N s").
    pub waiting_secs: Option<f64>,
}

/// Something that happened, in the order the store committed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An import's counters after a commit: "Importing {done}/{discovered}".
    Progress {
        import_id: i64,
        root: AnimeId,
        discovered: u64,
        done: u64,
        failed: u64,
        queued: u64,
        state: ImportState,
        eta: Option<Eta>,
    },
    /// These anime were fetched and committed (one event per flush).
    Stored { anime: Vec<AnimeId> },
    /// An import finished, with its final state and counters.
    Finished {
        import_id: i64,
        root: AnimeId,
        state: ImportState,
        discovered: u64,
        done: u64,
        failed: u64,
    },
    /// Every worker waits until `until_ms` (Unix ms) because of `reason`.
    BudgetParked { until_ms: i64, reason: ParkReason },
    /// The park is over; requests go out again.
    BudgetResumed,
    /// AniList is down for every process on this data (unreachable, refused, or not AniList):
    /// the work waits, and one probe at a time asks again from `retry_at_ms` (Unix ms).
    /// `message` is AniList's own sentence for a refusal, else the cause.
    UpstreamDown {
        state: UpstreamState,
        message: String,
        retry_at_ms: Option<i64>,
    },
    /// AniList answers again; the waiting work goes on by itself.
    UpstreamUp,
    /// This subscriber fell behind and missed `missed` events: re-read the state
    /// (`Importer::imports`) to catch up.
    Lagged { missed: u64 },
}

impl Event {
    pub(crate) fn progress(p: &ImportProgress, eta: Option<Eta>) -> Self {
        Self::Progress {
            import_id: p.import_id,
            root: p.root,
            discovered: p.discovered,
            done: p.done,
            failed: p.failed,
            queued: p.queued,
            state: p.state,
            eta,
        }
    }

    pub(crate) fn finished(p: &ImportProgress) -> Self {
        Self::Finished {
            import_id: p.import_id,
            root: p.root,
            state: p.state,
            discovered: p.discovered,
            done: p.done,
            failed: p.failed,
        }
    }
}

/// What was last published about one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    settled: u64,
    discovered: u64,
    state: ImportState,
}

/// The sending side, shared by everything that publishes.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Event>,
    /// Progress published per import: the flusher and the store watcher publish through it,
    /// so each change is told once and never older after newer.
    seen: Arc<Mutex<HashMap<i64, Seen>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self {
            tx,
            seen: Arc::default(),
        }
    }
}

impl EventBus {
    /// Publishes an import's progress (and `Finished` when it just finished), unless it was
    /// already told or is older than what was told.
    pub(crate) fn publish_progress(&self, p: &ImportProgress, eta: Option<Eta>) {
        let now = Seen {
            settled: p.settled(),
            discovered: p.discovered,
            state: p.state,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.get(&p.import_id).copied();
        if let Some(before) = before {
            let restarted = before.state.is_finished() && !now.state.is_finished();
            let older = now.settled < before.settled || now.discovered < before.discovered;
            if before == now || (older && !restarted) {
                return;
            }
        }
        seen.insert(p.import_id, now);
        self.publish(Event::progress(p, eta));
        let was_finished = before.is_some_and(|b| b.state.is_finished());
        if now.state.is_finished() && !was_finished {
            self.publish(Event::finished(p));
        }
    }

    /// Imports last told as running.
    pub(crate) fn running_imports(&self) -> Vec<i64> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, s)| !s.state.is_finished())
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn publish(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.tx.send(event);
    }

    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        EventStream {
            inner: BroadcastStream::new(self.tx.subscribe()),
        }
    }
}

/// A subscription: a `Stream` of events, or `recv().await` one at a time.
pub struct EventStream {
    inner: BroadcastStream<Event>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

impl EventStream {
    /// The next event; `None` once the importer is closed.
    pub async fn recv(&mut self) -> Option<Event> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(event)),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                Poll::Ready(Some(Event::Lagged { missed }))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::id;

    fn progress(import_id: i64, done: u64, discovered: u64, state: ImportState) -> ImportProgress {
        ImportProgress {
            import_id,
            root: id(1),
            state,
            discovered,
            done,
            failed: 0,
            cancelled: 0,
            queued: discovered - done,
            unwalked_edges: 0,
            queued_levels: 0,
            frontier_depth: 0,
            created_at_ms: 0,
            finished_at_ms: None,
            failures: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_it_missed() {
        let bus = EventBus::default();
        let mut stream = bus.subscribe();
        for _ in 0..CAPACITY + 10 {
            bus.publish(Event::BudgetResumed);
        }
        assert_eq!(stream.recv().await, Some(Event::Lagged { missed: 10 }));
        assert_eq!(stream.recv().await, Some(Event::BudgetResumed));
    }

    #[tokio::test]
    async fn progress_is_told_once_never_backwards_and_finished_once() {
        let bus = EventBus::default();
        let mut stream = bus.subscribe();
        bus.publish_progress(&progress(1, 1, 10, ImportState::Running), None);
        bus.publish_progress(&progress(1, 1, 10, ImportState::Running), None);
        bus.publish_progress(&progress(1, 5, 10, ImportState::Running), None);
        // An older read published late is dropped.
        bus.publish_progress(&progress(1, 3, 10, ImportState::Running), None);
        bus.publish_progress(&progress(1, 10, 10, ImportState::Done), None);
        bus.publish_progress(&progress(1, 10, 10, ImportState::Done), None);
        let mut seen = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), stream.recv()).await
        {
            seen.push(match event {
                Event::Progress { done, .. } => format!("progress {done}"),
                Event::Finished { state, .. } => format!("finished {state}"),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            seen,
            ["progress 1", "progress 5", "progress 10", "finished done"]
        );
        assert!(bus.running_imports().is_empty());
    }
}
