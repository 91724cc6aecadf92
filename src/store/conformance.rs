//! ONE suite for every store backend, the way River's `riverdrivertest` runs against each
//! driver: upserts on the natural keys, observed edges winning over derived ones, generation
//! deletes, the franchise query, the walk inside a flush, rounds, cancel and retry, triage,
//! hand-offs, the shared budget's ledger and the process table.
//!
//! Each case is an async fn over a `Store`; `conformance_suite!` turns them into tests for a
//! backend, given an async fn that makes a fresh store (and a guard that cleans it up).

use std::collections::HashMap;

use crate::anime::{AnimeId, RelationType};
use crate::ledger::{LedgerOp, LedgerRules, ParkReason};
use crate::producer::{
    FlushBatch, ImportOptions, Push, cancel_import, commit_flush, create_import, requeue,
    retry_import,
};
use crate::store::{
    ImportFilter, ImportState, ItemOutcome, ItemResult, ItemState, ProcessInfo, ProcessRole,
    QueuedItem, Store,
};
use crate::test_support::{anime, id};

fn batch(fetched: Vec<crate::anime::Anime>) -> FlushBatch {
    FlushBatch {
        fetched,
        ..FlushBatch::default()
    }
}

/// Commits a flush; returns the items it queued (whether the backend pushed their jobs inside
/// the transaction or left them to the caller).
async fn flush(store: &Store, batch: &FlushBatch) -> Vec<QueuedItem> {
    let before = store.queued_items(0).await.unwrap();
    commit_flush(store, batch, 0, 1_000).await.unwrap();
    let mut after = store.queued_items(0).await.unwrap();
    after.retain(|item| !before.contains(item));
    after
}

/// Starts an import; returns its id and the items it queued.
async fn import(store: &Store, root: i64, options: &ImportOptions) -> (i64, Vec<QueuedItem>) {
    let (import_id, _) = create_import(store, id(root), &options.rules(), 0, 1_000, Push::Caller)
        .await
        .unwrap();
    let queued = store.queued_items_of(&[import_id]).await.unwrap();
    (import_id, queued)
}

async fn progress(store: &Store, import_id: i64) -> crate::store::ImportProgress {
    store
        .imports(&ImportFilter::one(import_id))
        .await
        .unwrap()
        .remove(0)
}

fn done(import_id: i64, anime_id: i64) -> ItemResult {
    ItemResult {
        import_id,
        anime_id: id(anime_id),
        outcome: ItemOutcome::Done,
    }
}

/// (from, to, type, derived) of every relation from `ids`.
async fn rel(store: &Store, ids: &[i64]) -> Vec<(u32, u32, String, bool)> {
    let ids: Vec<AnimeId> = ids.iter().map(|i| id(*i)).collect();
    store
        .relations_from(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.from.get(), r.to.get(), r.relation_type, r.derived))
        .collect()
}

fn r(from: u32, to: u32, t: &str, derived: bool) -> (u32, u32, String, bool) {
    (from, to, t.to_string(), derived)
}

pub(crate) async fn forward_edges_are_observed_and_inverses_derived(store: Store) {
    let a = anime(
        1,
        &[
            ("SEQUEL", 2, "ANIME"),
            ("SIDE_STORY", 3, "ANIME"),
            ("SOURCE", 900, "MANGA"),
            ("PARENT", 4, "ANIME"),
            ("TIME_TRAVEL", 5, "ANIME"),
        ],
    );
    flush(&store, &batch(vec![a])).await;
    let stored = store.anime(id(1)).await.unwrap().unwrap();
    assert_eq!(stored.relations.len(), 5);
    assert_eq!(
        rel(&store, &[1]).await,
        vec![
            r(1, 2, "SEQUEL", false),
            r(1, 3, "SIDE_STORY", false),
            r(1, 4, "PARENT", false),
            r(1, 5, "TIME_TRAVEL", false),
            r(1, 900, "SOURCE", false),
        ]
    );
    assert_eq!(rel(&store, &[2]).await, vec![r(2, 1, "PREQUEL", true)]);
    assert_eq!(rel(&store, &[3]).await, vec![r(3, 1, "PARENT", true)]);
    // PARENT's inverse is ambiguous, an unknown type has none, and a manga gets no rows.
    assert!(rel(&store, &[4, 5, 900]).await.is_empty());
}

pub(crate) async fn an_observed_edge_replaces_a_derived_one_and_never_the_reverse(store: Store) {
    flush(&store, &batch(vec![anime(1, &[("SEQUEL", 2, "ANIME")])])).await;
    assert_eq!(rel(&store, &[2]).await, vec![r(2, 1, "PREQUEL", true)]);
    // AniList says something else from the other side: the observation wins.
    flush(
        &store,
        &batch(vec![anime(2, &[("ALTERNATIVE", 1, "ANIME")])]),
    )
    .await;
    assert_eq!(rel(&store, &[2]).await, vec![r(2, 1, "ALTERNATIVE", false)]);
    // Re-fetching 1 derives PREQUEL for 2→1 again, but must not overwrite the observed row.
    flush(&store, &batch(vec![anime(1, &[("SEQUEL", 2, "ANIME")])])).await;
    assert_eq!(rel(&store, &[2]).await, vec![r(2, 1, "ALTERNATIVE", false)]);
    // Both ends in one batch: observed rows on both sides, no derived ones.
    flush(
        &store,
        &batch(vec![
            anime(7, &[("SEQUEL", 8, "ANIME")]),
            anime(8, &[("PREQUEL", 7, "ANIME")]),
        ]),
    )
    .await;
    assert_eq!(
        rel(&store, &[7, 8]).await,
        vec![r(7, 8, "SEQUEL", false), r(8, 7, "PREQUEL", false)]
    );
}

