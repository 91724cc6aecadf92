//! Damaged or foreign data files, table-driven: a corrupt or truncated queue file, a corrupt
//! or truncated SQLite store, a store from a newer franchise, an unwritable data dir. Each is
//! refused with a message that says what to do and a non-zero exit, and no file is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::process::{self, run};
use fake_anilist::{FakeAniList, FakeConfig, RateModel, World};

/// Runs the binary as the other CLI tests do (clean FRANCHISE_* environment, fast heartbeat).
async fn franchise(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    run(
        process::franchise(data_dir, url),
        args,
        Duration::from_secs(120),
    )
    .await
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file in the data dir with its bytes, to prove a refused command changed nothing.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A data dir holding one finished import of a small franchise.
async fn imported(fake: &FakeAniList) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = fake.world().franchises()[0].root.to_string();
    let url = fake.url();
    let out = franchise(dir.path(), &url, &["import", &root, "--wait"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

type Damage = fn(&Path);

fn garbage(path: &Path) {
    std::fs::write(path, vec![0x5a; 8192]).unwrap();
}

fn truncate_half(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

fn truncate_to_100_bytes(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..100]).unwrap();
}

fn from_the_future(path: &Path) {
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute(\"INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (29991231000000, 'future', 1, x'00', 0)\"); \
             c.commit()",
        )
        .arg(path)
        .status();
    if status.map(|s| s.success()).unwrap_or(false) {
        return;
    }
    // No python3 with sqlite3 here: do it through sqlx.
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (29991231000000, 'future', 1, x'00', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
}

#[tokio::test]
async fn damaged_files_are_refused_plainly_and_left_untouched() {
    let fake = FakeAniList::start(FakeConfig {
        world: World::single_franchise(8, 41),
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    // (file to damage, how, a command, words the message must contain)
    let cases: Vec<(&str, Damage, &[&str], &[&str])> = vec![
        (
            "queue.redb",
            garbage,
            &["import", "1"],
            &["queue.redb", "damaged", "Move it aside"],
        ),
        (
            "queue.redb",
            truncate_half,
            &["work", "--until-idle"],
            &["queue.redb", "damaged", "Move it aside"],
        ),
        // Cut inside redb's own header: damaged too, never "check the folder is writable".
        (
            "queue.redb",
            truncate_to_100_bytes,
            &["work", "--until-idle"],
            &["queue.redb", "damaged", "Move it aside"],
        ),
        (
            "franchise.sqlite",
            garbage,
            &["status"],
            &["franchise.sqlite", "move it aside"],
        ),
        (
            "franchise.sqlite",
            garbage,
            &["import", "1"],
            &["franchise.sqlite"],
        ),
        (
            "franchise.sqlite",
            truncate_half,
            &["show", "1"],
            &["franchise.sqlite"],
        ),
        (
            "franchise.sqlite",
            truncate_half,
            &["show", "1", "--json"],
            &["franchise.sqlite"],
        ),
        (
            "franchise.sqlite",
            from_the_future,
            &["status"],
            &["newer franchise", "29991231000000"],
        ),
        (
            "franchise.sqlite",
            from_the_future,
            &["import", "1", "--wait"],
            &["newer franchise"],
        ),
    ];
    for (file, damage, args, words) in cases {
        let dir = imported(&fake).await;
        damage(&dir.path().join(file));
        let before = contents(dir.path());
        let out = franchise(dir.path(), &fake.url(), args).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{file} {args:?} succeeded");
        assert!(!err.contains("panicked"), "{err}");
        for word in words {
            assert!(
                err.contains(word),
                "{file} {args:?}: {err:?} lacks {word:?}"
            );
        }
        // The damaged file and every other file are exactly as they were. (SQLite may leave
        // an empty write-ahead log or shared-memory file beside a database it opened.)
        let after: Vec<_> = contents(dir.path())
            .into_iter()
            .filter(|(p, _)| {
                let name = p.to_string_lossy();
                !(name.ends_with("-wal") || name.ends_with("-shm"))
                    || before.iter().any(|(q, _)| q == p)
            })
            .collect();
        let names = |c: &[(PathBuf, Vec<u8>)]| c.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(names(&after), names(&before), "{file} {args:?}");
        for ((p, a), (_, b)) in after.iter().zip(&before) {
            if p.extension().is_some_and(|e| e == "redb" || e == "pid") && !p.ends_with(file) {
                continue; // a healthy queue file may record a refused open's bookkeeping
            }
            assert!(a == b, "{} changed after {file} {args:?}", p.display());
        }
    }
}

#[tokio::test]
async fn a_damaged_queue_moved_aside_is_rebuilt_from_the_store() {
    let fake = FakeAniList::start(FakeConfig {
        world: World::single_franchise(30, 42),
        rate: RateModel::disabled(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = fake.world().franchises()[0].root.to_string();
    let (path, url) = (dir.path().to_path_buf(), fake.url());
    // Record the import but run nothing; then the queue file is destroyed.
    let out = franchise(&path, &url, &["import", &root]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    garbage(&path.join("queue.redb"));
    std::fs::rename(path.join("queue.redb"), path.join("queue.redb.broken")).unwrap();
    // As the error message advises: a fresh queue is made and the import re-queued from SQL.
    let out = franchise(
        &path,
        &url,
        &["work", "--until-idle", "--report-every", "0"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let settings = franchise::Settings::builder()
        .data_dir(&path)
        .build()
        .unwrap();
    let importer = franchise::Importer::builder(settings)
        .read_only()
        .open()
        .await
        .unwrap();
    let progress = importer
        .imports(&franchise::ImportFilter::all())
        .await
        .unwrap();
    importer.close().await;
    assert_eq!(progress.len(), 1);
    assert_eq!((progress[0].done, progress[0].queued), (30, 0));
}

#[tokio::test]
async fn an_unusable_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let data_dir = file.join("data");
    let out = franchise(&data_dir, "http://127.0.0.1:9/", &["import", "1"]).await;
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("not-a-dir"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
