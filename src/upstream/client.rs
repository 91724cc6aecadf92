//! The AniList client: batches of up to 50 ids in one GraphQL request, through the shared
//! budget, retrying what is worth retrying and nothing else. An AniList that was never
//! reachable (no DNS, refused, TLS) is reported within seconds, not after minutes of retries.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::json;

use super::budget::{BudgetState, RateBudget, RateHeaders, Slot};
use super::error::UpstreamError;
use super::query::{BATCH_QUERY, MAX_BATCH};
use super::response::parse_page;
use crate::anime::{Anime, AnimeId, MediaKind};
use crate::store::StoreError;

/// AniList asks API users to identify themselves.
pub(crate) const USER_AGENT: &str = concat!(
    "franchise/",
    env!("CARGO_PKG_VERSION"),
    " (AniList franchise importer; https://crates.io/crates/franchise)"
);

/// Where and how to talk to AniList.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientConfig {
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

/// Connection failures tried before an AniList that never answered is reported unreachable.
const UNREACHABLE_AFTER: usize = 3;
const UNREACHABLE_RETRY_DELAY: Duration = Duration::from_millis(500);

/// What one batch fetch found. Ids that AniList left out of an `id_in` answer are unknown,
/// deleted or adult: a permanent "not found", not an error to retry. A record that cannot be
/// the anime asked for (a MANGA for an ANIME query) is a malformed answer for that id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BatchAnswer {
    pub found: Vec<Anime>,
    pub not_found: Vec<AnimeId>,
    pub malformed: Vec<(AnimeId, String)>,
}

/// An AniList client bound to one shared [`RateBudget`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AniListClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    budget: Arc<RateBudget>,
    /// Whether any request of this process got an HTTP answer.
    answered: Arc<AtomicBool>,
    /// Smoothed round trip of answered requests, in microseconds (0: none yet).
    rtt_us: Arc<AtomicU64>,
}

