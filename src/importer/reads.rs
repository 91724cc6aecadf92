//! Reads through the cache: an anime (basic tier), its relations (detailed tier) and a
//! franchise (franchise tier). A miss reads the store and fills the tier.

use std::sync::Arc;

use super::Importer;
use crate::anime::{AnimeId, RelationType};
use crate::cache::{CacheStats, Franchise};
use crate::error::Error;
use crate::store::{StoredAnime, StoredRelation};

impl Importer {
    /// A stored anime with its relations, or `None` if it is not stored. Never fetches.
    pub async fn anime(&self, id: AnimeId) -> Result<Option<StoredAnime>, Error> {
        if let Some(hit) = self.inner.cache.anime(id) {
            return Ok(hit);
        }
        let generation = self.inner.cache.generation();
        let anime = self.inner.store.anime(id).await?;
        self.inner.cache.put_anime(id, anime.clone(), generation);
        Ok(anime)
    }

    /// Every stored relation of an anime (observed and derived), ordered by the other end.
    pub async fn relations(&self, id: AnimeId) -> Result<Vec<StoredRelation>, Error> {
        if let Some(hit) = self.inner.cache.relations(id) {
            return Ok(hit);
        }
        let generation = self.inner.cache.generation();
        let relations = self.inner.store.relations_from(&[id]).await?;
        self.inner
            .cache
            .put_relations(id, relations.clone(), generation);
        Ok(relations)
    }

    /// The stored franchise of `root` (its members over the followed relation types, and
    /// every relation that starts at one of them), or `None` if `root` is not stored.
    pub async fn franchise(&self, root: AnimeId) -> Result<Option<Arc<Franchise>>, Error> {
        if let Some(hit) = self.inner.cache.franchise(root) {
            return Ok(Some(hit));
        }
        let generation = self.inner.cache.generation();
        let anime = self
            .inner
            .store
            .franchise(root, &RelationType::FOLLOWED_BY_DEFAULT)
            .await?;
        if anime.is_empty() {
            return Ok(None);
        }
        let ids: Vec<AnimeId> = anime.iter().map(|a| a.id).collect();
        let relations = self.inner.store.relations_from(&ids).await?;
        let franchise = Arc::new(Franchise {
            root,
            anime,
            relations,
        });
        self.inner
            .cache
            .put_franchise(root, franchise.clone(), generation);
        Ok(Some(franchise))
    }

    /// Hits, misses and evictions of the read cache, per tier.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }
}
