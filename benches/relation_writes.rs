//! Writing N relations to a real SQLite file (WAL, `synchronous=NORMAL`, busy timeout: the
//! production pragmas of `BenchStore::open`), two ways:
//!
//! - `batched`: the flusher's path, `commit_fetched` of anime carrying N
//!   edges to ANIME nodes. One transaction: the anime upsert, the delete of their old edges,
//!   N observed and N derived relation rows in multi-row upserts.
//! - `single_row`: what the original app did, 2N single-row `INSERT … ON CONFLICT DO UPDATE`
//!   statements (each edge, then its inverse), each in its own autocommit transaction, through
//!   the same sqlx pool on the same schema.
//!
//! Both write the same 2N relation rows every iteration (checked once before timing).
//!
//! Run: `cargo bench --bench relation_writes` (a few minutes; add a filter such as
//! `-- relations/1000` to run one size).

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use franchise::bench::BenchStore as Store;
use franchise::{
    Anime, AnimeId, FuzzyDate, MediaKind, RelatedMedia, RelationEdge, RelationType, Title,
};
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// Relation counts to write per iteration.
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// Edges per fetched anime: AniList's busiest real anime have about 50.
const EDGES_PER_ANIME: usize = 50;

/// Far ends start here, so no target is one of the fetched anime and every edge gets an
/// inverse row of its own (an observed row would otherwise replace the derived one).
const FIRST_TARGET_ID: i64 = 1_000_000;

/// Relation types that all have an inverse, so N edges give exactly N derived rows.
const TYPES: [RelationType; 9] = [
    RelationType::Sequel,
    RelationType::SideStory,
    RelationType::Character,
    RelationType::Alternative,
    RelationType::SpinOff,
    RelationType::Summary,
    RelationType::Compilation,
    RelationType::Contains,
    RelationType::Prequel,
];

fn id(raw: i64) -> AnimeId {
    AnimeId::new(raw).expect("valid AniList id")
}

fn title(text: String) -> Title {
    Title {
        romaji: Some(text),
        english: None,
        native: None,
    }
}

/// Anime whose edges total exactly `n`, at most `EDGES_PER_ANIME` each, all to ANIME nodes.
fn fetched_anime(n: usize) -> Vec<Anime> {
    let mut out = Vec::new();
    let mut edge = 0usize;
    while edge < n {
        let raw = out.len() as i64 + 1;
        let count = EDGES_PER_ANIME.min(n - edge);
        let relations = (0..count)
            .map(|i| {
                let target = FIRST_TARGET_ID + (edge + i) as i64;
                RelationEdge {
                    edge_id: Some((edge + i) as i64 + 1),
                    relation: TYPES[(edge + i) % TYPES.len()].clone(),
                    node: RelatedMedia {
                        id: id(target),
                        kind: MediaKind::Anime,
                        format: Some("TV".into()),
                        status: Some("FINISHED".into()),
                        title: title(format!("Related {target}")),
                    },
                }
            })
            .collect();
        edge += count;
        out.push(Anime {
            id: id(raw),
            id_mal: Some(raw + 100_000),
            kind: MediaKind::Anime,
            title: title(format!("Anime {raw}")),
            format: Some("TV".into()),
            status: Some("FINISHED".into()),
            episodes: Some(12),
            season: Some("FALL".into()),
            season_year: Some(2012),
            start_date: FuzzyDate {
                year: Some(2012),
                month: Some(10),
                day: None,
            },
            relations,
        });
    }
    out
}

/// One `anime_relation` row, as the original app bound it.
struct Row {
    anime_id: i64,
    related_id: i64,
    relation_type: String,
    derived: i32,
    related_kind: &'static str,
    related_format: Option<String>,
    related_status: Option<String>,
    related_title: Option<String>,
    edge_id: Option<i64>,
}

