//! Variant (c): `franchise` itself, through the `Importer` library API, with its default
//! settings on a fresh data directory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_anilist::FakeAniList;
use franchise::{AnimeId, ImportFilter, ImportOptions, Importer, Settings, SettingsBuilder};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::report::{EtaSample, Measured};
use crate::scenario::TimeScale;

/// Default settings (budget 30/min, 500 ms spacing, 100 workers) on `dir`, talking to `url`.
/// Under `--time-scale K` the budget is 30·K a minute and the spacing 500/K ms, so it keeps
/// pace with the sped-up fake (its own window stays 60 s: smoke runs only).
pub fn default_settings(dir: &Path, url: String, scale: TimeScale) -> anyhow::Result<Settings> {
    default_builder(dir, url, scale)
        .build()
        .context("loading franchise settings")
}

/// `default_settings` as a builder, for modes that change more.
pub fn default_builder(dir: &Path, url: String, scale: TimeScale) -> SettingsBuilder {
    let builder = Settings::builder().data_dir(dir).anilist_url(url);
    if scale.is_real() {
        return builder;
    }
    let shipped = Settings::default();
    let budget = (f64::from(shipped.budget_per_minute()) * scale.0).round() as i64;
    // The shipped spacing is 500 ms.
    builder
        .budget_per_minute(budget.clamp(1, 1_000_000))
        .min_spacing_ms((500.0 / scale.0) as i64)
}

/// A read-only look at an importer's SQLite file.
pub async fn store_pool(importer: &Importer) -> anyhow::Result<SqlitePool> {
    let path = importer.settings().data_dir().join("franchise.sqlite");
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .context("opening the store to read it")
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
    // What `status` estimates, every 100 ms, beside the import.
    let sampling = importer.clone();
    let started = Instant::now();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            if let Ok(status) = sampling.status(&ImportFilter::all()).await
                && let Some(import) = status.imports.first()
                && let Some(eta_secs) = import.eta_secs
            {
                samples.push(EtaSample {
                    at: started.elapsed(),
                    eta_secs,
                    at_least_secs: import.eta_at_least_secs,
                });
            }
            tokio::select! {
                _ = &mut stopped => return samples,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    let timed = timed_import(&importer, root, Duration::from_secs(3600)).await;
    let _ = stop.send(());
    let samples = sampler.await.unwrap_or_default();
    let (wall, stored) = timed?;
    let mut measured = Measured::from_fake(wall, stored, fake);
    measured.eta = samples;
    Ok(measured)
}

/// Imports `root` on a started importer and waits until its last item is committed: the wall
/// time from the import call, and the anime rows stored then. Stops the importer.
pub async fn timed_import(
    importer: &Importer,
    root: i32,
    limit: Duration,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let import_id = importer
        .import(anime_id(root)?, &ImportOptions::default())
        .await?;
    let pool = store_pool(importer).await?;
    let finished = wait_finished(&pool, import_id, Duration::from_millis(5), limit).await;
    let wall = started.elapsed();
    let stored = count_anime(&pool).await;
    pool.close().await;
    importer.stop().await;
    finished?;
    Ok((wall, stored?))
}
