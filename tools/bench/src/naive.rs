//! What the original app did per anime, shared by both baselines: one `Media(id:)` request per
//! anime (waiting `Retry-After` on a 429, or it would never finish) and a plain SQLite file.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use franchise::RelationType;
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

/// One anime per request, relation edges with the node's id and type only.
const QUERY: &str = "query ($id: Int) { Media(id: $id, type: ANIME) { id format status \
    title { romaji } relations { edges { relationType(version: 2) node { id type } } } } }";

/// Transient failures (5xx, connection errors) retried before a run is abandoned.
const MAX_TRANSIENT_RETRIES: u32 = 5;

#[derive(Debug, Clone)]
pub struct Fetched {
    pub id: i64,
    pub title: Option<String>,
    pub format: Option<String>,
    pub status: Option<String>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub relation_type: String,
    pub target: i64,
    pub target_is_anime: bool,
}

impl Fetched {
    /// Targets the walk goes on to.
    pub fn followed(&self) -> impl Iterator<Item = i64> + '_ {
        self.edges
            .iter()
            .filter(|e| {
                e.target_is_anime
                    && RelationType::FOLLOWED_BY_DEFAULT
                        .iter()
                        .any(|t| t.as_str() == e.relation_type)
            })
            .map(|e| e.target)
    }

    /// (from, to, type) rows: every observed edge and its inverse where one is defined.
    pub fn relation_rows(&self) -> Vec<(i64, i64, String)> {
        let mut rows = Vec::with_capacity(self.edges.len() * 2);
        for e in &self.edges {
            rows.push((self.id, e.target, e.relation_type.clone()));
            if let Some(inverse) = RelationType::parse(&e.relation_type).inverse() {
                rows.push((e.target, self.id, inverse.as_str().to_string()));
            }
        }
        rows
    }
}

#[derive(Deserialize)]
struct Body {
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "Media")]
    media: Option<Media>,
}

#[derive(Deserialize)]
struct Media {
    id: i64,
    format: Option<String>,
    status: Option<String>,
    title: Option<TitleBody>,
    relations: Option<Relations>,
}

#[derive(Deserialize)]
struct TitleBody {
    romaji: Option<String>,
}

#[derive(Deserialize)]
struct Relations {
    edges: Vec<Option<EdgeBody>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EdgeBody {
    relation_type: Option<String>,
    node: Option<NodeBody>,
}

#[derive(Deserialize)]
struct NodeBody {
    id: i64,
    #[serde(rename = "type")]
    media_type: Option<String>,
}

/// Sent on every request: AniList's edge (and the fake) refuses requests without a Referer.
const REFERER: &str = "https://github.com/franchise/franchise-bench";

/// The original app's HTTP client: no rate limiter, but it honours `Retry-After`.
#[derive(Clone)]
pub struct NaiveClient {
    http: reqwest::Client,
    url: String,
}

impl NaiveClient {
    pub fn new(url: String) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::REFERER,
            reqwest::header::HeaderValue::from_static(REFERER),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent("franchise-bench (original-app baseline)")
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, url })
    }

    /// Fetches one anime; `None` if AniList does not have it.
    pub async fn fetch(&self, id: i64) -> anyhow::Result<Option<Fetched>> {
        let body = serde_json::json!({ "query": QUERY, "variables": { "id": id } });
        let mut transient = 0;
        loop {
            let sent = self.http.post(&self.url).json(&body).send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if transient < MAX_TRANSIENT_RETRIES => {
                    transient += 1;
                    eprintln!("warning: request for anime {id} failed: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("fetching anime {id}")),
            };
            let status = response.status().as_u16();
            if status == 429 {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            if status == 404 {
                return Ok(None);
            }
            if status >= 500 && transient < MAX_TRANSIENT_RETRIES {
                transient += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if status != 200 {
                bail!("anime {id}: HTTP {status}");
            }
            let parsed: Body = response
                .json()
                .await
                .with_context(|| format!("anime {id}: reading the body"))?;
            let Some(media) = parsed.data.and_then(|d| d.media) else {
                return Ok(None);
            };
            let edges = media
                .relations
                .map(|r| r.edges)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let node = e.node?;
                    Some(Edge {
                        relation_type: e.relation_type.unwrap_or_else(|| "OTHER".into()),
                        target: node.id,
                        target_is_anime: node.media_type.as_deref() == Some("ANIME"),
                    })
                })
                .collect();
            return Ok(Some(Fetched {
                id: media.id,
                title: media.title.and_then(|t| t.romaji),
                format: media.format,
                status: media.status,
                edges,
            }));
        }
    }
}