pub(crate) async fn the_same_batch_twice_changes_nothing_and_dropped_edges_go(store: Store) {
    let world = vec![
        anime(
            1,
            &[
                ("SEQUEL", 2, "ANIME"),
                ("CHARACTER", 50, "ANIME"),
                ("SOURCE", 900, "MANGA"),
            ],
        ),
        anime(
            2,
            &[
                ("PREQUEL", 1, "ANIME"),
                ("SEQUEL", 3, "ANIME"),
                ("SEQUEL", 2, "ANIME"),
            ],
        ),
        anime(3, &[("PREQUEL", 2, "ANIME")]),
    ];
    flush(&store, &batch(world.clone())).await;
    let all = [1, 2, 3, 50, 900];
    let first = rel(&store, &all).await;
    flush(&store, &batch(world)).await;
    assert_eq!(rel(&store, &all).await, first);
    // (2,2) self-relation plus 1→2, 1→50, 1→900, 2→1, 2→3, 3→2 observed and 50→1 derived.
    assert_eq!(first.len(), 8, "{first:?}");

    // AniList dropped 1's CHARACTER edge: the row and its derived inverse disappear.
    flush(
        &store,
        &batch(vec![anime(
            1,
            &[("SEQUEL", 2, "ANIME"), ("SOURCE", 900, "MANGA")],
        )]),
    )
    .await;
    let after = rel(&store, &all).await;
    assert!(
        !after.iter().any(|(f, t, _, _)| (*f, *t) == (1, 50)),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|(f, t, _, _)| (*f, *t) == (50, 1)),
        "{after:?}"
    );
    assert_eq!(after.len(), 6, "{after:?}");
}

