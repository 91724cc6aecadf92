//! Keeps the read cache true beside other writers: on PostgreSQL every process's flush
//! announces the anime it rewrote, and this task drops them from this process's cache. While
//! it cannot hear (its connection lost), entries are trusted for a second only.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::cache::ReadCache;
use crate::failpoint::{FailAction, FailPoints};
use crate::store::{Store, StoreError};

/// How long an entry is trusted while rewrites may go unheard.
pub(crate) const SHORT_TTL: Duration = Duration::from_secs(1);
/// The first pause before listening again after a lost connection; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Starts hearing `store`'s rewrites for `cache`, if the store has a feed (PostgreSQL). Ends
/// by itself once the store is closed or the cache is dropped.
/// Failure point `rewrites.listen` (action `error`) makes each try to listen fail, as a
/// database that refuses the connection would.
pub(crate) fn keep_cache_true(store: Store, cache: &Arc<ReadCache>, failpoints: FailPoints) {
    // Until the feed is heard, nothing cached may be older than the short TTL.
    cache.set_hearing(false, SHORT_TTL);
    let cache = Arc::downgrade(cache);
    tokio::spawn(hear_rewrites(store, cache, failpoints));
}

async fn hear_rewrites(store: Store, cache: Weak<ReadCache>, failpoints: FailPoints) {
    let mut pause = FIRST_PAUSE;
    while !store.is_closed() {
        let feed = match failpoints.hit("rewrites.listen") {
            Some(FailAction::Error) => Err(StoreError::Open {
                location: store.location(),
                reason: "failure point rewrites.listen fired".into(),
            }),
            _ => store.rewrite_feed().await,
        };
        match feed {
            Ok(Some(mut feed)) => {
                let Some(live) = cache.upgrade() else { return };
                live.set_hearing(true, SHORT_TTL);
                drop(live);
                pause = FIRST_PAUSE;
                while let Some(ids) = feed.next().await {
                    let Some(live) = cache.upgrade() else { return };
                    live.invalidate(&ids.into_iter().collect());
                }
                let Some(live) = cache.upgrade() else { return };
                live.set_hearing(false, SHORT_TTL);
                if !store.is_closed() {
                    tracing::info!(
                        "lost the store's rewrite feed: cached reads are trusted for {} s until \
                         it is back",
                        SHORT_TTL.as_secs()
                    );
                }
            }
            // No feed on this backend: its writer is this process alone.
            Ok(None) => {
                if let Some(live) = cache.upgrade() {
                    live.set_hearing(true, SHORT_TTL);
                }
                return;
            }
            Err(e) => {
                if store.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, "cannot listen for rewrites yet; trying again");
            }
        }
        if cache.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
