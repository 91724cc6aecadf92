//! Reading a stored 300-anime franchise back, as `franchise show` does: the recursive walk
//! (`Store::franchise` over the default followed types), then every relation out of it
//! (`Store::relations_from`), on a real SQLite file with the production pragmas.
//!
//! The store holds a fake-anilist world (seed 1): a 300-anime giant (a SEQUEL chain 12 deep
//! with side stories, movies and specials hanging off it, a MANGA source, CHARACTER/OTHER
//! links to other franchises) and 50 ordinary franchises around it, written through
//! `commit_fetched` 50 anime at a time, as the flusher writes them.
//!
//! Run: `cargo bench --bench franchise_query`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fake_anilist::{Entry, World, WorldSpec};
use franchise::bench::BenchStore as Store;
use franchise::{
    Anime, AnimeId, FuzzyDate, MediaKind, RelatedMedia, RelationEdge, RelationType, Title,
};
use tokio::runtime::Runtime;

const GIANT_SIZE: usize = 300;

fn id(raw: i32) -> AnimeId {
    AnimeId::new(i64::from(raw)).expect("valid AniList id")
}

fn title(t: &fake_anilist::world::Title) -> Title {
    Title {
        romaji: t.romaji.clone(),
        english: t.english.clone(),
        native: t.native.clone(),
    }
}

fn kind(entry: &Entry) -> MediaKind {
    MediaKind::parse(entry.media_type.as_deref().unwrap_or("ANIME"))
}

/// The record the upstream client would build from this entry's AniList answer.
fn to_anime(world: &World, e: &Entry) -> Anime {
    let relations = e
        .relations
        .iter()
        .map(|r| {
            let target = world.get(r.target).expect("edge to a known entry");
            RelationEdge {
                edge_id: Some(i64::from(r.edge_id)),
                relation: RelationType::parse(&r.relation_type),
                node: RelatedMedia {
                    id: id(target.id),
                    kind: kind(target),
                    format: target.format.clone(),
                    status: target.status.clone(),
                    title: title(&target.title),
                },
            }
        })
        .collect();
    Anime {
        id: id(e.id),
        id_mal: e.id_mal.map(i64::from),
        kind: kind(e),
        title: title(&e.title),
        format: e.format.clone(),
        status: e.status.clone(),
        episodes: e.episodes,
        season: e.season.clone(),
        season_year: e.season_year,
        start_date: FuzzyDate {
            year: e.start_date.year,
            month: e.start_date.month.and_then(|m| u8::try_from(m).ok()),
            day: e.start_date.day.and_then(|d| u8::try_from(d).ok()),
        },
        relations,
    }
}

fn franchise_query(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let world = WorldSpec::default()
        .seed(1)
        .franchises(50)
        .giant(GIANT_SIZE, 12)
        .clean()
        .build();
    let giant = world.giants().next().expect("the giant franchise");
    let root = id(giant.root);
    let anime: Vec<Anime> = world
        .entries()
        .filter(|e| kind(e) == MediaKind::Anime)
        .map(|e| to_anime(&world, e))
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(async {
        let store = Store::open(&dir.path().join("franchise.sqlite"))
            .await
            .expect("open store");
        for chunk in anime.chunks(50) {
            store.commit_fetched(chunk).await.expect("commit_fetched");
        }
        store
    });

    // Once outside the timing: the walk finds exactly the giant, and what it stands on.
    let (ids, relation_count, stored_relations) = rt.block_on(async {
        let found = store.franchise(root).await.expect("franchise");
        let ids: Vec<AnimeId> = found.iter().map(|a| a.id).collect();
        let members: BTreeSet<AnimeId> = giant.members.iter().map(|&m| id(m)).collect();
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), members);
        let relations = store.relations_from(&ids).await.expect("relations_from");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime_relation")
            .fetch_one(store.pool())
            .await
            .expect("count");
        (ids, relations.len(), stored)
    });
    eprintln!(
        "store: {} anime, {stored_relations} relation rows; franchise of {root}: {} anime, \
         {relation_count} relations out of it",
        anime.len(),
        ids.len()
    );

    let mut group = c.benchmark_group(format!("franchise/{GIANT_SIZE}"));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("franchise", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.franchise(root).await.expect("franchise")) })
    });
    group.bench_function("relations_from", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.relations_from(&ids).await.expect("relations_from")) })
    });
    group.bench_function("show", |b| {
        b.to_async(&rt).iter(|| async {
            let found = store.franchise(root).await.expect("franchise");
            let ids: Vec<AnimeId> = found.iter().map(|a| a.id).collect();
            black_box((
                found,
                store.relations_from(&ids).await.expect("relations_from"),
            ))
        })
    });
    group.finish();
    rt.block_on(store.close());

    // The same read through `Importer::franchise`: the store's query (cache off), then the
    // read cache's franchise tier (the original app: 300 ms uncached, under 1 ms cached).
    let open = |cache_entries: i64| {
        let settings = franchise::Settings::builder()
            .data_dir(dir.path())
            .cache_entries(cache_entries)
            .build()
            .expect("settings");
        rt.block_on(franchise::Importer::open(settings))
            .expect("open the importer")
    };
    let mut group = c.benchmark_group(format!("importer_franchise/{GIANT_SIZE}"));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    let uncached = open(0);
    group.bench_function("store", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(uncached.franchise(root).await.expect("franchise")) })
    });
    rt.block_on(uncached.close());
    let cached = open(10_000);
    let first = rt
        .block_on(cached.franchise(root))
        .expect("franchise")
        .expect("stored");
    assert_eq!(first.anime.len(), GIANT_SIZE);
    group.bench_function("cached", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached.franchise(root).await.expect("franchise")) })
    });
    let stats = cached.cache_stats();
    assert!(
        stats.franchise.hits > 0 && stats.franchise.misses == 1,
        "{stats:?}"
    );
    group.finish();
    rt.block_on(cached.close());
}

criterion_group!(benches, franchise_query);
criterion_main!(benches);
