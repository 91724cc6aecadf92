//! The SQLite store on real files: production pragmas, upserts on the natural keys, observed
//! edges winning over derived ones, the franchise query, and refusing bad files plainly.

mod common;

use common::{anime, id, temp_store};
use franchise::anime::RelationType;
use franchise::producer::{ImportOptions, commit_batch, create_import};
use franchise::store::{FlushBatch, ItemOutcome, ItemResult, Store, StoreError, StoredRelation};
use sqlx::Row;

fn batch(fetched: Vec<franchise::anime::Anime>) -> FlushBatch {
    FlushBatch {
        fetched,
        ..FlushBatch::default()
    }
}

fn rel(r: &[StoredRelation]) -> Vec<(u32, u32, &str, bool)> {
    r.iter()
        .map(|r| {
            (
                r.from.get(),
                r.to.get(),
                r.relation_type.as_str(),
                r.derived,
            )
        })
        .collect()
}

#[tokio::test]
async fn runs_in_wal_mode_with_normal_sync_and_a_busy_timeout() {
    let (_dir, store) = temp_store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 1, "synchronous=NORMAL");
    assert!(busy >= 1000, "busy timeout {busy} ms");
}

#[tokio::test]
async fn forward_edges_are_stored_as_observed_and_inverses_derived() {
    let (_dir, store) = temp_store().await;
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
    commit_batch(&store, &batch(vec![a]), 0).await.unwrap();
    let stored = store.anime(id(1)).await.unwrap().unwrap();
    assert_eq!(
        rel(&stored.relations),
        vec![
            (1, 2, "SEQUEL", false),
            (1, 3, "SIDE_STORY", false),
            (1, 4, "PARENT", false),
            (1, 5, "TIME_TRAVEL", false),
            (1, 900, "SOURCE", false),
        ]
    );
    assert_eq!(
        rel(&store.relations_from(&[id(2)]).await.unwrap()),
        vec![(2, 1, "PREQUEL", true)]
    );
    assert_eq!(
        rel(&store.relations_from(&[id(3)]).await.unwrap()),
        vec![(3, 1, "PARENT", true)]
    );
    // PARENT's inverse is ambiguous, an unknown type has none, and a manga gets no rows.
    assert!(
        store
            .relations_from(&[id(4), id(5), id(900)])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_observed_edge_replaces_a_derived_one_and_never_the_reverse() {
    let (_dir, store) = temp_store().await;
    commit_batch(&store, &batch(vec![anime(1, &[("SEQUEL", 2, "ANIME")])]), 0)
        .await
        .unwrap();
    assert_eq!(
        rel(&store.relations_from(&[id(2)]).await.unwrap()),
        vec![(2, 1, "PREQUEL", true)]
    );
    // AniList says something else from the other side: the observation wins.
    commit_batch(
        &store,
        &batch(vec![anime(2, &[("ALTERNATIVE", 1, "ANIME")])]),
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        rel(&store.relations_from(&[id(2)]).await.unwrap()),
        vec![(2, 1, "ALTERNATIVE", false)]
    );
    // Re-fetching 1 derives PREQUEL for 2→1 again, but must not overwrite the observed row.
    commit_batch(&store, &batch(vec![anime(1, &[("SEQUEL", 2, "ANIME")])]), 0)
        .await
        .unwrap();
    assert_eq!(
        rel(&store.relations_from(&[id(2)]).await.unwrap()),
        vec![(2, 1, "ALTERNATIVE", false)]
    );
    // Both ends in one batch: observed rows on both sides, no derived ones.
    commit_batch(
        &store,
        &batch(vec![
            anime(7, &[("SEQUEL", 8, "ANIME")]),
            anime(8, &[("PREQUEL", 7, "ANIME")]),
        ]),
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        rel(&store.relations_from(&[id(7), id(8)]).await.unwrap()),
        vec![(7, 8, "SEQUEL", false), (8, 7, "PREQUEL", false)]
    );
}

#[tokio::test]
async fn writing_the_same_batch_twice_changes_nothing_and_dropped_edges_go() {
    let (_dir, store) = temp_store().await;
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
    commit_batch(&store, &batch(world.clone()), 0)
        .await
        .unwrap();
    let snapshot = |store: Store| async move {
        sqlx::query(
            "SELECT anime_id, related_id, relation_type, derived FROM anime_relation ORDER BY 1, 2",
        )
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<i64, _>(0),
                r.get::<i64, _>(1),
                r.get::<String, _>(2),
                r.get::<i64, _>(3),
            )
        })
        .collect::<Vec<_>>()
    };
    let first = snapshot(store.clone()).await;
    commit_batch(&store, &batch(world), 0).await.unwrap();
    assert_eq!(snapshot(store.clone()).await, first);
    // (2,2) self-relation plus 1→2, 1→50, 1→900, 2→1, 2→3, 3→2 observed and 50→1 derived.
    assert_eq!(first.len(), 8, "{first:?}");
    let anime_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(anime_rows, 3);

    // AniList dropped 1's CHARACTER edge: the row and its derived inverse disappear.
    commit_batch(
        &store,
        &batch(vec![anime(
            1,
            &[("SEQUEL", 2, "ANIME"), ("SOURCE", 900, "MANGA")],
        )]),
        0,
    )
    .await
    .unwrap();
    assert!(store.relations_from(&[id(50)]).await.unwrap().is_empty());
    assert_eq!(rel(&store.relations_from(&[id(1)]).await.unwrap()).len(), 2);
}

