//! Variant (c): `franchise` itself, through the `Importer` library API, with its default
//! settings on a fresh data directory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_anilist::FakeAniList;
use franchise::anime::AnimeId;
use franchise::config::{Overrides, Settings};
use franchise::{ImportOptions, Importer};
use sqlx::SqlitePool;

use crate::report::Measured;
use crate::scenario::TimeScale;

/// Default settings (budget 30/min, 500 ms spacing, 100 workers) on `dir`, talking to `url`.
/// Under `--time-scale K` the budget is 30·K a minute and the spacing 500/K ms, so it keeps
/// pace with the sped-up fake (its own window stays 60 s: smoke runs only).
pub fn default_settings(dir: &Path, url: String, scale: TimeScale) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data_dir: Some(dir.to_path_buf()),
        anilist_url: Some(url),
        ..Overrides::default()
    };
    let mut settings = Settings::load(None, &overrides).context("loading franchise settings")?;
    if !scale.is_real() {
        let budget = (settings.anilist.budget_per_minute as f64 * scale.0).round() as i64;
        settings.anilist.budget_per_minute = budget.clamp(1, 1_000_000);
        settings.anilist.min_spacing_ms = (settings.anilist.min_spacing_ms as f64 / scale.0) as u64;
    }
    Ok(settings)
}

pub fn anime_id(raw: i32) -> anyhow::Result<AnimeId> {
    AnimeId::new(i64::from(raw)).with_context(|| format!("{raw} is not an AniList id"))
}

/// Waits until the import's last item is committed (the flush that settles it also sets
/// `finished_at`). Polls one indexed row, cheap next to the pipeline's own writes.
pub async fn wait_finished(
    pool: &SqlitePool,
    import_id: i64,
    poll: Duration,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let finished: Option<i64> =
            sqlx::query_scalar("SELECT finished_at FROM import WHERE id = ?")
                .bind(import_id)
                .fetch_one(pool)
                .await
                .context("reading import progress")?;
        if finished.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("import {import_id} did not finish within {limit:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Anime rows in franchise's store.
pub async fn count_anime(pool: &SqlitePool) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime")
        .fetch_one(pool)
        .await
        .context("counting anime")?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub async fn run(fake: &FakeAniList, root: i32, scale: TimeScale) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let settings = default_settings(dir.path(), fake.url(), scale)?;
    let importer = Importer::open(settings).await?;
    importer.start().await?;
    let started = Instant::now();
    let import_id = importer
        .import(anime_id(root)?, &ImportOptions::default())
        .await?;
    let finished = wait_finished(
        importer.store().pool(),
        import_id,
        Duration::from_millis(5),
        Duration::from_secs(3600),
    )
    .await;
    let wall = started.elapsed();
    let stored = count_anime(importer.store().pool()).await;
    importer.stop().await;
    finished?;
    Ok(Measured::from_fake(wall, stored?, fake))
}
