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
use crate::order::FranchiseJson;
pub use crate::store::FranchiseItem;

/// Batches a stream keeps ready ahead of its reader (a batch is up to 512 members, or the
/// relations of 1,000).
const READ_AHEAD: usize = 4;
/// A franchise read from the store with at most this many members also fills the franchise
/// cache, as [`Importer::franchise`] would; a bigger one is never held.
const CACHED_UP_TO: usize = 2_000;
/// Bytes a chunk of [`Importer::franchise_json`] gathers before it is handed on.
const JSON_CHUNK: usize = 64 * 1024;

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

    /// The stored franchise of `root` as `show --json` prints it in id order: the text
    /// [`FranchiseJson`] writes from [`Importer::franchise_items`], in chunks of about
    /// 64 KiB, made as the store reads it. `None` if `root` is not stored. A read that
    /// fails halfway ends the stream with its error (an [`Error`] inside the I/O error).
    pub async fn franchise_json(
        &self,
        root: AnimeId,
    ) -> Result<Option<BoxStream<'static, std::io::Result<Vec<u8>>>>, Error> {
        let mut items = self.franchise_items(root);
        let Some(first) = items.try_next().await? else {
            return Ok(None);
        };
        let state = Some((FranchiseJson::new(root), items, Some(first)));
        Ok(Some(Box::pin(stream::unfold(state, |state| async move {
            let (mut json, mut items, mut pending) = state?;
            loop {
                let item = match pending.take() {
                    Some(item) => item,
                    None => match items.try_next().await {
                        Ok(Some(item)) => item,
                        Ok(None) => return Some((Ok(json.finish()), None)),
                        Err(e) => return Some((Err(std::io::Error::other(e)), None)),
                    },
                };
                if let Err(e) = json.push(&item) {
                    return Some((Err(e.into()), None));
                }
                if let Some(chunk) = json.take_chunk(JSON_CHUNK) {
                    return Some((Ok(chunk), Some((json, items, None))));
                }
            }
        }))))
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
        let mut kept = Some((Vec::new(), Vec::new()));
        while let Some(batch) = batches.try_next().await? {
            for item in &batch {
                if let Some((anime, relations)) = kept.as_mut() {
                    match item {
                        FranchiseItem::Member(m) => anime.push(m.clone()),
                        FranchiseItem::Relation(r) => relations.push(r.clone()),
                    }
                }
                kept = kept.filter(|(anime, _)| anime.len() <= CACHED_UP_TO);
            }
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        if let Some((anime, relations)) = kept
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
