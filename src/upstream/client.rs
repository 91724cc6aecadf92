//! The AniList client: batches of up to 50 ids in one GraphQL request, through the shared
//! budget, retrying what is worth retrying and nothing else.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::json;

use super::budget::{RateBudget, RateHeaders, Slot};
use super::error::UpstreamError;
use super::query::{BATCH_QUERY, MAX_BATCH};
use super::response::parse_page;
use crate::anime::{Anime, AnimeId};

/// AniList asks API users to identify themselves.
pub const USER_AGENT: &str = concat!(
    "franchise/",
    env!("CARGO_PKG_VERSION"),
    " (AniList franchise importer; https://crates.io/crates/franchise)"
);

/// Where and how to talk to AniList.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub endpoint: String,
    /// Whole-request timeout: connect, send, and read the body.
    pub timeout: Duration,
    /// Retries of transient failures (5xx, timeouts, cut-off bodies) after the first try.
    pub max_retries: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// How many 429s or 403s in a row one call sits out before it gives up.
    pub max_parks: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://graphql.anilist.co".to_string(),
            timeout: Duration::from_secs(20),
            max_retries: 5,
            retry_min_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            max_parks: 10,
        }
    }
}

/// What one batch fetch found. Ids that AniList left out of an `id_in` answer are unknown,
/// deleted or adult: a permanent "not found", not an error to retry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchAnswer {
    pub found: Vec<Anime>,
    pub not_found: Vec<AnimeId>,
}

/// An AniList client bound to one shared [`RateBudget`]. Cheap to clone.
#[derive(Clone)]
pub struct AniListClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    budget: Arc<RateBudget>,
}

impl AniListClient {
    pub fn new(config: ClientConfig, budget: Arc<RateBudget>) -> Result<Self, String> {
        reqwest::Url::parse(&config.endpoint).map_err(|e| {
            format!(
                "invalid AniList endpoint {:?}: {e}; expected a URL like https://graphql.anilist.co",
                config.endpoint
            )
        })?;
        if config.timeout.is_zero() {
            return Err("AniList request timeout must be longer than 0 s".into());
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            config: Arc::new(config),
            budget,
        })
    }

    pub fn budget(&self) -> &Arc<RateBudget> {
        &self.budget
    }

    /// Fetches these anime with their relations: one request per 50 ids (duplicates dropped).
    pub async fn fetch_batch(&self, ids: &[AnimeId]) -> Result<BatchAnswer, UpstreamError> {
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<AnimeId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let mut answer = BatchAnswer::default();
        for chunk in unique.chunks(MAX_BATCH) {
            let slot = self.budget.acquire().await;
            let part = self.fetch_with_slot(slot, chunk).await?;
            answer.found.extend(part.found);
            answer.not_found.extend(part.not_found);
        }
        Ok(answer)
    }

    /// Fetches at most 50 ids in one request, spending a slot already taken from the budget
    /// (retries take their own). A batcher uses this to pick the ids when the slot opens.
    pub async fn fetch_with_slot(
        &self,
        slot: Slot,
        ids: &[AnimeId],
    ) -> Result<BatchAnswer, UpstreamError> {
        let Some(chunk) = ids.get(..MAX_BATCH.min(ids.len())) else {
            return Ok(BatchAnswer::default());
        };
        if ids.len() > MAX_BATCH {
            return Err(UpstreamError::QueryRejected {
                status: 400,
                message: format!(
                    "{} ids in one request; AniList pages hold {MAX_BATCH}",
                    ids.len()
                ),
            });
        }
        let found = self.fetch_page(chunk, slot).await?;
        let returned: HashSet<AnimeId> = found.iter().map(|a| a.id).collect();
        let asked: HashSet<&AnimeId> = chunk.iter().collect();
        Ok(BatchAnswer {
            not_found: chunk
                .iter()
                .filter(|id| !returned.contains(id))
                .copied()
                .collect(),
            found: found
                .into_iter()
                .filter(|a| asked.contains(&a.id))
                .collect(),
        })
    }

    /// One page, retried: transient failures back off exponentially with jitter; a 429 or
    /// 403 parks the whole budget and is then tried again; permanent failures return at once.
    async fn fetch_page(&self, ids: &[AnimeId], slot: Slot) -> Result<Vec<Anime>, UpstreamError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min_delay)
            .with_max_delay(self.config.retry_max_delay)
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .build();
        let mut parks = 0;
        let mut slot = Some(slot);
        loop {
            if slot.take().is_none() {
                let _ = self.budget.acquire().await;
            }
            let (headers, outcome) = self.send_once(ids).await;
            let error = match outcome {
                Ok(anime) => {
                    self.budget.observe(&headers);
                    return Ok(anime);
                }
                Err(error) => error,
            };
            match &error {
                UpstreamError::RateLimited { retry_after } => {
                    let pause = self.budget.on_rate_limited(*retry_after);
                    tracing::warn!(?pause, "AniList rate limit hit; every worker is parked");
                    parks += 1;
                }
                UpstreamError::Disabled { .. } => {
                    let pause = self.budget.on_outage();
                    tracing::warn!(?pause, %error, "AniList disabled; every worker is parked");
                    parks += 1;
                }
                e if e.is_permanent() => return Err(error),
                _ => {
                    self.budget.observe(&headers);
                    let Some(delay) = backoff.next() else {
                        return Err(error);
                    };
                    tracing::debug!(?delay, %error, "retrying AniList request");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            if parks > self.config.max_parks {
                return Err(error);
            }
        }
    }

    /// Exactly one HTTP request; never retries.
    async fn send_once(&self, ids: &[AnimeId]) -> (RateHeaders, Result<Vec<Anime>, UpstreamError>) {
        let body = json!({
            "query": BATCH_QUERY,
            "variables": { "ids": ids, "perPage": MAX_BATCH },
        });
        let response = match self
            .http
            .post(&self.config.endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return (RateHeaders::default(), Err(transport_error(&e))),
        };
        let status = response.status().as_u16();
        let headers =
            RateHeaders::read(|name| response.headers().get(name).and_then(|v| v.to_str().ok()));
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return (headers, Err(transport_error(&e))),
        };
        (headers, parse_page(status, headers.retry_after, &bytes))
    }
}

fn transport_error(error: &reqwest::Error) -> UpstreamError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "body cut off"
    } else {
        "request failed"
    };
    // reqwest's Display hides the cause (reset, refused); the source chain names it.
    let mut reason = format!("{what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Transient { reason }
}