pub(crate) async fn the_franchise_query_follows_only_followed_types_and_survives_cycles(
    store: Store,
) {
    flush(
        &store,
        &batch(vec![
            anime(
                1,
                &[
                    ("SEQUEL", 2, "ANIME"),
                    ("CHARACTER", 10, "ANIME"),
                    ("SOURCE", 900, "MANGA"),
                ],
            ),
            anime(
                2,
                &[
                    ("PREQUEL", 1, "ANIME"),
                    ("SIDE_STORY", 3, "ANIME"),
                    ("SEQUEL", 2, "ANIME"),
                ],
            ),
            anime(3, &[("PARENT", 2, "ANIME"), ("SEQUEL", 1, "ANIME")]),
            anime(10, &[("CHARACTER", 1, "ANIME"), ("SEQUEL", 11, "ANIME")]),
            anime(11, &[]),
        ]),
    )
    .await;
    let members = |list: Vec<crate::store::AnimeSummary>| -> Vec<u32> {
        list.iter().map(|a| a.id.get()).collect()
    };
    let followed = store
        .franchise(id(1), &RelationType::FOLLOWED_BY_DEFAULT)
        .await
        .unwrap();
    assert_eq!(members(followed), vec![1, 2, 3]);
    let with_character = store
        .franchise(id(1), &[RelationType::Character, RelationType::Sequel])
        .await
        .unwrap();
    assert_eq!(members(with_character), vec![1, 2, 10, 11]);
    assert!(
        store
            .franchise(id(77), &RelationType::FOLLOWED_BY_DEFAULT)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The streamed read gives the franchise query's members in id order, then exactly the
/// relations `relations_from` gives for them, in (from, to) order; across more members than
/// one batch or one relations read holds.
pub(crate) async fn the_streamed_franchise_is_the_members_then_their_relations(store: Store) {
    use futures::TryStreamExt;

    use crate::store::FranchiseItem;
    // A chain of 2,500 (more than the batches of 512 and the reads of 1,000 relations), each
    // with a relation to a manga that is not followed, and one anime off the chain.
    let chain: Vec<crate::anime::Anime> = (1..=2_500i64)
        .map(|n| {
            let mut edges = vec![("SOURCE", 900_000 + n, "MANGA")];
            if n > 1 {
                edges.push(("PREQUEL", n - 1, "ANIME"));
            }
            if n < 2_500 {
                edges.push(("SEQUEL", n + 1, "ANIME"));
            }
            anime(n, &edges)
        })
        .chain([anime(5_000, &[("CHARACTER", 1, "ANIME")])])
        .collect();
    for part in chain.chunks(500) {
        flush(&store, &batch(part.to_vec())).await;
    }
    let batches: Vec<Vec<FranchiseItem>> = store
        .franchise_stream(id(1_250), &RelationType::FOLLOWED_BY_DEFAULT)
        .try_collect()
        .await
        .unwrap();
    assert!(batches.len() > 3, "{} batches", batches.len());
    let items: Vec<FranchiseItem> = batches.into_iter().flatten().collect();
    let members = store
        .franchise(id(1_250), &RelationType::FOLLOWED_BY_DEFAULT)
        .await
        .unwrap();
    assert_eq!(members.len(), 2_500);
    let ids: Vec<AnimeId> = members.iter().map(|m| m.id).collect();
    let relations = store.relations_from(&ids).await.unwrap();
    let expected: Vec<FranchiseItem> = members
        .into_iter()
        .map(FranchiseItem::Member)
        .chain(relations.into_iter().map(FranchiseItem::Relation))
        .collect();
    assert_eq!(items.len(), expected.len());
    assert!(
        items == expected,
        "the streamed franchise differs from the two reads"
    );
    let unknown: Vec<Vec<FranchiseItem>> = store
        .franchise_stream(id(77_777), &RelationType::FOLLOWED_BY_DEFAULT)
        .try_collect()
        .await
        .unwrap();
    assert!(unknown.into_iter().flatten().next().is_none());
}

pub(crate) async fn an_import_of_a_fresh_franchise_walks_the_store_and_queues_nothing(
    store: Store,
) {
    flush(
        &store,
        &batch(vec![
            anime(1, &[("SEQUEL", 2, "ANIME"), ("CHARACTER", 10, "ANIME")]),
            anime(2, &[("PREQUEL", 1, "ANIME"), ("SEQUEL", 3, "ANIME")]),
        ]),
    )
    .await;
    // 3 is known only from 2's edge, never fetched: the walk must queue exactly it.
    let (import_id, to_fetch) = import(&store, 1, &ImportOptions::default()).await;
    let queued: Vec<(u32, u32, u32)> = to_fetch
        .iter()
        .map(|q| (q.anime_id.get(), q.depth, q.round))
        .collect();
    assert_eq!(queued, vec![(3, 2, 0)]);
    let p = progress(&store, import_id).await;
    assert_eq!((p.discovered, p.done, p.queued), (3, 2, 1));
    assert_eq!(p.state, ImportState::Running);
    assert_eq!(p.queued_levels, 1);
    assert_eq!(p.frontier_depth, 2, "3 waits on level 2");

    // The fetch of 3 lands: the import finishes; a second import costs nothing at all.
    let next = flush(
        &store,
        &FlushBatch {
            fetched: vec![anime(3, &[("PREQUEL", 2, "ANIME")])],
            items: vec![done(import_id, 3)],
            ..FlushBatch::default()
        },
    )
    .await;
    assert!(next.is_empty());
    let p = progress(&store, import_id).await;
    assert!(p.finished_at_ms.is_some());
    assert_eq!(p.state, ImportState::Done);
    let (_, again) = import(&store, 1, &ImportOptions::default()).await;
    assert!(again.is_empty());

    // Force-refresh queues the root even though it is fresh.
    let forced = ImportOptions::default()
        .with_force_refresh(true)
        .with_max_depth(1);
    let (_, root_only) = import(&store, 1, &forced).await;
    assert_eq!(root_only.len(), 1);
    // A depth cap of 1 stops at 2, and the import says a cap left relations unwalked.
    let (capped_id, none) = import(&store, 1, &ImportOptions::default().with_max_depth(1)).await;
    assert!(none.is_empty());
    let p = progress(&store, capped_id).await;
    assert_eq!(p.discovered, 2);
    assert_eq!(p.state, ImportState::Capped);
    assert_eq!(p.unwalked_edges, 1, "2→3 was left unwalked");
    // A size cap does the same.
    let (sized, _) = import(&store, 1, &ImportOptions::default().with_max_items(1)).await;
    let p = progress(&store, sized).await;
    assert_eq!(
        (p.discovered, p.state, p.unwalked_edges),
        (1, ImportState::Capped, 1)
    );
}

/// The ETA's levels: the depths an import's queued items span (gaps do not count) and the
/// deepest of them, read by each backend its own way.
pub(crate) async fn the_queued_levels_count_each_depth_waiting_once(store: Store) {
    // 1-2-3-4 stored; 11 and 12 hang off 1, 13 off 3, 14 off 4: queued on depths 1, 1, 3, 4.
    flush(
        &store,
        &batch(vec![
            anime(
                1,
                &[
                    ("SEQUEL", 2, "ANIME"),
                    ("SIDE_STORY", 11, "ANIME"),
                    ("SPIN_OFF", 12, "ANIME"),
                ],
            ),
            anime(2, &[("PREQUEL", 1, "ANIME"), ("SEQUEL", 3, "ANIME")]),
            anime(
                3,
                &[
                    ("PREQUEL", 2, "ANIME"),
                    ("SEQUEL", 4, "ANIME"),
                    ("SIDE_STORY", 13, "ANIME"),
                ],
            ),
            anime(4, &[("PREQUEL", 3, "ANIME"), ("SIDE_STORY", 14, "ANIME")]),
        ]),
    )
    .await;
    let (import_id, queued) = import(&store, 1, &ImportOptions::default()).await;
    let mut depths: Vec<(u32, u32)> = queued.iter().map(|q| (q.anime_id.get(), q.depth)).collect();
    depths.sort_unstable();
    assert_eq!(depths, vec![(11, 1), (12, 1), (13, 3), (14, 4)]);
    let p = progress(&store, import_id).await;
    assert_eq!((p.queued_levels, p.frontier_depth), (3, 4));

    // Level 1 settled: two levels are left. The deepest settled: one, and it is the frontier.
    let settle = |ids: &[i64]| FlushBatch {
        fetched: ids.iter().map(|&n| anime(n, &[])).collect(),
        items: ids.iter().map(|&n| done(import_id, n)).collect(),
        ..FlushBatch::default()
    };
    flush(&store, &settle(&[11, 12])).await;
    let p = progress(&store, import_id).await;
    assert_eq!((p.queued_levels, p.frontier_depth), (2, 4));
    flush(&store, &settle(&[14])).await;
    let p = progress(&store, import_id).await;
    assert_eq!((p.queued_levels, p.frontier_depth), (1, 3));
    flush(&store, &settle(&[13])).await;
    let p = progress(&store, import_id).await;
    assert_eq!(p.state, ImportState::Done);
    assert_eq!((p.queued_levels, p.frontier_depth), (0, 0));
}

pub(crate) async fn failed_items_carry_their_reason_and_a_redelivered_job_changes_nothing(
    store: Store,
) {
    let (import_id, _) = import(&store, 5, &ImportOptions::default()).await;
    let failed = FlushBatch {
        not_found: vec![id(5)],
        fetched: vec![],
        carried: vec![],
        items: vec![ItemResult {
            import_id,
            anime_id: id(5),
            outcome: ItemOutcome::Failed("not found on AniList".into()),
        }],
    };
    flush(&store, &failed).await;
    // A late duplicate that "succeeded" must not flip a finished item.
    let dup = FlushBatch {
        fetched: vec![anime(5, &[("SEQUEL", 6, "ANIME")])],
        items: vec![done(import_id, 5)],
        ..FlushBatch::default()
    };
    assert!(flush(&store, &dup).await.is_empty());
    let p = progress(&store, import_id).await;
    assert_eq!((p.failed, p.done, p.queued), (1, 0, 0));
    assert_eq!(p.state, ImportState::DoneWithFailures);
    assert_eq!(p.failures, vec![("not found on AniList".to_string(), 1)]);
    assert_eq!(
        store.failed_items(import_id, 10).await.unwrap(),
        vec![(id(5), "not found on AniList".to_string())]
    );

    // AniList said 6 is missing: a new import within the TTL fails it without a fetch.
    let gone = FlushBatch {
        not_found: vec![id(6)],
        ..FlushBatch::default()
    };
    flush(&store, &gone).await;
    let (again, to_fetch) = import(&store, 6, &ImportOptions::default()).await;
    assert!(to_fetch.is_empty());
    let p = progress(&store, again).await;
    assert_eq!((p.failed, p.queued), (1, 0));
    let (_, refetch) = import(
        &store,
        6,
        &ImportOptions::default().with_force_refresh(true),
    )
    .await;
    assert_eq!(refetch.len(), 1, "force-refresh asks AniList again");
}

pub(crate) async fn requeue_moves_only_items_still_queued_at_their_round(store: Store) {
    let (import_id, to_fetch) = import(&store, 1, &ImportOptions::default()).await;
    assert_eq!(to_fetch[0].round, 0);
    requeue(&store, &to_fetch, 2_000).await.unwrap();
    let moved = store.queued_items_of(&[import_id]).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].round, 1);
    // The old round no longer matches: a second requeue of it moves nothing.
    assert!(requeue(&store, &to_fetch, 2_000).await.unwrap().is_empty());
    let triage = store.triage(&[(import_id, id(1))]).await.unwrap();
    assert_eq!(triage[&(import_id, id(1))].round, 1);
    assert_eq!(triage[&(import_id, id(1))].state, ItemState::Queued);
    // A settled item is never requeued.
    flush(
        &store,
        &FlushBatch {
            fetched: vec![anime(1, &[])],
            items: vec![done(import_id, 1)],
            ..FlushBatch::default()
        },
    )
    .await;
    assert!(requeue(&store, &moved, 3_000).await.unwrap().is_empty());
}