/// The original app's tables in a fresh SQLite file (WAL, synchronous=NORMAL, as `franchise`
/// uses, so the comparison is about the write pattern, not the durability settings).
pub async fn open_db(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    for ddl in [
        "CREATE TABLE anime (id INTEGER PRIMARY KEY, title TEXT, format TEXT, status TEXT)",
        "CREATE TABLE anime_relation (anime_id INTEGER NOT NULL, related_id INTEGER NOT NULL, \
         relation_type TEXT NOT NULL, PRIMARY KEY (anime_id, related_id))",
    ] {
        sqlx::query(ddl)
            .execute(&pool)
            .await
            .context("creating tables")?;
    }
    Ok(pool)
}

/// The original write pattern: one autocommit INSERT for the anime, then each relation as two
/// single-row INSERTs (the edge and its inverse).
pub async fn insert_single_rows(pool: &SqlitePool, a: &Fetched) -> anyhow::Result<()> {
    sqlx::query("INSERT OR REPLACE INTO anime (id, title, format, status) VALUES (?, ?, ?, ?)")
        .bind(a.id)
        .bind(&a.title)
        .bind(&a.format)
        .bind(&a.status)
        .execute(pool)
        .await
        .context("inserting an anime")?;
    for (from, to, kind) in a.relation_rows() {
        sqlx::query(
            "INSERT OR REPLACE INTO anime_relation (anime_id, related_id, relation_type) \
             VALUES (?, ?, ?)",
        )
        .bind(from)
        .bind(to)
        .bind(kind)
        .execute(pool)
        .await
        .context("inserting a relation")?;
    }
    Ok(())
}

/// The planned fix's write pattern: one transaction with one multi-row INSERT per table
/// (chunked under SQLite's bound-parameter limit).
pub async fn insert_batch(pool: &SqlitePool, level: &[Fetched]) -> anyhow::Result<()> {
    const ROWS: usize = 500;
    let mut tx = pool.begin().await.context("starting a transaction")?;
    for chunk in level.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR REPLACE INTO anime (id, title, format, status) ",
        );
        q.push_values(chunk, |mut row, a| {
            row.push_bind(a.id)
                .push_bind(a.title.clone())
                .push_bind(a.format.clone())
                .push_bind(a.status.clone());
        });
        q.build()
            .execute(&mut *tx)
            .await
            .context("inserting anime")?;
    }
    let relations: Vec<(i64, i64, String)> = level.iter().flat_map(|a| a.relation_rows()).collect();
    for chunk in relations.chunks(ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR REPLACE INTO anime_relation (anime_id, related_id, relation_type) ",
        );
        q.push_values(chunk, |mut row, (from, to, kind)| {
            row.push_bind(*from).push_bind(*to).push_bind(kind.clone());
        });
        q.build()
            .execute(&mut *tx)
            .await
            .context("inserting relations")?;
    }
    tx.commit().await.context("committing a level")?;
    Ok(())
}

pub async fn count_anime(pool: &SqlitePool) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anime")
        .fetch_one(pool)
        .await
        .context("counting anime")?;
    Ok(usize::try_from(n).unwrap_or(0))
}
