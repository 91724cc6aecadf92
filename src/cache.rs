//! The read cache in front of the store: the original app's relations cache done properly.
//! Three tiers with the original TTLs (an anime: basic, 1 h; its relations: detailed, 6 h; a
//! franchise: 24 h), invalidated by the flusher whenever it rewrites an anime, so a cached
//! franchise is never staler than the store. Hits, misses and evictions are counted per tier.
//!
//! An entry's age is measured on the injectable [`Clock`], so tests move time by hand; moka
//! bounds the memory (entries) and drops expired entries in the background.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use moka::notification::RemovalCause;
use serde::{Deserialize, Serialize};

use crate::anime::AnimeId;
use crate::clock::Clock;
use crate::store::{AnimeSummary, StoredAnime, StoredRelation};

/// A stored franchise: the root's members over followed relation types, and every stored
/// relation that starts at one of them (the shape of `show --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Franchise {
    pub root: AnimeId,
    pub anime: Vec<AnimeSummary>,
    pub relations: Vec<StoredRelation>,
}

/// Counters of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries dropped: expired, invalidated by a rewrite, or pushed out by the size bound.
    pub evictions: u64,
    pub entries: u64,
    pub ttl_secs: u64,
}

impl TierStats {
    /// Hits over look-ups, 0 before the first look-up.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// The cache's counters, per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// False when reads go straight to the store: the cache is off, or another process may
    /// write the store (the cache would not hear of its rewrites).
    pub enabled: bool,
    /// Set while this process cannot hear other processes' rewrites (its PostgreSQL listener
    /// is down): no entry older than this many milliseconds is trusted until it hears again.
    pub short_ttl_ms: Option<u64>,
    pub basic: TierStats,
    pub detailed: TierStats,
    pub franchise: TierStats,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

/// A value with the time it was read from the store.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    at_ms: i64,
}

struct Tier<K, V> {
    cache: moka::sync::Cache<K, Entry<V>>,
    ttl: Duration,
    counters: Counters,
}

impl<K, V> Tier<K, V>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(max_entries: u64, ttl: Duration) -> Self {
        let counters = Counters::default();
        let evictions = counters.evictions.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            // A backstop: entries are judged by the injectable clock on every read.
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .eviction_listener(move |_key, _value, cause| {
                if cause != RemovalCause::Replaced {
                    evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            cache,
            ttl,
            counters,
        }
    }

    /// The entry, if it is younger than the tier's TTL and than `cap_ms`.
    fn get(&self, key: &K, now_ms: i64, cap_ms: i64) -> Option<V> {
        let ttl_ms = i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .min(cap_ms);
        match self.cache.get(key) {
            Some(entry) if now_ms.saturating_sub(entry.at_ms) < ttl_ms => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.value)
            }
            Some(_) => {
                // Older than its tier: gone, and this look-up is a miss.
                self.cache.invalidate(key);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn put(&self, key: K, value: V, at_ms: i64) {
        self.cache.insert(key, Entry { value, at_ms });
    }

    fn stats(&self) -> TierStats {
        self.cache.run_pending_tasks();
        TierStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            ttl_secs: self.ttl.as_secs(),
        }
    }
}

/// The three tiers. Cheap to share (`Arc`).
pub(crate) struct ReadCache {
    enabled: AtomicBool,
    /// Goes up on every invalidation: a value read from the store before an invalidation is
    /// not put (it may predate the rewrite).
    generation: AtomicU64,
    /// The short TTL in force while rewrites may go unheard (ms; 0: none).
    short_ttl_ms: AtomicI64,
    clock: Arc<dyn Clock>,
    anime: Tier<AnimeId, Option<StoredAnime>>,
    relations: Tier<AnimeId, Vec<StoredRelation>>,
    franchise: Tier<AnimeId, Arc<Franchise>>,
}

impl ReadCache {
    pub(crate) fn new(
        max_entries: u64,
        basic: Duration,
        detailed: Duration,
        franchise: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            enabled: AtomicBool::new(max_entries > 0),
            generation: AtomicU64::new(0),
            short_ttl_ms: AtomicI64::new(0),
            clock,
            anime: Tier::new(max_entries, basic),
            relations: Tier::new(max_entries, detailed),
            franchise: Tier::new(max_entries, franchise),
        }
    }

