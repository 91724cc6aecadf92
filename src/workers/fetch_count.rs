//! Counts each request against the items it carries before its answer is handled, the counts
//! of every request that came back while the store's writer was busy in one statement.
//!
//! Why: the count is a write, and a write waits for the flush that holds the writer. One
//! transaction per request put a dozen small commits between two flushes, on the flusher's
//! path; one per turn of the writer puts one.

use tokio::sync::{mpsc, oneshot};

use crate::anime::AnimeId;
use crate::store::Store;

/// One request's items, and who waits until they are counted.
type Ask = (Vec<(i64, AnimeId)>, oneshot::Sender<()>);

/// The counter of one batcher's requests. Cheap to clone; its task ends with the last clone.
#[derive(Clone)]
pub(crate) struct FetchTally {
    store: Store,
    asks: mpsc::UnboundedSender<Ask>,
}

impl FetchTally {
    pub(crate) fn start(store: Store) -> Self {
        let (asks, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store.clone(), rx));
        Self { store, asks }
    }

    /// Counts one request against `items` (import, anime) and returns once the count is
    /// stored, or failed (logged: a count that could not be written costs only the guard
    /// against a fetch that keeps killing its worker, not the import).
    ///
    /// The items of requests in flight together never repeat (an anime is in one flight at a
    /// time), so one statement counts each of them once.
    pub(crate) async fn add(&self, items: Vec<(i64, AnimeId)>) {
        if items.is_empty() {
            return;
        }
        let (done, counted) = oneshot::channel();
        match self.asks.send((items, done)) {
            Ok(()) => {
                // The task went away with the count (the runtime is stopping): nothing to wait for.
                let _ = counted.await;
            }
            Err(mpsc::error::SendError((items, _))) => {
                if let Err(e) = self.store.count_fetches(&items, 1).await {
                    tracing::debug!(error = %e, "could not count the request against its items");
                }
            }
        }
    }
}

async fn run(store: Store, mut asks: mpsc::UnboundedReceiver<Ask>) {
    while let Some(first) = asks.recv().await {
        let mut waiting = vec![first];
        while let Ok(more) = asks.try_recv() {
            waiting.push(more);
        }
        let items: Vec<(i64, AnimeId)> = waiting
            .iter()
            .flat_map(|(items, _)| items.iter().copied())
            .collect();
        if let Err(e) = store.count_fetches(&items, 1).await {
            tracing::debug!(
                error = %e,
                requests = waiting.len(),
                "could not count the requests against their items"
            );
        }
        for (_, done) in waiting {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FetchTally;
    use crate::workers::rig::Rig;

    #[tokio::test]
    async fn requests_that_wait_for_the_writer_are_each_counted_once() {
        let rig = Rig::new().await;
        let mut keys = Vec::new();
        for root in 1..=4 {
            let (import_id, job) = rig.import(root).await;
            keys.push((import_id, job.anime_id));
        }
        let tally = FetchTally::start(rig.parts.store.clone());
        // A flush holds the writer: the four counts queue behind it and go in together.
        let flush = rig.parts.store.begin().await.unwrap();
        let adds: Vec<_> = keys
            .iter()
            .map(|key| {
                let tally = tally.clone();
                let key = *key;
                tokio::spawn(async move { tally.add(vec![key]).await })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            adds.iter().all(|add| !add.is_finished()),
            "no count returns before it is stored"
        );
        flush.commit().await.unwrap();
        for add in adds {
            add.await.unwrap();
        }
        for (import_id, anime) in &keys {
            let item = rig.item(*import_id, i64::from(*anime)).await;
            assert_eq!(item.fetches, 1, "item of import {import_id}");
        }
        // Another request for one of them counts again; an empty one counts nothing.
        tally.add(vec![keys[0]]).await;
        tally.add(Vec::new()).await;
        assert_eq!(rig.item(keys[0].0, i64::from(keys[0].1)).await.fetches, 2);
        assert_eq!(rig.item(keys[1].0, i64::from(keys[1].1)).await.fetches, 1);
    }
}