#[tokio::test]
async fn the_franchise_query_follows_only_followed_types_and_survives_cycles() {
    let (_dir, store) = temp_store().await;
    commit_batch(
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
        0,
    )
    .await
    .unwrap();
    let members: Vec<u32> = store
        .franchise(id(1), &RelationType::FOLLOWED_BY_DEFAULT)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.get())
        .collect();
    assert_eq!(members, vec![1, 2, 3]);
    let with_character: Vec<u32> = store
        .franchise(id(1), &[RelationType::Character, RelationType::Sequel])
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.get())
        .collect();
    assert_eq!(with_character, vec![1, 2, 10, 11]);
    assert!(
        store
            .franchise(id(77), &RelationType::FOLLOWED_BY_DEFAULT)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_import_of_a_fresh_franchise_walks_the_store_and_queues_nothing() {
    let (_dir, store) = temp_store().await;
    commit_batch(
        &store,
        &batch(vec![
            anime(1, &[("SEQUEL", 2, "ANIME"), ("CHARACTER", 10, "ANIME")]),
            anime(2, &[("PREQUEL", 1, "ANIME"), ("SEQUEL", 3, "ANIME")]),
        ]),
        0,
    )
    .await
    .unwrap();
    // 3 is known only from 2's edge, never fetched: the walk must queue exactly it.
    let (import_id, to_fetch) = create_import(&store, id(1), &ImportOptions::default(), 0)
        .await
        .unwrap();
    assert_eq!(
        to_fetch
            .iter()
            .map(|q| (q.anime_id.get(), q.depth))
            .collect::<Vec<_>>(),
        vec![(3, 2)]
    );
    let progress = &store.import_progress(Some(import_id)).await.unwrap()[0];
    assert_eq!(
        (progress.discovered, progress.done, progress.queued),
        (3, 2, 1)
    );

    // The fetch of 3 lands: the import finishes; a second import costs nothing at all.
    let next = commit_batch(
        &store,
        &FlushBatch {
            fetched: vec![anime(3, &[("PREQUEL", 2, "ANIME")])],
            items: vec![ItemResult {
                import_id,
                anime_id: id(3),
                outcome: ItemOutcome::Done,
            }],
            ..FlushBatch::default()
        },
        0,
    )
    .await
    .unwrap();
    assert!(next.is_empty());
    let progress = &store.import_progress(Some(import_id)).await.unwrap()[0];
    assert!(progress.finished_at_ms.is_some());
    let (_, again) = create_import(&store, id(1), &ImportOptions::default(), 0)
        .await
        .unwrap();
    assert!(again.is_empty());

    // Force-refresh queues the root even though it is fresh; a depth cap of 1 stops at 2.
    let forced = ImportOptions {
        force_refresh: true,
        max_depth: 1,
        ..ImportOptions::default()
    };
    let (_, root_only) = create_import(&store, id(1), &forced, 0).await.unwrap();
    assert_eq!(root_only.len(), 1);
    let capped = ImportOptions {
        max_depth: 1,
        ..ImportOptions::default()
    };
    let (capped_id, none) = create_import(&store, id(1), &capped, 0).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(
        store.import_progress(Some(capped_id)).await.unwrap()[0].discovered,
        2
    );
}

#[tokio::test]
async fn failed_items_carry_their_reason_and_a_redelivered_job_changes_nothing() {
    let (_dir, store) = temp_store().await;
    let (import_id, _) = create_import(&store, id(5), &ImportOptions::default(), 0)
        .await
        .unwrap();
    let failed = FlushBatch {
        not_found: vec![id(5)],
        fetched: vec![],
        items: vec![ItemResult {
            import_id,
            anime_id: id(5),
            outcome: ItemOutcome::Failed("not found on AniList".into()),
        }],
    };
    commit_batch(&store, &failed, 0).await.unwrap();
    // A late duplicate that "succeeded" must not flip a finished item.
    let dup = FlushBatch {
        fetched: vec![anime(5, &[("SEQUEL", 6, "ANIME")])],
        items: vec![ItemResult {
            import_id,
            anime_id: id(5),
            outcome: ItemOutcome::Done,
        }],
        ..FlushBatch::default()
    };
    assert!(commit_batch(&store, &dup, 0).await.unwrap().is_empty());
    let p = &store.import_progress(Some(import_id)).await.unwrap()[0];
    assert_eq!((p.failed, p.done, p.queued), (1, 0, 0));
    assert_eq!(p.failures, vec![("not found on AniList".to_string(), 1)]);

    // AniList said 6 is missing: a new import within the TTL fails it without a fetch, and
    // the duplicate above that did return 5 made 5 known again.
    let gone = FlushBatch {
        not_found: vec![id(6)],
        ..FlushBatch::default()
    };
    commit_batch(&store, &gone, 0).await.unwrap();
    let (again, to_fetch) = create_import(&store, id(6), &ImportOptions::default(), 0)
        .await
        .unwrap();
    assert!(to_fetch.is_empty());
    let p = &store.import_progress(Some(again)).await.unwrap()[0];
    assert_eq!((p.failed, p.queued), (1, 0));
    let forced = ImportOptions {
        force_refresh: true,
        ..ImportOptions::default()
    };
    let (_, refetch) = create_import(&store, id(6), &forced, 0).await.unwrap();
    assert_eq!(refetch.len(), 1, "force-refresh asks AniList again");
}

#[tokio::test]
async fn a_store_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    let store = Store::open_sqlite(&path).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    commit_batch(&store, &batch(vec![anime(1, &[])]), 0)
        .await
        .unwrap();
    store.close().await;
    let err = Store::open_sqlite(&path).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                version: 29991231000000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer franchise"), "{err}");
    // Nothing was lost: the data is still there for the newer version.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_corrupt_or_unreachable_store_gets_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    std::fs::write(
        &path,
        b"this is not a database, just 64 bytes of text padding it out......",
    )
    .unwrap();
    let err = Store::open_sqlite(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("move it aside"), "{err}");

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Store::open_sqlite(&blocker.join("franchise.sqlite"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file"), "{err}");
}
