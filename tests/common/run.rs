//! Running the pipeline in tests: settings on a temp dir sped up for tests, a fake AniList,
//! and waiting for an import to finish.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use fake_anilist::{FakeAniList, FakeConfig, Faults, Latency, RateModel, World};
use franchise::{AnimeId, ImportProgress, Importer, Settings, SettingsBuilder};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// Default settings on `dir` against `fake`, with the pace, heartbeat and retry delays sped
/// up for tests (the rolling window and everything else as shipped).
pub fn settings(dir: &Path, fake: &FakeAniList) -> Settings {
    builder(dir, fake).build().unwrap()
}

/// `settings` as a builder, for tests that change more.
pub fn builder(dir: &Path, fake: &FakeAniList) -> SettingsBuilder {
    builder_at(dir, &fake.url())
}

/// `builder` for an AniList at `url` (one that is not listening yet, say).
pub fn builder_at(dir: &Path, url: &str) -> SettingsBuilder {
    Settings::builder()
        .data_dir(dir)
        .anilist_url(url)
        .min_spacing_ms(20)
        .retry_delays_ms(20, 200)
        .heartbeat_ms(1000)
}

/// A read-only look at the importer's SQLite file, for checking rows exactly.
pub async fn pool(importer: &Importer) -> SqlitePool {
    let path = importer.settings().data_dir().join("franchise.sqlite");
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .unwrap()
}

/// AniList's degraded limits (30 per window behind headers saying 90, a burst limit of 6 per
/// 1/60 window) on a 6 s window, so the 20 ms test pace stays under the burst limit while
/// the client's budget (30 per minute) is the real one.
pub fn degraded() -> RateModel {
    RateModel::degraded().window(Duration::from_secs(6))
}

pub async fn fake(world: World, rate: RateModel, latency: Latency, faults: Faults) -> FakeAniList {
    FakeAniList::start(FakeConfig {
        world,
        rate,
        latency,
        faults,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

/// Waits until the import is finished (nothing queued) and returns its progress.
pub async fn wait_done(importer: &Importer, import_id: i64, limit: Duration) -> ImportProgress {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let p = importer.progress(import_id).await.unwrap();
        if p.finished_at_ms.is_some() {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} stuck: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn aid(raw: i32) -> AnimeId {
    AnimeId::new(i64::from(raw)).unwrap()
}

pub async fn anime_ids(importer: &Importer) -> BTreeSet<i64> {
    sqlx::query_scalar("SELECT id FROM anime")
        .fetch_all(&pool(importer).await)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// (anime, state, reason) of every item of an import.
pub async fn items(importer: &Importer, import_id: i64) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as(
        "SELECT anime_id, state, reason FROM import_item WHERE import_id = $1 ORDER BY anime_id",
    )
    .bind(import_id)
    .fetch_all(&pool(importer).await)
    .await
    .unwrap()
}