pub(crate) async fn triage_sees_anime_stored_or_missing_since_the_item_was_queued(store: Store) {
    let (import_id, _) = import(&store, 1, &ImportOptions::default()).await;
    let key = (import_id, id(1));
    let t = store.triage(&[key]).await.unwrap()[&key];
    assert!(!t.stored_since_queued && !t.missing_since_queued);
    // Another import stores anime 1 later: the queued item can be settled from the store.
    commit_flush(&store, &batch(vec![anime(1, &[])]), 0, 5_000)
        .await
        .unwrap();
    let t = store.triage(&[key]).await.unwrap()[&key];
    assert!(t.stored_since_queued);
    let (import_2, _) = create_import(
        &store,
        id(2),
        &ImportOptions::default().rules(),
        0,
        6_000,
        Push::Caller,
    )
    .await
    .unwrap();
    commit_flush(
        &store,
        &FlushBatch {
            not_found: vec![id(2)],
            ..FlushBatch::default()
        },
        0,
        7_000,
    )
    .await
    .unwrap();
    let t = store.triage(&[(import_2, id(2))]).await.unwrap()[&(import_2, id(2))];
    assert!(t.missing_since_queued && !t.stored_since_queued);
    // Unknown items are absent from the answer.
    assert!(store.triage(&[(999, id(1))]).await.unwrap().is_empty());
}