    /// Turns the cache off (reads go to the store) or back on.
    pub(crate) fn set_enabled(&self, enabled: bool) {
        if !enabled {
            self.clear();
        }
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The oldest entry age trusted now (ms).
    fn cap(&self) -> i64 {
        match self.short_ttl_ms.load(Ordering::SeqCst) {
            0 => i64::MAX,
            short => short,
        }
    }

    /// Whether every rewrite is heard (another process's through the store's rewrite feed).
    /// While not, entries live `short_ttl` at most. Either way the cache starts afresh: what
    /// it held may predate a rewrite it did not hear.
    pub(crate) fn set_hearing(&self, hearing: bool, short_ttl: Duration) {
        let short = if hearing {
            0
        } else {
            i64::try_from(short_ttl.as_millis())
                .unwrap_or(i64::MAX)
                .max(1)
        };
        self.short_ttl_ms.store(short, Ordering::SeqCst);
        self.clear();
    }

    /// Call before reading the store for a miss; pass the result to `put_*`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn current(&self, generation: u64) -> bool {
        self.is_enabled() && self.generation.load(Ordering::SeqCst) == generation
    }

    pub(crate) fn anime(&self, id: AnimeId) -> Option<Option<StoredAnime>> {
        self.is_enabled()
            .then(|| self.anime.get(&id, self.now(), self.cap()))
            .flatten()
    }

    pub(crate) fn put_anime(&self, id: AnimeId, value: Option<StoredAnime>, generation: u64) {
        if self.current(generation) {
            self.anime.put(id, value, self.now());
        }
    }

    pub(crate) fn relations(&self, id: AnimeId) -> Option<Vec<StoredRelation>> {
        self.is_enabled()
            .then(|| self.relations.get(&id, self.now(), self.cap()))
            .flatten()
    }

    pub(crate) fn put_relations(&self, id: AnimeId, value: Vec<StoredRelation>, generation: u64) {
        if self.current(generation) {
            self.relations.put(id, value, self.now());
        }
    }

    pub(crate) fn franchise(&self, root: AnimeId) -> Option<Arc<Franchise>> {
        self.is_enabled()
            .then(|| self.franchise.get(&root, self.now(), self.cap()))
            .flatten()
    }

    pub(crate) fn put_franchise(&self, root: AnimeId, value: Arc<Franchise>, generation: u64) {
        if self.current(generation) {
            self.franchise.put(root, value, self.now());
        }
    }

