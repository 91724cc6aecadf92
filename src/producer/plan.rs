//! Starting, cancelling and retrying imports, and queueing items again under a new round:
//! each one transaction, whose new jobs the backend pushes with it or the caller pushes after.

use crate::anime::AnimeId;
use crate::queue::FetchJob;
use crate::store::{ImportRules, ItemState, QueuedItem, Store, StoreError, StoreTx};

use super::walk::{FRESH, NOT_FOUND, expand};

/// Who pushes the jobs of newly queued items when the backend cannot push them inside the
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// The caller, right after the commit.
    Caller,
    /// The process that owns the queue: a hand-off is recorded in the same transaction.
    HandOff,
}

/// Jobs for `items`, pushed inside the transaction when the backend can; otherwise handed
/// back for the caller to push after the commit, or handed off to the queue's owner.
pub(super) async fn enqueue_with(
    tx: &mut dyn StoreTx,
    items: Vec<QueuedItem>,
    push: Push,
) -> Result<Vec<QueuedItem>, StoreError> {
    if items.is_empty() {
        return Ok(items);
    }
    let jobs: Vec<FetchJob> = items.iter().map(FetchJob::from).collect();
    if tx.enqueue(&jobs).await? {
        return Ok(Vec::new());
    }
    if push == Push::HandOff {
        let imports: std::collections::BTreeSet<i64> = items.iter().map(|i| i.import_id).collect();
        for import_id in imports {
            tx.hand_off(import_id).await?;
        }
        return Ok(Vec::new());
    }
    Ok(items)
}

/// Records a new import of `root` and returns its id with the items still to push. A fresh
/// root is walked through from the store at once, so a fully fresh franchise costs no fetch.
pub(crate) async fn create_import(
    store: &Store,
    root: AnimeId,
    rules: &ImportRules,
    fresh_since_ms: i64,
    now_ms: i64,
    push: Push,
) -> Result<(i64, Vec<QueuedItem>), StoreError> {
    let mut tx = store.begin().await?;
    let import_id = tx.insert_import(root, rules, now_ms).await?;
    let cached =
        |set: std::collections::HashSet<AnimeId>| !rules.force_refresh && set.contains(&root);
    let fresh = cached(tx.fresh_among(&[root], fresh_since_ms).await?);
    let missing = cached(tx.missing_among(&[root], fresh_since_ms).await?);
    let (state, reason) = if missing {
        (ItemState::Failed, Some(NOT_FOUND))
    } else if fresh {
        (ItemState::Done, Some(FRESH))
    } else {
        (ItemState::Queued, None)
    };
    tx.insert_items(import_id, &[(root, 0, state, reason)], now_ms)
        .await?;
    let to_fetch = match state {
        ItemState::Done => {
            expand(
                &mut *tx,
                import_id,
                rules,
                vec![(root, 0)],
                fresh_since_ms,
                &mut super::walk::Carried::default(),
                now_ms,
            )
            .await?
        }
        ItemState::Queued => vec![QueuedItem {
            import_id,
            anime_id: root,
            depth: 0,
            round: 0,
        }],
        _ => Vec::new(),
    };
    tx.finish_if_complete(import_id, now_ms).await?;
    let to_push = enqueue_with(&mut *tx, to_fetch, push).await?;
    tx.commit().await?;
    Ok((import_id, to_push))
}

/// Cancels an import's queued items. `None` if there is no such import; else how many items
/// were cancelled.
pub(crate) async fn cancel_import(
    store: &Store,
    import_id: i64,
    now_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let mut tx = store.begin().await?;
    let cancelled = tx.cancel_import(import_id, now_ms).await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// Queues an import's failed (and cancelled) items again, each under a new round. `None` if
/// there is no such import; else the items still to push.
pub(crate) async fn retry_import(
    store: &Store,
    import_id: i64,
    now_ms: i64,
    push: Push,
) -> Result<Option<Vec<QueuedItem>>, StoreError> {
    let mut tx = store.begin().await?;
    let Some(items) = tx.retry_import(import_id, now_ms).await? else {
        return Ok(None);
    };
    let to_push = enqueue_with(&mut *tx, items, push).await?;
    tx.commit().await?;
    Ok(Some(to_push))
}

/// Queues these items again under a new round, because their job is gone or finished while
/// they wait. Returns the items still to push.
pub(crate) async fn requeue(
    store: &Store,
    items: &[QueuedItem],
    now_ms: i64,
) -> Result<Vec<QueuedItem>, StoreError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    let moved = tx.requeue(items, now_ms).await?;
    let to_push = enqueue_with(&mut *tx, moved, Push::Caller).await?;
    tx.commit().await?;
    Ok(to_push)
}