pub(crate) async fn cancel_drops_queued_items_and_retry_queues_failed_ones_again(store: Store) {
    flush(
        &store,
        &batch(vec![anime(
            1,
            &[("SEQUEL", 2, "ANIME"), ("SEQUEL", 3, "ANIME")],
        )]),
    )
    .await;
    let (import_id, queued) = import(&store, 1, &ImportOptions::default()).await;
    assert_eq!(queued.len(), 2);
    // 2 fails; then the import is cancelled with 3 still queued.
    flush(
        &store,
        &FlushBatch {
            items: vec![ItemResult {
                import_id,
                anime_id: id(2),
                outcome: ItemOutcome::Failed("transient AniList failure".into()),
            }],
            ..FlushBatch::default()
        },
    )
    .await;
    assert_eq!(
        cancel_import(&store, import_id, 2_000).await.unwrap(),
        Some(1)
    );
    let p = progress(&store, import_id).await;
    assert_eq!((p.done, p.failed, p.cancelled, p.queued), (1, 1, 1, 0));
    assert_eq!(p.state, ImportState::Cancelled);
    assert!(p.finished_at_ms.is_some());
    let key = (import_id, id(3));
    assert_eq!(
        store.triage(&[key]).await.unwrap()[&key].state,
        ItemState::Cancelled
    );
    // A fetch of 3 that was in flight lands: the item stays cancelled.
    flush(
        &store,
        &FlushBatch {
            fetched: vec![anime(3, &[])],
            items: vec![done(import_id, 3)],
            ..FlushBatch::default()
        },
    )
    .await;
    assert_eq!(progress(&store, import_id).await.cancelled, 1);
    assert_eq!(cancel_import(&store, 404, 2_000).await.unwrap(), None);

    // Retry queues the failed and the cancelled item again, each under a new round.
    retry_import(&store, import_id, 3_000, Push::Caller)
        .await
        .unwrap()
        .unwrap();
    let again = store.queued_items_of(&[import_id]).await.unwrap();
    let mut rounds: Vec<(u32, u32)> = again.iter().map(|q| (q.anime_id.get(), q.round)).collect();
    rounds.sort();
    assert_eq!(rounds, vec![(2, 1), (3, 1)]);
    let p = progress(&store, import_id).await;
    assert_eq!(
        (p.failed, p.cancelled, p.queued, p.state),
        (0, 0, 2, ImportState::Running)
    );
    assert!(p.finished_at_ms.is_none());
    // 3 was stored before the retry queued it again: not "stored since queued".
    let t = store.triage(&[key]).await.unwrap()[&key];
    assert!(!t.stored_since_queued);
    assert_eq!(
        retry_import(&store, 404, 3_000, Push::Caller)
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn hand_offs_record_work_for_the_queue_owner(store: Store) {
    let (import_id, to_push) = create_import(
        &store,
        id(1),
        &ImportOptions::default().rules(),
        0,
        1_000,
        Push::HandOff,
    )
    .await
    .unwrap();
    assert!(
        to_push.is_empty(),
        "handed off (or pushed with the data), not returned"
    );
    // A backend that pushes inside the transaction needs no hand-off; record one by hand.
    if store.handoffs(0).await.unwrap().is_empty() {
        let mut tx = store.begin().await.unwrap();
        tx.hand_off(import_id).await.unwrap();
        tx.commit().await.unwrap();
    }
    let handoffs = store.handoffs(0).await.unwrap();
    assert_eq!(handoffs.len(), 1);
    assert_eq!(handoffs[0].1, import_id);
    let items = store.queued_items_of(&[import_id]).await.unwrap();
    assert_eq!(items.len(), 1);
    store.clear_handoffs(handoffs[0].0).await.unwrap();
    assert!(store.handoffs(0).await.unwrap().is_empty());
    assert_eq!(store.queued_items(0).await.unwrap(), items);
    assert!(store.queued_items(import_id).await.unwrap().is_empty());
}

pub(crate) async fn imports_filter_by_state_newest_first(store: Store) {
    let (a, _) = import(&store, 1, &ImportOptions::default()).await;
    let (b, _) = import(&store, 2, &ImportOptions::default()).await;
    cancel_import(&store, a, 2_000).await.unwrap();
    let all: Vec<i64> = store
        .imports(&ImportFilter::all())
        .await
        .unwrap()
        .iter()
        .map(|p| p.import_id)
        .collect();
    assert_eq!(all, vec![b, a]);
    let running = store
        .imports(&ImportFilter::in_state(ImportState::Running))
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].import_id, b);
    let cancelled = store
        .imports(&ImportFilter::in_state(ImportState::Cancelled))
        .await
        .unwrap();
    assert_eq!(cancelled[0].import_id, a);
}

/// Budget rules for the ledger's cases: `requests` per `window_ms`, `min_spacing_ms` apart,
/// with short pauses and holds.
fn ledger_rules(requests: u32, window_ms: i64, min_spacing_ms: i64) -> LedgerRules {
    LedgerRules {
        requests,
        window_ms,
        min_spacing_ms,
        retry_after_margin_ms: 100,
        outage_pause_min_ms: 50,
        outage_pause_max_ms: 200,
        max_park_ms: 900_000,
        probe_hold_ms: 1_000,
    }
}

