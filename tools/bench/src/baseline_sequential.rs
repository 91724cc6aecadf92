//! Baseline (a), the original app: a breadth-first walk, one `Media(id:)` request at a time,
//! each anime and each relation (twice: edge and inverse) written by its own autocommit INSERT.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use fake_anilist::FakeAniList;

use crate::naive::{NaiveClient, count_anime, insert_single_rows, open_db};
use crate::report::Measured;

pub async fn run(fake: &FakeAniList, root: i32) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let db = open_db(&dir.path().join("original.sqlite")).await?;
    let client = NaiveClient::new(fake.url())?;
    let started = Instant::now();
    let mut seen = HashSet::from([i64::from(root)]);
    let mut queue = VecDeque::from([i64::from(root)]);
    while let Some(id) = queue.pop_front() {
        let Some(anime) = client.fetch(id).await? else {
            continue;
        };
        insert_single_rows(&db, &anime).await?;
        for next in anime.followed() {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    let wall = started.elapsed();
    let stored = count_anime(&db).await?;
    db.close().await;
    Ok(Measured::from_fake(wall, stored, fake))
}
