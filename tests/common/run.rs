//! Running the pipeline in tests: settings on a temp dir sped up for tests, a fake AniList,
//! and waiting for an import to finish.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use fake_anilist::{FakeAniList, FakeConfig, Faults, Latency, RateModel, World};
use franchise::Importer;
use franchise::anime::AnimeId;
use franchise::config::{Overrides, Settings};
use franchise::store::ImportProgress;

/// Default settings on `dir` against `fake`, with the pace, heartbeat and retry delays sped
/// up for tests (the rolling window and everything else as shipped).
pub fn settings(dir: &Path, fake: &FakeAniList) -> Settings {
    let overrides = Overrides {
        data_dir: Some(dir.to_path_buf()),
        anilist_url: Some(fake.url()),
        ..Overrides::default()
    };
    let mut s = Settings::load(None, &overrides).unwrap();
    s.anilist.min_spacing_ms = 20;
    s.anilist.retry_min_delay_ms = 20;
    s.anilist.retry_max_delay_ms = 200;
    s.queue.heartbeat_ms = 1000;
    s
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
        let p = importer
            .store()
            .import_progress(Some(import_id))
            .await
            .unwrap();
        if p[0].finished_at_ms.is_some() {
            return p[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} stuck: {:?}",
            p[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn aid(raw: i32) -> AnimeId {
    AnimeId::new(i64::from(raw)).unwrap()
}

pub async fn anime_ids(importer: &Importer) -> BTreeSet<i64> {
    sqlx::query_scalar("SELECT id FROM anime")
        .fetch_all(importer.store().pool())
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
    .fetch_all(importer.store().pool())
    .await
    .unwrap()
}