pub(crate) async fn the_budget_ledger_keeps_the_window_the_spacing_and_the_park(store: Store) {
    // Real time, short windows: a shared database decides on its own clock.
    let r = ledger_rules(3, 1_500, 100);
    let now = crate::clock::unix_ms_now;
    let take = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .budget(LedgerOp::Take { most: 1 }, &r, now())
                .await
                .unwrap()
        }
    };
    // When each take was granted, on the clock the ledger decides by (the caller's for
    // SQLite, the server's for PostgreSQL): what it promises is measured there, not by this
    // process's view of it, which a slow round trip would blur.
    let mut grants = Vec::new();
    while grants.len() < 4 {
        let out = take(&store).await;
        if out.granted {
            grants.push(out.now_ms);
        } else {
            let wait = out.retry_at_ms.unwrap() - out.now_ms;
            assert!(wait > 0 && wait <= 1_600, "{out:?}");
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    }
    // The pace between sends, and the fourth only once the first left the window.
    assert!(grants.windows(2).all(|w| w[1] - w[0] >= 100), "{grants:?}");
    assert!(grants[3] - grants[0] >= 1_500, "{grants:?}");
    let state = store.budget(LedgerOp::Read, &r, now()).await.unwrap();
    assert_eq!(state.snapshot.requests_made, 4);
    // A 429 parks everyone until Retry-After plus the margin.
    let parked = store
        .budget(
            LedgerOp::RateLimited {
                retry_after_ms: 300,
            },
            &r,
            now(),
        )
        .await
        .unwrap();
    let (until, reason) = parked.parked.unwrap();
    assert_eq!(reason, ParkReason::RateLimited);
    assert!((390..=410).contains(&(until - parked.now_ms)), "{parked:?}");
    let refused = take(&store).await;
    assert!(!refused.granted);
    assert_eq!(refused.retry_at_ms, Some(until));
    // The server's word lowers the limit.
    let observed = store
        .budget(
            LedgerOp::Observe {
                limit: Some(2),
                remaining: None,
            },
            &r,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(observed.snapshot.limit, 2);
}

/// A process whose clock ran an hour ahead took two slots; one on the right clock is not
/// held back until that hour comes round. (PostgreSQL decides on the server's clock, so there
/// the two takes are simply recent ones; the case holds on every backend.)
pub(crate) async fn a_send_stamped_ahead_of_the_clock_is_clamped_not_waited_for(store: Store) {
    let r = ledger_rules(30, 60_000, 100);
    let now = crate::clock::unix_ms_now;
    let hour = 3_600_000;
    let mut ahead = 0;
    let mut offset = 0;
    while ahead < 2 {
        let out = store
            .budget(LedgerOp::Take { most: 1 }, &r, now() + hour + offset)
            .await
            .unwrap();
        if out.granted {
            ahead += 1;
        } else {
            // PostgreSQL's clock: the spacing is real time there.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        offset += r.min_spacing_ms;
    }
    // On the right clock: granted at once, or after no more than the spacing.
    let mut waited = 0;
    loop {
        let out = store
            .budget(LedgerOp::Take { most: 1 }, &r, now())
            .await
            .unwrap();
        if out.granted {
            break;
        }
        let wait = out.retry_at_ms.unwrap() - out.now_ms;
        assert!(wait <= r.min_spacing_ms, "held back {wait} ms: {out:?}");
        waited += 1;
        assert!(waited < 5, "{out:?}");
        tokio::time::sleep(std::time::Duration::from_millis(wait.max(1) as u64)).await;
    }
    let read = store.budget(LedgerOp::Read, &r, now()).await.unwrap();
    assert_eq!(read.snapshot.used_in_window, 3);
    assert_eq!(read.snapshot.requests_made, 3);
}

/// A block of slots is one send per slot in the window, whoever counts it next: the block's
/// extra slots hold back the other processes exactly as that many single takes would.
pub(crate) async fn a_block_of_slots_counts_each_of_them(store: Store) {
    let r = ledger_rules(10, 60_000, 0);
    let now = crate::clock::unix_ms_now;
    let block = store
        .budget(LedgerOp::Take { most: 4 }, &r, now())
        .await
        .unwrap();
    assert!(block.granted);
    assert_eq!(block.extra, 3);
    let read = store.budget(LedgerOp::Read, &r, now()).await.unwrap();
    assert_eq!(read.snapshot.used_in_window, 4);
    assert_eq!(read.snapshot.requests_made, 4);
    // Extra slots stop at half the limit (5); single slots fill the rest, then none.
    let second = store
        .budget(LedgerOp::Take { most: 4 }, &r, now())
        .await
        .unwrap();
    assert_eq!((second.granted, second.extra), (true, 0));
    for _ in 0..5 {
        let single = store
            .budget(LedgerOp::Take { most: 4 }, &r, now())
            .await
            .unwrap();
        assert_eq!((single.granted, single.extra), (true, 0), "{single:?}");
    }
    let full = store
        .budget(LedgerOp::Take { most: 4 }, &r, now())
        .await
        .unwrap();
    assert!(!full.granted, "{full:?}");
    assert_eq!(full.snapshot.used_in_window, 10);
    // One request of the block never left: one send is forgotten, not the block.
    let unsent = store
        .budget(
            LedgerOp::Unsent {
                sent_at_ms: block.now_ms,
            },
            &r,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(unsent.snapshot.used_in_window, 9);
}

pub(crate) async fn a_click_claims_the_next_slot_ahead_of_every_background_take(store: Store) {
    // Real time: a shared database decides on its own clock.
    let r = ledger_rules(100, 60_000, 300);
    let now = crate::clock::unix_ms_now;
    let op = |op: LedgerOp| {
        let store = store.clone();
        async move { store.budget(op, &r, now()).await.unwrap() }
    };
    assert!(op(LedgerOp::Take { most: 1 }).await.granted);
    // The click must wait for the spacing: it claims the slot.
    let claimed = op(LedgerOp::TakeUrgent).await;
    assert!(!claimed.granted);
    let slot = claimed.retry_at_ms.unwrap();
    let wait = slot - claimed.now_ms;
    assert!((1..=300).contains(&wait), "{claimed:?}");
    tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 20)).await;
    // The slot is open, but a background take (any process: the claim is in the store) is
    // refused while the click's claim holds.
    let background = op(LedgerOp::Take { most: 1 }).await;
    assert!(!background.granted, "{background:?}");
    assert!(background.retry_at_ms.unwrap() > background.now_ms);
    let click = op(LedgerOp::TakeUrgent).await;
    assert!(click.granted, "{click:?}");
    // The claim went with the click's request; the spacing holds for the next one.
    let next = op(LedgerOp::Take { most: 1 }).await;
    assert!(!next.granted);
    tokio::time::sleep(std::time::Duration::from_millis(
        (next.retry_at_ms.unwrap() - next.now_ms).max(1) as u64 + 20,
    ))
    .await;
    assert!(op(LedgerOp::Take { most: 1 }).await.granted);
    assert_eq!(op(LedgerOp::Read).await.snapshot.requests_made, 3);
}

pub(crate) async fn the_upstream_state_and_walk_cap_are_shared_and_unsent_requests_cost_nothing(
    store: Store,
) {
    use crate::ledger::UpstreamState;
    let r = LedgerRules {
        requests: 100,
        window_ms: 60_000,
        min_spacing_ms: 0,
        retry_after_margin_ms: 100,
        outage_pause_min_ms: 60_000,
        outage_pause_max_ms: 60_000,
        max_park_ms: 900_000,
        probe_hold_ms: 60_000,
    };
    let now = crate::clock::unix_ms_now;
    let op = |op: LedgerOp| {
        let store = store.clone();
        async move { store.budget(op, &r, now()).await.unwrap() }
    };
    // A refused connect spends nothing: its send leaves the window and the count.
    let sent = op(LedgerOp::Take { most: 1 }).await;
    assert!(sent.granted);
    let unsent = op(LedgerOp::Unsent {
        sent_at_ms: sent.now_ms,
    })
    .await;
    assert_eq!(unsent.snapshot.requests_made, 0);
    assert_eq!(op(LedgerOp::Read).await.snapshot.used_in_window, 0);
    // AniList's word is kept word for word, for every process reading the store.
    let sentence = "The AniList API has been temporarily disabled due to severe stability issues.";
    let down = op(LedgerOp::Down {
        state: UpstreamState::Refused,
        message: sentence.to_string(),
    })
    .await;
    assert!(down.parked.is_some());
    let read = op(LedgerOp::Read).await;
    assert_eq!(read.upstream.state, UpstreamState::Refused);
    assert_eq!(read.upstream.message.as_deref(), Some(sentence));
    assert_eq!(read.upstream.since_ms, Some(down.now_ms));
    assert!(
        !op(LedgerOp::Take { most: 1 }).await.granted,
        "parked until the probe"
    );
    // An answer brings AniList back for everyone.
    let up = op(LedgerOp::Observe {
        limit: None,
        remaining: None,
    })
    .await;
    assert_eq!(up.upstream.state, UpstreamState::Ok);
    assert_eq!(up.parked, None);
    assert!(op(LedgerOp::Take { most: 1 }).await.granted);
    // A deep query's failure lowers the walk for everyone, in the store, until its time (a
    // short one: PostgreSQL decides on its own clock).
    let lowered = op(LedgerOp::LowerWalk {
        levels: 1,
        for_ms: 400,
    })
    .await;
    let cap = lowered.walk_cap.expect("a walk cap");
    assert_eq!(cap.levels, 1);
    assert_eq!(cap.until_ms, lowered.now_ms + 400);
    let take = op(LedgerOp::Take { most: 1 }).await;
    assert!(take.granted);
    assert_eq!(take.walk_cap, Some(cap), "every take carries it");
    let left = (cap.until_ms - take.now_ms).max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(left + 50)).await;
    assert_eq!(op(LedgerOp::Read).await.walk_cap, None, "it runs out");
}

