//! What only the SQLite backend has: its pragmas, its file (a newer schema, a damaged file, a
//! folder that cannot be made), reading a read-only store, and processes opening a fresh
//! store at once.

use std::sync::Arc;
use std::time::Duration;

use super::{MIGRATOR, SqliteStore};
use crate::store::{Store, StoreError};
use crate::test_support::anime;

#[tokio::test]
async fn runs_in_wal_mode_with_normal_sync_and_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("franchise.sqlite"))
        .await
        .unwrap();
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
async fn a_store_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let handle = Store::new(Arc::new(store.clone()));
    crate::producer::commit_flush(
        &handle,
        &crate::producer::FlushBatch {
            fetched: vec![anime(1, &[])],
            ..Default::default()
        },
        0,
        1,
    )
    .await
    .unwrap();
    handle.close().await;
    for err in [
        SqliteStore::open(&path).await.unwrap_err(),
        SqliteStore::open_for_reading(&path).await.unwrap_err(),
    ] {
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
    }
    // Nothing was lost: the data is still there for the newer version.
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
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
    let garbage = b"this is not a database, just 64 bytes of text padding it out......";
    std::fs::write(&path, garbage).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("move it aside"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "left as it was");

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = SqliteStore::open(&blocker.join("franchise.sqlite"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[tokio::test]
async fn a_read_only_store_opens_for_reading_and_refuses_writes_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    store.pool().close().await;
    // Opened with SQLite's own read-only flag (what a read-only file or folder forces).
    let options = super::base_options(&path).read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let budget_pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(super::base_options(&super::budget_path(&path)).read_only(true))
        .await
        .unwrap();
    let read_only = SqliteStore {
        writer: pool.clone(),
        pool,
        budget_pool,
        location: path.display().to_string(),
        access: crate::store::sql::Access::ReadOnly,
        push: (),
    };
    read_only.check_schema(&path).await.unwrap();
    let err = read_only.probe_write().await.unwrap_err();
    assert_eq!(err.failure(), crate::store::Failure::ReadOnly, "{err}");
    let handle = Store::new(Arc::new(read_only));
    let err = handle.begin().await.err().unwrap();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(
        handle
            .imports(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn processes_opening_a_fresh_store_at_once_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh").join("franchise.sqlite");
    let opens = (0..8).map(|_| {
        let path = path.clone();
        tokio::spawn(async move { SqliteStore::open(&path).await })
    });
    for open in futures::future::join_all(opens).await {
        let store = open.unwrap().unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(applied as usize, MIGRATOR.iter().count());
        tokio::time::timeout(Duration::from_secs(5), store.pool().close())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn this_process_writes_through_one_connection_in_turn() {
    // A write issued while a flush's transaction is open waits for that transaction in the
    // writer pool's queue (never on a second connection, which would sleep in SQLite's busy
    // handler and stall the flusher after it), and lands once it commits.
    use crate::store::{ProcessInfo, ProcessRole, StoreDriver};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("franchise.sqlite"))
        .await
        .unwrap();
    assert_eq!(store.writer.options().get_max_connections(), 1);
    assert_eq!(store.budget_pool.options().get_max_connections(), 1);
    let mut tx = store.begin().await.unwrap();
    tx.upsert_anime(&[anime(1, &[])], 1_000).await.unwrap();
    let card = ProcessInfo {
        id: "worker-a".into(),
        host: "host-a".into(),
        pid: 42,
        role: ProcessRole::Worker,
        started_at_ms: 1_000,
        heartbeat_at_ms: 2_000,
        api_url: None,
        queue: None,
    };
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.heartbeat(&card).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(
        !writing.is_finished(),
        "the heartbeat waits for the open transaction"
    );
    assert_eq!(
        store.writer.size(),
        1,
        "no second writer connection was opened"
    );
    tx.commit().await.unwrap();
    writing.await.unwrap().unwrap();
    assert_eq!(store.processes(0).await.unwrap().len(), 1);
    assert!(
        store
            .anime(crate::anime::AnimeId::new(1).unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_answer_that_changes_nothing_does_not_wait_for_the_budget_lock() {
    use crate::ledger::LedgerOp;
    use crate::store::StoreDriver;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    let rules = budget_rules(60_000);
    let now = 1_800_000_000_000;
    assert!(
        store
            .budget(LedgerOp::Take { most: 1 }, &rules, now)
            .await
            .unwrap()
            .granted
    );
    // Another process holds the budget's write lock (its own take, say).
    let other = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(super::base_options(&super::budget_path(&path)))
        .await
        .unwrap();
    let mut held = other.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *held)
        .await
        .unwrap();
    // An answer without rate-limit headers while AniList is up changes nothing: it is decided
    // from a read, well within the busy timeout (10 s) that the lock would have cost.
    let plain = LedgerOp::Observe {
        limit: None,
        remaining: None,
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        store.budget(plain, &rules, now + 10),
    )
    .await
    .expect("a no-op answer does not wait for the lock")
    .unwrap();
    assert_eq!(outcome.snapshot.used_in_window, 1);
    assert_eq!(outcome.snapshot.requests_made, 1);
    // One that tells something (the server's remaining count) waits for the lock, and lands.
    let told = tokio::spawn({
        let store = store.clone();
        async move {
            let op = LedgerOp::Observe {
                limit: None,
                remaining: Some(7),
            };
            store.budget(op, &rules, now + 20).await
        }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!told.is_finished(), "a change waits for the lock");
    sqlx::query("COMMIT").execute(&mut *held).await.unwrap();
    drop(held);
    told.await.unwrap().unwrap();
    let read = store
        .budget(LedgerOp::Read, &rules, now + 30)
        .await
        .unwrap();
    assert_eq!(read.snapshot.server_remaining, Some(7));
    other.close().await;
}

#[tokio::test]
async fn sends_older_than_the_window_are_swept_once_a_window_has_passed_them() {
    use crate::ledger::LedgerOp;
    use crate::store::StoreDriver;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    let rules = budget_rules(1_000);
    let kept = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM budget_send")
            .fetch_one(&store.budget_pool)
            .await
            .unwrap()
    };
    let t = 1_800_000_000_000;
    let take = |now| store.budget(LedgerOp::Take { most: 1 }, &rules, now);
    assert!(take(t).await.unwrap().granted);
    // A window later the first send no longer counts, but it is kept: sweeping it now would
    // cost every take a DELETE.
    let later = take(t + 1_500).await.unwrap();
    assert_eq!(later.snapshot.used_in_window, 1);
    assert_eq!(kept().await, 2);
    // Once the oldest is a whole window past the window's start, all the old ones go.
    let swept = take(t + 2_600).await.unwrap();
    assert_eq!(swept.snapshot.used_in_window, 1);
    assert_eq!(kept().await, 1);
    // A read never writes.
    store
        .budget(LedgerOp::Read, &rules, t + 9_000)
        .await
        .unwrap();
    assert_eq!(kept().await, 1);
}

/// Budget rules for these cases: 30 requests per `window_ms`, no spacing.
fn budget_rules(window_ms: i64) -> crate::ledger::LedgerRules {
    crate::ledger::LedgerRules {
        requests: 30,
        window_ms,
        min_spacing_ms: 0,
        retry_after_margin_ms: 0,
        outage_pause_min_ms: 1_000,
        outage_pause_max_ms: 60_000,
        max_park_ms: 900_000,
        probe_hold_ms: 1_000,
    }
}

/// The migration that keeps `import_item` in discovery order: a store written before it keeps
/// every item, every field of it, and the (import, anime) key stays unique.
#[tokio::test]
async fn items_of_an_older_store_survive_the_move_to_discovery_order() {
    /// (anime, depth, state, reason, updated_at, round, fetches)
    type Item = (i64, i64, String, Option<String>, i64, i64, i64);
    const MOVE: i64 = 20261207000001;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("franchise.sqlite");
    // The store as the release before the move left it: every earlier migration, applied by
    // sqlx from copies of the very files (same checksums) so that the later open only adds
    // the move.
    let older = dir.path().join("older-migrations");
    std::fs::create_dir(&older).unwrap();
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&ours).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < MOVE {
            std::fs::copy(&file, older.join(&name)).unwrap();
        }
    }
    let pool = sqlx::SqlitePool::connect_with(super::base_options(&path).create_if_missing(true))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO import (id, root_id, max_depth, max_items, followed, force_refresh, \
         created_at) VALUES (7, 30, 5, 100, 'SEQUEL', 0, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let items: Vec<Item> = vec![
        (10, 1, "queued".into(), None, 100, 0, 2),
        (20, 1, "failed".into(), Some("gone".into()), 200, 1, 3),
        (30, 0, "done".into(), None, 300, 2, 1),
    ];
    for (anime, depth, state, reason, updated_at, round, fetches) in &items {
        sqlx::query(
            "INSERT INTO import_item (import_id, anime_id, depth, state, reason, updated_at, \
             round, fetches) VALUES (7, $1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(anime)
        .bind(depth)
        .bind(state)
        .bind(reason)
        .bind(updated_at)
        .bind(round)
        .bind(fetches)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    let moved: Vec<Item> = sqlx::query_as(
        "SELECT anime_id, depth, state, reason, updated_at, round, fetches FROM import_item \
         WHERE import_id = 7 ORDER BY anime_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(moved, items);
    let duplicate = sqlx::query(
        "INSERT INTO import_item (import_id, anime_id, depth, state, updated_at) \
         VALUES (7, 20, 3, 'queued', 400)",
    )
    .execute(store.pool())
    .await;
    assert!(
        duplicate.is_err(),
        "the (import, anime) key must stay unique"
    );

    // New items follow the order they came in, whatever their ids.
    for anime in [90, 40, 60] {
        sqlx::query(
            "INSERT INTO import_item (import_id, anime_id, depth, state, updated_at) \
             VALUES (7, $1, 2, 'queued', 500)",
        )
        .bind(anime)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let order: Vec<i64> =
        sqlx::query_scalar("SELECT anime_id FROM import_item WHERE depth = 2 ORDER BY rowid")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(order, [90, 40, 60]);
    // A flush finds an item through the key's index, not by scanning the import's queued ones.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN UPDATE import_item SET state = v.column3 \
         FROM (VALUES (7, 10, 'done')) AS v \
         WHERE import_item.import_id = v.column1 AND import_item.anime_id = v.column2 \
         AND import_item.state = 'queued'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|(.., step)| step.contains("(import_id=? AND anime_id=?)")),
        "plan: {plan:?}"
    );
}
