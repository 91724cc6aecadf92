//! Baseline (b), the original app's next plan: walk level by level, fetch each level with
//! `buffer_unordered(3)` (still one request per anime), then write the level in one
//! transaction of multi-row INSERTs.

use std::collections::HashSet;
use std::time::Instant;

use fake_anilist::FakeAniList;
use futures::{StreamExt, TryStreamExt, stream};

use crate::naive::{NaiveClient, count_anime, insert_batch, open_db};
use crate::report::Measured;

/// Requests in flight at once, as the plan had it.
const IN_FLIGHT: usize = 3;

pub async fn run(fake: &FakeAniList, root: i32) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let db = open_db(&dir.path().join("planned.sqlite")).await?;
    let client = NaiveClient::new(fake.url())?;
    let started = Instant::now();
    let mut seen = HashSet::from([i64::from(root)]);
    let mut level = vec![i64::from(root)];
    while !level.is_empty() {
        let fetched: Vec<_> = stream::iter(level.iter().copied())
            .map(|id| {
                let client = client.clone();
                async move { client.fetch(id).await }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        let fetched: Vec<_> = fetched.into_iter().flatten().collect();
        insert_batch(&db, &fetched).await?;
        level = fetched
            .iter()
            .flat_map(|a| a.followed())
            .filter(|id| seen.insert(*id))
            .collect();
    }
    let wall = started.elapsed();
    let stored = count_anime(&db).await?;
    db.close().await;
    Ok(Measured::from_fake(wall, stored, fake))
}