pub(crate) async fn live_processes_are_listed_and_stale_ones_are_not(store: Store) {
    let card = |id: &str, at: i64| ProcessInfo {
        id: id.to_string(),
        host: "host-a".into(),
        pid: 42,
        role: ProcessRole::Worker,
        started_at_ms: 1_000,
        heartbeat_at_ms: at,
        api_url: None,
        queue: None,
    };
    store.heartbeat(&card("a", 10_000)).await.unwrap();
    store.heartbeat(&card("b", 2_000)).await.unwrap();
    let mut served = card("a", 11_000);
    served.api_url = Some("http://127.0.0.1:7878".into());
    served.role = ProcessRole::Server;
    store.heartbeat(&served).await.unwrap();
    let live = store.processes(5_000).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].heartbeat_at_ms, 11_000);
    assert_eq!(live[0].api_url.as_deref(), Some("http://127.0.0.1:7878"));
    assert_eq!(live[0].role, ProcessRole::Server);
    store.retire("a").await.unwrap();
    assert!(
        store
            .processes(0)
            .await
            .unwrap()
            .iter()
            .all(|p| p.id != "a")
    );
}

pub(crate) async fn overlapping_imports_share_items_nothing_across_imports(store: Store) {
    // Two imports of the same franchise: each has its own items; an item settled in one is
    // seen as stored-since-queued in the other once the anime lands.
    flush(&store, &batch(vec![anime(1, &[("SEQUEL", 2, "ANIME")])])).await;
    let (a, qa) = import(&store, 1, &ImportOptions::default()).await;
    let (b, qb) = import(&store, 1, &ImportOptions::default()).await;
    assert_eq!((qa.len(), qb.len()), (1, 1));
    commit_flush(
        &store,
        &FlushBatch {
            fetched: vec![anime(2, &[("PREQUEL", 1, "ANIME")])],
            items: vec![done(a, 2)],
            ..FlushBatch::default()
        },
        0,
        9_000,
    )
    .await
    .unwrap();
    let t: HashMap<_, _> = store.triage(&[(a, id(2)), (b, id(2))]).await.unwrap();
    assert_eq!(t[&(a, id(2))].state, ItemState::Done);
    assert!(t[&(b, id(2))].stored_since_queued);
}