    /// The flusher rewrote these anime (and the derived rows of their relations' far ends):
    /// every entry that shows one of them is dropped.
    pub(crate) fn invalidate(&self, touched: &HashSet<AnimeId>) {
        if touched.is_empty() || !self.is_enabled() {
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        for id in touched {
            self.anime.cache.invalidate(id);
            self.relations.cache.invalidate(id);
        }
        let stale: Vec<AnimeId> = self
            .franchise
            .cache
            .iter()
            .filter(|(_, entry)| {
                touched.contains(&entry.value.root)
                    || entry.value.anime.iter().any(|a| touched.contains(&a.id))
            })
            .map(|(root, _)| *root)
            .collect();
        for root in stale {
            self.franchise.cache.invalidate(&root);
        }
    }

    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.anime.cache.invalidate_all();
        self.relations.cache.invalidate_all();
        self.franchise.cache.invalidate_all();
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            enabled: self.is_enabled(),
            short_ttl_ms: match self.short_ttl_ms.load(Ordering::SeqCst) {
                0 => None,
                ms => u64::try_from(ms).ok(),
            },
            basic: self.anime.stats(),
            detailed: self.relations.stats(),
            franchise: self.franchise.stats(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::id;

    fn summary(raw: i64) -> AnimeSummary {
        AnimeSummary {
            id: id(raw),
            title: Some(format!("Anime {raw}")),
            format: None,
            status: None,
            season: None,
            season_year: None,
            start_date: crate::anime::FuzzyDate::default(),
        }
    }

    fn franchise(root: i64, members: &[i64]) -> Arc<Franchise> {
        Arc::new(Franchise {
            root: id(root),
            anime: members.iter().map(|m| summary(*m)).collect(),
            relations: Vec::new(),
        })
    }

    /// The original app's tiers: basic 1 h, detailed 6 h, franchise 24 h.
    fn cache(clock: &ManualClock) -> ReadCache {
        ReadCache::new(
            100,
            Duration::from_secs(3600),
            Duration::from_secs(6 * 3600),
            Duration::from_secs(24 * 3600),
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn hits_and_misses_are_counted_per_tier() {
        let clock = ManualClock::at(1_000_000);
        let cache = cache(&clock);
        assert!(cache.anime(id(1)).is_none());
        let g = cache.generation();
        cache.put_anime(id(1), None, g);
        assert_eq!(
            cache.anime(id(1)),
            Some(None),
            "a cached 'not stored' is a hit too"
        );
        assert!(cache.relations(id(1)).is_none());
        cache.put_relations(id(1), Vec::new(), g);
        assert_eq!(cache.relations(id(1)), Some(Vec::new()));
        let stats = cache.stats();
        assert_eq!((stats.basic.hits, stats.basic.misses), (1, 1));
        assert_eq!((stats.detailed.hits, stats.detailed.misses), (1, 1));
        assert_eq!((stats.franchise.hits, stats.franchise.misses), (0, 0));
        assert!((stats.basic.hit_rate() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn each_tier_expires_after_its_own_ttl_on_the_clock() {
        let clock = ManualClock::at(1_000_000);
        let cache = cache(&clock);
        let g = cache.generation();
        cache.put_anime(id(1), None, g);
        cache.put_relations(id(1), Vec::new(), g);
        cache.put_franchise(id(1), franchise(1, &[1, 2]), g);
        clock.advance(Duration::from_secs(3600 - 1));
        assert!(
            cache.anime(id(1)).is_some(),
            "basic lives just under an hour"
        );
        clock.advance(Duration::from_secs(1));
        assert!(cache.anime(id(1)).is_none(), "and not an hour");
        assert!(cache.relations(id(1)).is_some());
        clock.advance(Duration::from_secs(5 * 3600));
        assert!(cache.relations(id(1)).is_none(), "detailed: 6 h");
        assert!(cache.franchise(id(1)).is_some());
        clock.advance(Duration::from_secs(18 * 3600));
        assert!(cache.franchise(id(1)).is_none(), "franchise: 24 h");
        let stats = cache.stats();
        assert!(
            stats.basic.evictions >= 1 && stats.franchise.evictions >= 1,
            "{stats:?}"
        );
    }

    #[test]
    fn while_rewrites_may_go_unheard_entries_live_the_short_ttl_only() {
        let clock = ManualClock::at(1_000_000);
        let cache = cache(&clock);
        let g = cache.generation();
        cache.put_anime(id(1), None, g);
        cache.set_hearing(false, Duration::from_secs(1));
        assert!(
            cache.anime(id(1)).is_none(),
            "what was cached before may predate an unheard rewrite"
        );
        assert_eq!(cache.stats().short_ttl_ms, Some(1000));
        let g = cache.generation();
        cache.put_anime(id(1), None, g);
        cache.put_franchise(id(1), franchise(1, &[1]), g);
        clock.advance(Duration::from_millis(999));
        assert!(cache.anime(id(1)).is_some(), "younger than the short TTL");
        clock.advance(Duration::from_millis(1));
        assert!(cache.anime(id(1)).is_none(), "not a second");
        assert!(
            cache.franchise(id(1)).is_none(),
            "whatever the tier's own TTL"
        );

        // Heard again: the tiers' own TTLs, from a fresh start.
        let g = cache.generation();
        cache.put_anime(id(2), None, g);
        cache.set_hearing(true, Duration::from_secs(1));
        assert_eq!(cache.stats().short_ttl_ms, None);
        assert!(cache.anime(id(2)).is_none(), "started afresh");
        let g = cache.generation();
        cache.put_anime(id(2), None, g);
        clock.advance(Duration::from_secs(60));
        assert!(cache.anime(id(2)).is_some(), "an hour's TTL again");
    }

    #[test]
    fn a_rewrite_invalidates_the_anime_and_every_franchise_that_shows_it() {
        let clock = ManualClock::at(0);
        let cache = cache(&clock);
        let g = cache.generation();
        cache.put_franchise(id(1), franchise(1, &[1, 2, 3]), g);
        cache.put_franchise(id(10), franchise(10, &[10, 11]), g);
        cache.put_anime(id(3), None, g);
        cache.invalidate(&HashSet::from([id(3)]));
        assert!(
            cache.franchise(id(1)).is_none(),
            "3 is a member of 1's franchise"
        );
        assert!(
            cache.franchise(id(10)).is_some(),
            "10's franchise does not show 3"
        );
        assert!(cache.anime(id(3)).is_none());
        // A read that began before the rewrite is not cached after it.
        let before = cache.generation();
        cache.invalidate(&HashSet::from([id(11)]));
        cache.put_franchise(id(10), franchise(10, &[10, 11]), before);
        assert!(
            cache.franchise(id(10)).is_none(),
            "a stale read must not be cached"
        );
    }

    #[test]
    fn a_disabled_cache_misses_without_counting() {
        let clock = ManualClock::at(0);
        let cache = cache(&clock);
        cache.set_enabled(false);
        cache.put_anime(id(1), None, cache.generation());
        assert!(cache.anime(id(1)).is_none());
        let stats = cache.stats();
        assert!(!stats.enabled);
        assert_eq!(stats.basic.hits + stats.basic.misses, 0);
    }
}
