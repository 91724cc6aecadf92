//! A stored franchise as a stream of members, then relations, read from the store as it is
//! taken: `show --json`, `GET /api/franchise` and apps read a 100k-anime franchise in bounded
//! memory instead of holding it whole.

use std::sync::Arc;

use futures::TryStreamExt;
use futures::stream::{self, BoxStream, StreamExt};

use super::Importer;
use crate::anime::{AnimeId, RelationType};
use crate::cache::Franchise;
use crate::error::Error;
use crate::store::AnimeSummary;
pub use crate::store::FranchiseItem;

/// Batches a stream keeps ready ahead of its reader (a batch is up to 512 members, or the
/// relations of 1,000).
const READ_AHEAD: usize = 4;
/// A franchise read from the store with at most this many members also fills the franchise
/// cache, as [`Importer::franchise`] would; a bigger one is never held.
const CACHED_UP_TO: usize = 2_000;

impl Importer {
    /// The stored franchise of `root` (what [`Importer::franchise`] returns) as a stream:
    /// every member in id order, then every relation that starts at one, in (from, to)
    /// order. It is read from the store as it is taken, so memory stays bounded however big
    /// the franchise is (8 bytes per member excepted, to read their relations after them).
    /// Empty if `root` is not stored. Dropping the stream stops the read.
    pub fn franchise_items(
        &self,
        root: AnimeId,
    ) -> BoxStream<'static, Result<FranchiseItem, Error>> {
        if let Some(hit) = self.inner.cache.franchise(root) {
            return from_cache(hit);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let importer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = importer.send_franchise(root, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        // Batches cross the channel (one message per batch, not per item); the reader
        // takes items.
        Box::pin(
            stream::poll_fn(move |cx| rx.poll_recv(cx)).flat_map(|batch| {
                stream::iter(match batch {
                    Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                })
            }),
        )
    }

    /// Reads the franchise of `root` into `tx`, in batches; fills the cache if it is small.
    async fn send_franchise(
        &self,
        root: AnimeId,
        tx: &tokio::sync::mpsc::Sender<Result<Vec<FranchiseItem>, Error>>,
    ) -> Result<(), Error> {
        let generation = self.inner.cache.generation();
        let mut batches = self
            .inner
            .store
            .franchise_stream(root, &RelationType::FOLLOWED_BY_DEFAULT);
        // Kept for the cache while the franchise stays small.
        let (mut kept, mut kept_relations) = (Some(Vec::new()), Some(Vec::new()));
        while let Some(batch) = batches.try_next().await? {
            for item in batch.iter() {
                match item {
                    FranchiseItem::Member(m) => {
                        kept = kept.filter(|k: &Vec<AnimeSummary>| k.len() < CACHED_UP_TO);
                        if let Some(kept) = kept.as_mut() {
                            kept.push(m.clone());
                        }
                    }
                    FranchiseItem::Relation(r) if kept.is_some() => {
                        if let Some(kept) = kept_relations.as_mut() {
                            kept.push(r.clone());
                        }
                    }
                    FranchiseItem::Relation(_) => kept_relations = None,
                }
            }
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        if let (Some(anime), Some(relations)) = (kept, kept_relations)
            && !anime.is_empty()
        {
            let franchise = Arc::new(Franchise {
                root,
                anime,
                relations,
            });
            self.inner.cache.put_franchise(root, franchise, generation);
        }
        Ok(())
    }
}

/// A cached franchise as the same stream, cloned one item at a time.
fn from_cache(franchise: Arc<Franchise>) -> BoxStream<'static, Result<FranchiseItem, Error>> {
    let members = franchise.anime.len();
    let total = members + franchise.relations.len();
    Box::pin(stream::iter(0..total).map(move |i| {
        Ok(match i.checked_sub(members) {
            None => FranchiseItem::Member(franchise.anime[i].clone()),
            Some(r) => FranchiseItem::Relation(franchise.relations[r].clone()),
        })
    }))
}