/// PostgreSQL announces each committed flush's rewrites (the anime and their relations' far
/// ends) to every process's feed, and never a rolled-back one's; SQLite has no feed, since
/// only its queue's owner writes anime and caches them.
pub(crate) async fn rewrites_are_announced_when_committed_and_never_when_rolled_back(store: Store) {
    let feed = store.rewrite_feed().await.unwrap();
    let on_postgres = store.location().starts_with("postgres");
    assert_eq!(feed.is_some(), on_postgres, "{}", store.location());
    let Some(mut feed) = feed else { return };

    let mut rolled_back = store.begin().await.unwrap();
    rolled_back
        .upsert_anime(&[anime(1, &[("SEQUEL", 2, "ANIME")])], 1_000)
        .await
        .unwrap();
    drop(rolled_back);
    flush(&store, &batch(vec![anime(3, &[("SEQUEL", 4, "ANIME")])])).await;
    let heard = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
        .await
        .expect("the commit is heard");
    assert_eq!(
        heard,
        Some(vec![id(3), id(4)]),
        "only the committed rewrite"
    );

    // Closing the store ends a waiting feed (which lets go of its connection, so the close
    // can finish).
    let waiting = tokio::spawn(async move { feed.next().await });
    store.close().await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the feed ends with its store")
        .unwrap();
    assert_eq!(ended, None);
}

/// Turns every case above into a `#[tokio::test]` for one backend. `$make` is an async fn
/// returning `(guard, Store)`; the guard cleans up when dropped.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_suite!(@cases $make,
            forward_edges_are_observed_and_inverses_derived,
            an_observed_edge_replaces_a_derived_one_and_never_the_reverse,
            the_same_batch_twice_changes_nothing_and_dropped_edges_go,
            the_franchise_query_follows_only_followed_types_and_survives_cycles,
            the_streamed_franchise_is_the_members_then_their_relations,
            an_import_of_a_fresh_franchise_walks_the_store_and_queues_nothing,
            the_queued_levels_count_each_depth_waiting_once,
            failed_items_carry_their_reason_and_a_redelivered_job_changes_nothing,
            requeue_moves_only_items_still_queued_at_their_round,
            triage_sees_anime_stored_or_missing_since_the_item_was_queued,
            cancel_drops_queued_items_and_retry_queues_failed_ones_again,
            hand_offs_record_work_for_the_queue_owner,
            imports_filter_by_state_newest_first,
            the_budget_ledger_keeps_the_window_the_spacing_and_the_park,
            a_send_stamped_ahead_of_the_clock_is_clamped_not_waited_for,
            a_block_of_slots_counts_each_of_them,
            a_click_claims_the_next_slot_ahead_of_every_background_take,
            the_upstream_state_and_walk_cap_are_shared_and_unsent_requests_cost_nothing,
            live_processes_are_listed_and_stale_ones_are_not,
            overlapping_imports_share_items_nothing_across_imports,
            rewrites_are_announced_when_committed_and_never_when_rolled_back
        );
    };
    (@cases $make:path, $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((_guard, store)) = $make().await else { return };
                crate::store::conformance::$case(store).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;

/// The embedded backend.
mod sqlite {
    async fn make() -> Option<(tempfile::TempDir, crate::store::Store)> {
        Some(crate::store::testing::sqlite_store().await)
    }

    super::conformance_suite!(make);
}

/// The scale-out backend, on the server `TEST_DATABASE_URL` names.
mod postgres {
    async fn make() -> Option<(crate::store::testing::PgDatabase, crate::store::Store)> {
        Some(crate::store::testing::postgres_store().await)
    }

    super::conformance_suite!(make);
}
