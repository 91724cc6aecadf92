//! Committing a flush: the fetched anime, their relations, the items' outcomes and the next
//! level of the walk, all in ONE transaction, so a crash leaves either all of it or none.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::anime::{Anime, AnimeId};
use crate::store::{ItemResult, QueuedItem, Store, StoreError};

use super::plan::{Push, enqueue_with};
use super::walk::{Carried, expand};

/// What the flusher writes in one transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlushBatch {
    /// The anime the requests asked for, as AniList answered them.
    pub fetched: Vec<Anime>,
    /// Anime the answers carried whole beyond the ids asked for (requests that walked several
    /// levels): stored only where the walk reaches them.
    pub carried: Vec<Anime>,
    /// Ids AniList left out of an answer: remembered as missing until their TTL passes.
    pub not_found: Vec<AnimeId>,
    pub items: Vec<ItemResult>,
}

/// What a committed flush changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlushCommitted {
    /// Items of the next level this flush queued (pushed inside the transaction or not).
    pub discovered: usize,
    /// New items whose jobs the backend could not push inside the transaction: the caller
    /// pushes them before acknowledging the jobs that found them.
    pub to_push: Vec<QueuedItem>,
    /// Imports whose items this flush settled or added.
    pub touched: BTreeSet<i64>,
    /// Anime carried beyond the ids asked for that the walk reached and stored.
    pub carried_stored: Vec<AnimeId>,
}

/// Writes `batch` and walks on from every item it completed.
pub(crate) async fn commit_flush(
    store: &Store,
    batch: &FlushBatch,
    fresh_since_ms: i64,
    now_ms: i64,
) -> Result<FlushCommitted, StoreError> {
    let mut tx = store.begin().await?;
    // One answer's nested levels meet anime another answer of the same flush holds too: each
    // is written once (an upsert may not touch a row twice in one statement).
    let just_fetched: HashSet<AnimeId> = batch.fetched.iter().map(|a| a.id).collect();
    let fetched: Cow<'_, [Anime]> = if just_fetched.len() == batch.fetched.len() {
        Cow::Borrowed(&batch.fetched)
    } else {
        let mut once = HashSet::with_capacity(just_fetched.len());
        Cow::Owned(
            batch
                .fetched
                .iter()
                .filter(|a| once.insert(a.id))
                .cloned()
                .collect(),
        )
    };
    tx.upsert_anime(&fetched, now_ms).await?;
    let found: Vec<AnimeId> = fetched.iter().map(|a| a.id).collect();
    tx.record_missing(&batch.not_found, &found, now_ms).await?;
    let completed = tx.record_outcomes(&batch.items, now_ms).await?;
    let mut by_import: BTreeMap<i64, Vec<(AnimeId, u32)>> = BTreeMap::new();
    for item in completed {
        by_import
            .entry(item.import_id)
            .or_default()
            .push((item.anime_id, item.depth));
    }
    let mut carried = Carried::new(&fetched, &batch.carried);
    let mut to_fetch = Vec::new();
    for (import_id, done) in by_import {
        let Some(rules) = tx.import_rules(import_id).await? else {
            continue;
        };
        to_fetch.extend(
            expand(
                &mut *tx,
                import_id,
                &rules,
                done,
                fresh_since_ms,
                &mut carried,
                now_ms,
            )
            .await?,
        );
    }
    let touched: BTreeSet<i64> = batch.items.iter().map(|i| i.import_id).collect();
    for import_id in &touched {
        tx.finish_if_complete(*import_id, now_ms).await?;
    }
    let discovered = to_fetch.len();
    let carried_stored: Vec<AnimeId> = carried
        .stored()
        .iter()
        .filter(|id| !just_fetched.contains(id))
        .copied()
        .collect();
    let to_push = enqueue_with(&mut *tx, to_fetch, Push::Caller).await?;
    tx.commit().await?;
    Ok(FlushCommitted {
        discovered,
        to_push,
        touched,
        carried_stored,
    })
}