impl AniListClient {
    pub(crate) fn new(config: ClientConfig, budget: Arc<RateBudget>) -> Result<Self, String> {
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
            answered: Arc::new(AtomicBool::new(false)),
            rtt_us: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn budget(&self) -> &Arc<RateBudget> {
        &self.budget
    }

    /// The smoothed round trip of answered requests, once one was measured.
    pub(crate) fn round_trip(&self) -> Option<Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn record_round_trip(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.rtt_us.load(Ordering::Relaxed);
        // An exponential moving average weighing the newest sample 1/4.
        let new = if old == 0 {
            sample
        } else {
            (old * 3 + sample) / 4
        };
        self.rtt_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Fetches these anime with their relations: one request per 50 ids (duplicates dropped).
    pub(crate) async fn fetch_batch(&self, ids: &[AnimeId]) -> Result<BatchAnswer, UpstreamError> {
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<AnimeId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let mut answer = BatchAnswer::default();
        for chunk in unique.chunks(MAX_BATCH) {
            let slot = self.budget.acquire().await.map_err(budget_error)?;
            let part = self.fetch_with_slot(slot, chunk).await?;
            answer.found.extend(part.found);
            answer.not_found.extend(part.not_found);
            answer.malformed.extend(part.malformed);
        }
        Ok(answer)
    }

    /// Fetches at most 50 ids in one request, spending a slot already taken from the budget
    /// (retries take their own). A batcher uses this to pick the ids when the slot opens.
    pub(crate) async fn fetch_with_slot(
        &self,
        slot: Slot,
        ids: &[AnimeId],
    ) -> Result<BatchAnswer, UpstreamError> {
        if ids.len() > MAX_BATCH {
            return Err(UpstreamError::QueryRejected {
                status: 400,
                message: format!(
                    "{} ids in one request; AniList pages hold {MAX_BATCH}",
                    ids.len()
                ),
            });
        }
        if ids.is_empty() {
            return Ok(BatchAnswer::default());
        }
        let found = self.fetch_page(ids, slot).await?;
        let asked: HashSet<&AnimeId> = ids.iter().collect();
        let mut answer = BatchAnswer::default();
        let mut returned = HashSet::new();
        for anime in found {
            if !asked.contains(&anime.id) || !returned.insert(anime.id) {
                continue;
            }
            if anime.kind == MediaKind::Anime {
                answer.found.push(anime);
            } else {
                answer.malformed.push((
                    anime.id,
                    format!(
                        "AniList answered a {} record for id {} to a query for ANIME",
                        anime.kind.as_str(),
                        anime.id
                    ),
                ));
            }
        }
        answer.not_found = ids
            .iter()
            .filter(|id| !returned.contains(id))
            .copied()
            .collect();
        Ok(answer)
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
        let mut unreachable = 0;
        let mut slot = Some(slot);
        loop {
            if slot.take().is_none() {
                let _slot = self.budget.acquire().await.map_err(budget_error)?;
            }
            let started = Instant::now();
            let (headers, outcome) = self.send_once(ids).await;
            let error = match outcome {
                Ok(anime) => {
                    self.answered.store(true, Ordering::Relaxed);
                    self.record_round_trip(started.elapsed());
                    self.budget.observe(&headers).await.map_err(budget_error)?;
                    return Ok(anime);
                }
                Err(error) => error,
            };
            match &error {
                UpstreamError::RateLimited { retry_after } => {
                    self.answered.store(true, Ordering::Relaxed);
                    let pause = self
                        .budget
                        .on_rate_limited(*retry_after)
                        .await
                        .map_err(budget_error)?;
                    tracing::warn!(?pause, "AniList rate limit hit; every worker is parked");
                    parks += 1;
                }
                UpstreamError::Disabled { .. } => {
                    self.answered.store(true, Ordering::Relaxed);
                    let pause = self.budget.on_outage().await.map_err(budget_error)?;
                    tracing::warn!(?pause, %error, "AniList disabled; every worker is parked");
                    parks += 1;
                }
                e if e.is_permanent() => return Err(error),
                UpstreamError::Unreachable { .. } if !self.answered.load(Ordering::Relaxed) => {
                    // Nothing ever answered: a wrong URL or no network, not a bad moment.
                    unreachable += 1;
                    if unreachable >= UNREACHABLE_AFTER {
                        return Err(error);
                    }
                    tokio::time::sleep(UNREACHABLE_RETRY_DELAY).await;
                    continue;
                }
                _ => {
                    if !matches!(error, UpstreamError::Unreachable { .. }) {
                        self.answered.store(true, Ordering::Relaxed);
                        self.budget.observe(&headers).await.map_err(budget_error)?;
                    }
                    let Some(delay) = backoff.next() else {
                        return Err(error.into_transient());
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
            Err(e) => return (RateHeaders::default(), Err(self.transport_error(&e))),
        };
        let status = response.status().as_u16();
        let headers =
            RateHeaders::read(|name| response.headers().get(name).and_then(|v| v.to_str().ok()));
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return (headers, Err(self.transport_error(&e))),
        };
        (headers, parse_page(status, headers.retry_after, &bytes))
    }

    fn transport_error(&self, error: &reqwest::Error) -> UpstreamError {
        // reqwest's Display hides the cause (reset, refused); the source chain names it.
        let mut chain = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_connect() {
            let host = reqwest::Url::parse(&self.config.endpoint)
                .ok()
                .and_then(|u| {
                    u.host_str().map(|h| {
                        format!(
                            "{h}{}",
                            u.port().map(|p| format!(":{p}")).unwrap_or_default()
                        )
                    })
                })
                .unwrap_or_else(|| self.config.endpoint.clone());
            return UpstreamError::Unreachable {
                host,
                reason: format!("could not connect{chain}"),
            };
        }
        let what = if error.is_timeout() {
            "timed out"
        } else if error.is_body() || error.is_decode() {
            "body cut off"
        } else {
            "request failed"
        };
        UpstreamError::Transient {
            reason: format!("{what}: {error}{chain}"),
        }
    }

    /// The budget's last known state, without asking the store (for ETAs in events).
    pub(crate) fn last_budget(&self) -> Option<BudgetState> {
        self.budget.last_state()
    }
}

/// The budget lives in the store; a store that fails it fails the request as transient
/// (the workers' flusher decides whether the store is broken for good).
fn budget_error(e: StoreError) -> UpstreamError {
    UpstreamError::Transient {
        reason: format!("the shared rate budget could not be read: {e}"),
    }
}
