//! Committing a flush: the fetched anime, their relations, the items' outcomes and the next
//! level of the walk, all in ONE transaction, so a crash leaves either all of it or none.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::imports::{self, QueuedItem};
use crate::store::write::{FlushBatch, record_missing, upsert_anime};
use crate::store::{Store, StoreError, unix_ms_now};

use super::planner::expand;

/// Writes `batch` and walks on from every item it completed. Returns the new items to
/// enqueue; the caller pushes them before acknowledging the jobs that found them.
pub async fn commit_batch(
    store: &Store,
    batch: &FlushBatch,
    fresh_since_ms: i64,
) -> Result<Vec<QueuedItem>, StoreError> {
    let now = unix_ms_now();
    let mut tx = store.begin().await?;
    upsert_anime(&mut tx, &batch.fetched, now).await?;
    record_missing(&mut tx, &batch.not_found, &batch.fetched, now).await?;
    let completed = imports::record_outcomes(&mut tx, &batch.items, now).await?;
    let mut by_import: BTreeMap<i64, Vec<(crate::anime::AnimeId, u32)>> = BTreeMap::new();
    for item in completed {
        by_import
            .entry(item.import_id)
            .or_default()
            .push((item.anime_id, item.depth));
    }
    let mut to_fetch = Vec::new();
    for (import_id, done) in by_import {
        let Some(rules) = imports::import_rules(&mut tx, import_id).await? else {
            continue;
        };
        to_fetch.extend(expand(&mut tx, import_id, &rules, done, fresh_since_ms, now).await?);
    }
    let touched: BTreeSet<i64> = batch.items.iter().map(|i| i.import_id).collect();
    for import_id in touched {
        imports::finish_if_complete(&mut tx, import_id, now).await?;
    }
    tx.commit().await?;
    Ok(to_fetch)
}
