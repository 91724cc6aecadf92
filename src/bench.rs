//! Internals the project's own benchmarks drive directly (the flusher's write path, the store's
//! franchise query, the queue's bulk push). Not part of the API: compiled only with the
//! `bench` feature, which only `benches/` and `tools/bench` turn on.

use std::path::Path;
use std::sync::Arc;

use crate::anime::{Anime, AnimeId, RelationType};
use crate::producer::{FlushBatch, commit_flush};
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::{FetchJob, Lane, QueueDriver};
use crate::store::sqlite::SqliteStore;
use crate::store::{AnimeSummary, Store, StoredRelation};
use crate::{Error, StoreError};

/// A SQLite store, as the embedded backend opens it.
pub struct BenchStore {
    store: Store,
    sqlite: SqliteStore,
}

impl BenchStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let sqlite = SqliteStore::open(path).await?;
        Ok(Self {
            store: Store::new(Arc::new(sqlite.clone())),
            sqlite,
        })
    }

    /// One flush of fetched anime, as the flusher commits it.
    pub async fn commit_fetched(&self, anime: &[Anime]) -> Result<(), StoreError> {
        let batch = FlushBatch {
            fetched: anime.to_vec(),
            ..FlushBatch::default()
        };
        commit_flush(&self.store, &batch, 0, crate::clock::unix_ms_now()).await?;
        Ok(())
    }

    pub async fn franchise(&self, root: AnimeId) -> Result<Vec<AnimeSummary>, StoreError> {
        self.store
            .franchise(root, &RelationType::FOLLOWED_BY_DEFAULT)
            .await
    }

    pub async fn relations_from(&self, ids: &[AnimeId]) -> Result<Vec<StoredRelation>, StoreError> {
        self.store.relations_from(ids).await
    }

    /// The connection pool, for a baseline that writes its own SQL.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        self.sqlite.pool()
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Pushes `ids` as jobs of import 1 into a fresh embedded queue file, in one call.
pub async fn push_jobs(path: &Path, ids: &[AnimeId]) -> Result<usize, Error> {
    let queue = EmbeddedQueue::open(path, 5).await?;
    let jobs: Vec<FetchJob> = ids
        .iter()
        .map(|id| FetchJob {
            import_id: Some(1),
            anime_id: *id,
            depth: 1,
            round: 0,
        })
        .collect();
    Ok(queue.push(Lane::Background, &jobs).await?)
}
