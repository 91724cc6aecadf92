//! The library as a desktop app embeds it: open a data dir, start the workers, import a
//! franchise and show "Importing 3/10 related anime…" from the event stream, open the anime
//! the user clicked ahead of everything else, cancel an import, and close.
//!
//! It runs against a fake AniList started in this process, so it needs no network:
//!
//! ```sh
//! cargo run --example embed
//! ```

use std::time::Duration;

use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel, WorldSpec};
use franchise::{AnimeId, Event, ImportOptions, Importer, Order, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A world of 20 franchises and a 120-anime giant, answering in 100 ms.
    let world = WorldSpec::default()
        .seed(7)
        .franchises(20)
        .giant(120, 8)
        .clean()
        .build();
    let giant = world.giants().next().map(|g| g.root).ok_or("no giant")?;
    let other = world
        .franchises()
        .last()
        .map(|f| f.root)
        .ok_or("no franchise")?;
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(100), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await?;
    let data_dir = tempfile::tempdir()?;

    // The app's settings: its own data dir and (here) the fake. Nothing is read from the
    // environment unless the builder is asked to.
    let settings = Settings::builder()
        .data_dir(data_dir.path())
        .anilist_url(fake.url())
        .build()?;
    let importer = Importer::open(settings).await?;
    importer.start().await?;
    let mut events = importer.subscribe();

    let root = AnimeId::new(i64::from(giant))?;
    let import_id = importer.import(root, &ImportOptions::default()).await?;
    println!("import {import_id} of anime {root} started");

    let mut clicked = false;
    while let Some(event) = events.recv().await {
        match event {
            Event::Progress {
                import_id: id,
                done,
                discovered,
                ..
            } if id == import_id => {
                println!("Importing {done}/{discovered} related anime…");
                if done >= 10 && !clicked {
                    // The user clicks another anime: it is fetched ahead of the import.
                    clicked = true;
                    let anime = importer.open_anime(AnimeId::new(i64::from(other))?).await?;
                    println!(
                        "clicked {}: {} with {} relations",
                        anime.id,
                        anime.title.display().unwrap_or("(untitled)"),
                        anime.relations.len()
                    );
                }
            }
            Event::Finished {
                import_id: id,
                state,
                done,
                ..
            } if id == import_id => {
                println!("import {id} finished: {state}, {done} anime");
                break;
            }
            Event::BudgetParked { until_ms, reason } => {
                println!("waiting for AniList ({}) until {until_ms}", reason.as_str())
            }
            Event::Lagged { .. } => {
                // Missed some events: the store has the current state.
                let p = importer.progress(import_id).await?;
                println!("Importing {}/{} related anime…", p.done, p.discovered);
            }
            _ => {}
        }
    }

    // The franchise, read through the cache.
    if let Some(franchise) = importer.franchise(root).await? {
        println!(
            "franchise of {root}: {} anime, {} relations",
            franchise.anime.len(),
            franchise.relations.len()
        );
        // The order to watch it in: the main story as it aired, the rest after what it follows.
        let watch = franchise.in_order(Order::Watch);
        let main = watch.iter().filter(|w| w.main).count();
        println!(
            "watch order: {} entries, {main} of them main story",
            watch.len()
        );
    }

    // A second import, cancelled at once: its queued anime are never fetched.
    let second = importer
        .import(
            AnimeId::new(i64::from(other))?,
            &ImportOptions::default().with_force_refresh(true),
        )
        .await?;
    match importer.cancel(second).await {
        Ok(cancelled) => println!("import {second} {}", cancelled.state),
        // It could have finished already: a cancel then says so instead of pretending.
        Err(franchise::Error::AlreadyFinished { state, .. }) => {
            println!("import {second} had already finished ({state})");
        }
        Err(e) => return Err(e.into()),
    }

    let stats = importer.cache_stats();
    println!(
        "cache: {} franchise hits, {} misses",
        stats.franchise.hits, stats.franchise.misses
    );
    importer.close().await;
    Ok(())
}