/// The same 2N rows `commit_fetched` writes for `anime`: each edge, then its derived inverse.
fn single_rows(anime: &[Anime]) -> Vec<Row> {
    let mut rows = Vec::new();
    for a in anime {
        for e in &a.relations {
            rows.push(Row {
                anime_id: i64::from(a.id),
                related_id: i64::from(e.node.id),
                relation_type: e.relation.as_str().to_string(),
                derived: 0,
                related_kind: "ANIME",
                related_format: e.node.format.clone(),
                related_status: e.node.status.clone(),
                related_title: e.node.title.display().map(str::to_string),
                edge_id: e.edge_id,
            });
            let inverse = e.relation.inverse().expect("TYPES all have an inverse");
            rows.push(Row {
                anime_id: i64::from(e.node.id),
                related_id: i64::from(a.id),
                relation_type: inverse.as_str().to_string(),
                derived: 1,
                related_kind: "ANIME",
                related_format: a.format.clone(),
                related_status: a.status.clone(),
                related_title: a.title.display().map(str::to_string),
                edge_id: None,
            });
        }
    }
    rows
}

const SINGLE_ROW_SQL: &str = "INSERT INTO anime_relation (anime_id, related_id, relation_type, \
     derived, related_kind, related_format, related_status, related_title, edge_id, written_gen) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) \
     ON CONFLICT (anime_id, related_id) DO UPDATE SET relation_type = excluded.relation_type, \
     derived = excluded.derived, related_kind = excluded.related_kind, \
     related_format = excluded.related_format, related_status = excluded.related_status, \
     related_title = excluded.related_title, edge_id = excluded.edge_id";

/// 2N statements, each its own autocommit transaction. Returns the rows they changed.
async fn write_single_rows(store: &Store, rows: &[Row]) -> u64 {
    let mut changed = 0;
    for r in rows {
        changed += sqlx::query(SINGLE_ROW_SQL)
            .bind(r.anime_id)
            .bind(r.related_id)
            .bind(r.relation_type.as_str())
            .bind(r.derived)
            .bind(r.related_kind)
            .bind(r.related_format.as_deref())
            .bind(r.related_status.as_deref())
            .bind(r.related_title.as_deref())
            .bind(r.edge_id)
            .execute(store.pool())
            .await
            .expect("single-row insert")
            .rows_affected();
    }
    changed
}

async fn open_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("franchise.sqlite"))
        .await
        .expect("open store");
    (dir, store)
}

/// (relation rows, derived ones) in the store.
async fn relation_counts(store: &Store) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(derived), 0) FROM anime_relation")
        .fetch_one(store.pool())
        .await
        .expect("count relations")
}

fn relation_writes(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    for n in SIZES {
        let anime = fetched_anime(n);
        assert_eq!(anime.iter().map(|a| a.relations.len()).sum::<usize>(), n);
        let batch = anime;
        let rows = single_rows(&batch);
        let expected = (2 * n as i64, n as i64);

        let (_batched_dir, batched_store) = rt.block_on(open_store());
        let (_single_dir, single_store) = rt.block_on(open_store());
        rt.block_on(async {
            // Once outside the timing: both write the same 2N rows, and again on a rerun.
            for _ in 0..2 {
                batched_store
                    .commit_fetched(&batch)
                    .await
                    .expect("commit_fetched");
                assert_eq!(relation_counts(&batched_store).await, expected, "batched");
                let changed = write_single_rows(&single_store, &rows).await;
                assert_eq!(changed, 2 * n as u64, "single-row statements");
                assert_eq!(relation_counts(&single_store).await, expected, "single-row");
            }
        });

        let mut group = c.benchmark_group(format!("relations/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.warm_up_time(Duration::from_secs(1));
        if n >= 1_000 {
            // 20,000 autocommits take a good fraction of a second: one iteration per sample.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(if n >= 10_000 { 20 } else { 4 }));
        } else {
            group.sample_size(20);
            group.measurement_time(Duration::from_secs(if n >= 100 { 5 } else { 3 }));
        }
        group.bench_function(BenchmarkId::from_parameter("batched"), |b| {
            b.to_async(&rt).iter(|| async {
                batched_store
                    .commit_fetched(black_box(&batch))
                    .await
                    .expect("commit_fetched")
            })
        });
        group.bench_function(BenchmarkId::from_parameter("single_row"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(write_single_rows(&single_store, &rows).await) })
        });
        group.finish();

        rt.block_on(async {
            assert_eq!(relation_counts(&batched_store).await, expected);
            assert_eq!(relation_counts(&single_store).await, expected);
            batched_store.close().await;
            single_store.close().await;
        });
    }
}

criterion_group!(benches, relation_writes);
criterion_main!(benches);
