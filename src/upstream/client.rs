//! The AniList client: batches of up to 50 ids in one GraphQL request, through the shared
//! budget, retrying what is worth retrying and nothing else. An AniList that was never
//! reachable (no DNS, refused, TLS) is reported within seconds, not after minutes of retries.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::json;

use super::budget::{BudgetState, RateBudget, RateHeaders, Slot};
use super::depth::{DepthGauge, WalkDepth};
use super::error::UpstreamError;
use super::query::{MAX_BATCH, batch_query};
use super::response::{PageAnswer, parse_page};
use crate::anime::{Anime, AnimeId, MediaKind};
use crate::store::StoreError;

/// How one request went, as far as the budget cares: answered (whatever the answer), never
/// sent (a refused connect: it spends nothing), or sent with no answer in time.
enum Attempt {
    Answered(RateHeaders, Result<PageAnswer, UpstreamError>),
    NotSent(UpstreamError),
    TimedOut(UpstreamError),
}

/// How this process's contact with AniList went: a one-shot command fails fast when the
/// first contact failed, and a long-running one waits it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstContact {
    /// No request of this process has finished yet.
    #[default]
    NotYet,
    /// AniList answered this process at least once.
    Answered,
    /// Every request of this process so far found AniList down; this is the last such error.
    Failed(UpstreamError),
}

#[derive(Debug, Default)]
struct Contact(Mutex<FirstContact>);

impl Contact {
    fn answered(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = FirstContact::Answered;
    }

    fn failed(&self, error: &UpstreamError) {
        let mut contact = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *contact != FirstContact::Answered {
            *contact = FirstContact::Failed(error.clone());
        }
    }

    fn get(&self) -> FirstContact {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

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
    /// Sent as `Referer` on every request: AniList's edge refuses requests without one.
    pub referer: String,
    /// Whether `referer` is the documented default (a refusal then need not suspect it).
    pub referer_is_default: bool,
    /// Whole-request timeout: connect, send, and read the body.
    pub timeout: Duration,
    /// Retries of transient failures (5xx, timeouts, cut-off bodies) after the first try.
    pub max_retries: usize,
    /// Levels of relations one batch request walks (1: the ids' own relations).
    pub walk_depth: WalkDepth,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// How many 429s or 403s in a row one call sits out before it gives up.
    pub max_parks: u32,
}

/// Connection failures tried before an AniList that never answered is reported unreachable.
const UNREACHABLE_AFTER: usize = 3;
const UNREACHABLE_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long `franchise doctor`'s requests wait for the shared budget before saying so.
const RAW_WAIT_AT_MOST: Duration = Duration::from_secs(35);
/// Tries of a failing request before AniList ever answered this process (a one-shot command
/// fails fast at first contact; once AniList answered, the configured retries apply).
const FIRST_CONTACT_TRIES: usize = 3;

/// What one batch fetch found. Ids that AniList left out of an `id_in` answer are unknown,
/// deleted or adult: a permanent "not found", not an error to retry, unless AniList reported an
/// error for part of the answer (then they are malformed, asked again). A record that cannot
/// be the anime asked for (a MANGA for an ANIME query) or that breaks AniList's shape is a
/// malformed answer for that id alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BatchAnswer {
    pub found: Vec<Anime>,
    pub not_found: Vec<AnimeId>,
    pub malformed: Vec<(AnimeId, String)>,
    /// Anime the answer carried whole beyond the ids asked for (their relations' relations,
    /// when the request walks more than one level), each once, ANIME only.
    pub walked: Vec<Anime>,
}

/// An AniList client bound to one shared [`RateBudget`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AniListClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    budget: Arc<RateBudget>,
    /// Whether AniList ever answered this process, or how the first contact failed.
    contact: Arc<Contact>,
    /// Smoothed round trip of answered requests, in microseconds (0: none yet).
    rtt_us: Arc<AtomicU64>,
    /// Picks each request's depth, learning from the answers' sizes.
    gauge: Arc<DepthGauge>,
}

/// The most of one answer's body the client reads, after decompression: a 50-id page of one
/// level is some 100 KB, of 4 levels of a dense franchise about 8 MB; past this the answer is
/// a failed request (a broken proxy, a gzip bomb, an endless body), never an out-of-memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Reads a body as it streams in (decompressed), giving up once it passes `cap` bytes:
/// `Ok(None)` then, and the rest is never read.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > cap))
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// How long a walk lowered by a failing deep query keeps to one level, in every process,
/// before the configured depth is tried again.
const LOWERED_FOR: Duration = Duration::from_secs(600);

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
        let referer = reqwest::header::HeaderValue::from_str(&config.referer).map_err(|_| {
            format!(
                "invalid AniList referer {:?}: expected a header value of printable ASCII",
                config.referer
            )
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::REFERER, referer);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            budget,
            contact: Arc::new(Contact::default()),
            rtt_us: Arc::new(AtomicU64::new(0)),
            gauge: Arc::new(DepthGauge::new(config.walk_depth)),
            config: Arc::new(config),
        })
    }

    /// How many of `pending` ids the next request should carry (see
    /// [`DepthGauge::batch_size`]), under the walk cap the request's slot carries.
    pub(crate) fn batch_size(&self, pending: usize, cap: Option<usize>) -> usize {
        self.gauge.batch_size(pending, cap)
    }

    /// The levels a request for `ids` ids would walk now, under `cap` (the budget's lowered
    /// walk, if any): what an estimate divides the levels still to walk by.
    pub(crate) fn levels_for(&self, ids: usize, cap: Option<u32>) -> usize {
        self.gauge
            .levels_for(ids, cap.map(|c| usize::try_from(c).unwrap_or(1)))
    }

    /// The deepest walk this client's setting asks for (what `franchise doctor` tries).
    pub(crate) fn deepest_walk(&self) -> usize {
        self.gauge.setting().deepest()
    }

    /// A query walking `levels` deep failed in a way a shallower one may not (a complexity
    /// refusal, a 5xx, no answer in time, an answer over the cap). Every process sharing the
    /// budget walks ONE level for `LOWERED_FOR`, and these ids are asked again at once. Straight
    /// to one level, not one less: each guess costs a round trip, and one level is the walk
    /// that always works. `Ok(false)`: not a deep query's failure.
    async fn lower_walk(
        &self,
        levels: usize,
        error: &UpstreamError,
    ) -> Result<bool, UpstreamError> {
        if levels <= 1 {
            return Ok(false);
        }
        let deep_failure = match error {
            UpstreamError::QueryRejected { message, .. } => message.contains("complexity"),
            UpstreamError::Transient { reason } => reason.starts_with("HTTP 5"),
            UpstreamError::NoAnswer { .. } | UpstreamError::TooLarge { .. } => true,
            _ => false,
        };
        if !deep_failure {
            return Ok(false);
        }
        self.budget
            .lower_walk(1, LOWERED_FOR)
            .await
            .map_err(budget_error)?;
        tracing::warn!(
            from = levels,
            %error,
            "AniList failed a query walking {levels} levels; every process walks one level per \
             request for the next {} min",
            LOWERED_FOR.as_secs() / 60
        );
        Ok(true)
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
            answer.walked.extend(part.walked);
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
        let page = self.fetch_page(ids, slot).await?;
        let asked: HashSet<&AnimeId> = ids.iter().collect();
        let mut answer = BatchAnswer::default();
        let mut returned = HashSet::new();
        for anime in page.media {
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
        for (id, reason) in page.rejected {
            if asked.contains(&id) && returned.insert(id) {
                answer.malformed.push((id, format!("id {id}: {reason}")));
            }
        }
        // Missing from a clean answer: not found. Missing from one that reported an error
        // for part of it, or held a record of no readable id: unknown, asked again.
        for id in ids.iter().filter(|id| !returned.contains(id)) {
            match &page.unsettled {
                None => answer.not_found.push(*id),
                Some(why) => answer.malformed.push((*id, why.clone())),
            }
        }
        // What the walk can take in besides: anime met whole, not already an id asked for
        // (an id asked for and not returned stays not found, whatever a nested copy says).
        answer.walked = page
            .walked
            .into_iter()
            .filter(|a| a.kind == MediaKind::Anime && !asked.contains(&a.id))
            .collect();
        Ok(answer)
    }

    /// One page, retried: transient failures back off exponentially with jitter; a 429 parks
    /// the whole budget and is then tried again; permanent failures return at once. A down
    /// AniList (unreachable, refusing, not AniList) is told to the shared budget, which parks
    /// every process until one probe, and returned at once: no id is to blame for it.
    async fn fetch_page(&self, ids: &[AnimeId], slot: Slot) -> Result<PageAnswer, UpstreamError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min_delay)
            .with_max_delay(self.config.retry_max_delay)
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .build();
        let mut parks = 0;
        let mut refused_connects = 0;
        let mut failures = 0;
        let mut slot = Some(slot);
        loop {
            let slot = match slot.take() {
                Some(slot) => slot,
                None => self.budget.acquire().await.map_err(budget_error)?,
            };
            let sent_at = slot.time();
            let started = Instant::now();
            let levels = self.gauge.levels_for(ids.len(), slot.walk_cap());
            let attempt = self.send_once(ids, levels).await;
            let (headers, error) = match attempt {
                Attempt::Answered(headers, Ok(page)) => {
                    self.contact.answered();
                    self.record_round_trip(started.elapsed());
                    self.gauge.observe(&page.shape);
                    self.budget.observe(&headers).await.map_err(budget_error)?;
                    return Ok(page);
                }
                Attempt::Answered(headers, Err(error)) => (headers, error),
                Attempt::NotSent(error) => {
                    // It never reached AniList: it spends nothing, in any process.
                    self.budget.unsent(sent_at).await.map_err(budget_error)?;
                    refused_connects += 1;
                    if refused_connects < UNREACHABLE_AFTER {
                        tokio::time::sleep(UNREACHABLE_RETRY_DELAY).await;
                        continue;
                    }
                    return Err(self.down(error).await);
                }
                Attempt::TimedOut(error) => {
                    // A deep query may be what took too long: the same ids one level less
                    // deep, at once, before anyone calls AniList down.
                    if self.lower_walk(levels, &error).await? {
                        continue;
                    }
                    return Err(self.down(error).await);
                }
            };
            // A deep query refused for its complexity or failing with a 5xx: the same ids one
            // level less deep, at once; not a failure of AniList nor of these ids.
            if self.lower_walk(levels, &error).await? {
                continue;
            }
            match &error {
                UpstreamError::RateLimited { retry_after } => {
                    self.contact.answered();
                    let pause = self
                        .budget
                        .on_rate_limited(*retry_after)
                        .await
                        .map_err(budget_error)?;
                    tracing::warn!(?pause, "AniList rate limit hit; every worker is parked");
                    parks += 1;
                    if parks > self.config.max_parks {
                        return Err(error);
                    }
                }
                e if e.is_down() => return Err(self.down(error).await),
                e if e.is_permanent() => {
                    // AniList answered in its own words: it is up, whatever it thought of us.
                    self.contact.answered();
                    self.budget.observe(&headers).await.map_err(budget_error)?;
                    return Err(error);
                }
                _ => {
                    // Only a 200 that came cut off is AniList answering; a 5xx or a reset is
                    // not, and must not end a down state for everyone.
                    if let UpstreamError::Malformed { .. } = &error {
                        self.budget.observe(&headers).await.map_err(budget_error)?;
                    }
                    failures += 1;
                    // Before AniList ever answered this process, a person may be waiting at
                    // a prompt: a few tries tell a failing AniList, not minutes of backoff.
                    let first_contact = self.contact.get() != FirstContact::Answered;
                    // A probe of a down AniList holds every other request back: it says "still
                    // down" at its first failure instead of retrying behind its own hold.
                    let probing = self.budget.last_upstream().is_some_and(|u| u.is_down());
                    let next = if probing || (first_contact && failures >= FIRST_CONTACT_TRIES) {
                        None
                    } else {
                        backoff.next()
                    };
                    let Some(delay) = next else {
                        if let UpstreamError::Transient { reason } = &error
                            && (reason.starts_with("HTTP 5")
                                || reason.starts_with("request failed"))
                        {
                            // Minutes of 5xx: AniList's side is down, not this batch.
                            let down = UpstreamError::Failing {
                                reason: format!(
                                    "{failures} tries in a row failed, the last with {reason}"
                                ),
                            };
                            return Err(self.down(down).await);
                        }
                        self.contact.answered();
                        return Err(error);
                    };
                    tracing::debug!(?delay, %error, "retrying AniList request");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Tells every process sharing the budget that AniList is down, once, and hands the
    /// error back. Logged once per change of state, not per request.
    async fn down(&self, error: UpstreamError) -> UpstreamError {
        let Some(state) = error.down_state() else {
            return error;
        };
        self.contact.failed(&error);
        let was = self.budget.last_upstream().map(|u| u.state);
        match self.budget.on_down(state, error.down_message()).await {
            Ok(pause) => {
                if was != Some(state) {
                    tracing::warn!(
                        state = state.as_str(),
                        probe_in = ?pause,
                        %error,
                        "AniList is down; every worker waits for one probe at a time"
                    );
                } else {
                    tracing::debug!(state = state.as_str(), probe_in = ?pause, "probe failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record AniList's state"),
        }
        error
    }

    /// Exactly one HTTP request; never retries.
    async fn send_once(&self, ids: &[AnimeId], levels: usize) -> Attempt {
        let body = json!({
            "query": batch_query(levels),
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
            Err(e) => return self.transport_error(&e),
        };
        let status = response.status().as_u16();
        let headers =
            RateHeaders::read(|name| response.headers().get(name).and_then(|v| v.to_str().ok()));
        let bytes = match read_capped(response, MAX_ANSWER_BYTES).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Attempt::Answered(
                    headers,
                    Err(UpstreamError::TooLarge {
                        limit_bytes: MAX_ANSWER_BYTES,
                    }),
                );
            }
            Err(e) => match self.transport_error(&e) {
                Attempt::NotSent(error) | Attempt::Answered(_, Err(error)) => {
                    return Attempt::Answered(headers, Err(error));
                }
                other => return other,
            },
        };
        let parsed = parse_page(status, headers.retry_after, &bytes).map_err(|e| match e {
            UpstreamError::NotAnilist {
                status,
                what,
                excerpt,
                ..
            } => UpstreamError::NotAnilist {
                endpoint: self.config.endpoint.clone(),
                status,
                what,
                excerpt,
            },
            other => other,
        });
        Attempt::Answered(headers, parsed)
    }

    /// The endpoint's host and port, for messages.
    fn host(&self) -> String {
        reqwest::Url::parse(&self.config.endpoint)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| {
                    format!(
                        "{h}{}",
                        u.port().map(|p| format!(":{p}")).unwrap_or_default()
                    )
                })
            })
            .unwrap_or_else(|| self.config.endpoint.clone())
    }

    fn transport_error(&self, error: &reqwest::Error) -> Attempt {
        // reqwest's Display hides the cause (reset, refused); the source chain names it.
        let mut chain = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_connect() {
            return Attempt::NotSent(UpstreamError::Unreachable {
                host: self.host(),
                reason: format!("could not connect{chain}"),
            });
        }
        if error.is_timeout() {
            // Sent, and no answer in time: it may have reached AniList, so it stays counted.
            return Attempt::TimedOut(UpstreamError::NoAnswer {
                host: self.host(),
                reason: format!("within {} s{chain}", self.config.timeout.as_secs_f64()),
            });
        }
        let what = if error.is_body() || error.is_decode() {
            "body cut off"
        } else {
            "request failed"
        };
        Attempt::Answered(
            RateHeaders::default(),
            Err(UpstreamError::Transient {
                reason: format!("{what}: {error}{chain}"),
            }),
        )
    }

    /// One request with this body, through the budget and with the configured headers, for
    /// `franchise doctor`: what came back as it came, or the transport error's whole chain. A
    /// request that never left spends nothing; an answer is fed to the budget as usual.
    pub(crate) async fn send_raw(&self, body: &serde_json::Value) -> Result<RawAnswer, String> {
        // A check should not wait out a long park silently: say so instead.
        let slot = match tokio::time::timeout(RAW_WAIT_AT_MOST, self.budget.acquire()).await {
            Ok(slot) => slot.map_err(|e| e.to_string())?,
            Err(_) => {
                let why = self
                    .budget
                    .last_upstream()
                    .and_then(|u| u.message)
                    .unwrap_or_else(|| "the rate budget is spent".to_string());
                return Err(format!(
                    "not sent: every process sharing the budget waits more than {} s for \
                     its next request ({why})",
                    RAW_WAIT_AT_MOST.as_secs()
                ));
            }
        };
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.config.endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                if e.is_connect() {
                    let _ = self.budget.unsent(slot.time()).await;
                }
                return Err(error_chain(&e));
            }
        };
        let status = response.status().as_u16();
        let headers =
            RateHeaders::read(|name| response.headers().get(name).and_then(|v| v.to_str().ok()));
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| error_chain(&e))?
            .ok_or_else(|| {
                UpstreamError::TooLarge {
                    limit_bytes: MAX_ANSWER_BYTES,
                }
                .to_string()
            })?;
        let round_trip = started.elapsed();
        // What came back tells every process about AniList, as the workers' requests do
        // (this request may have been the probe of a down AniList).
        match parse_page(status, headers.retry_after, &bytes) {
            Ok(_) => {
                let _ = self.budget.observe(&headers).await;
            }
            Err(UpstreamError::RateLimited { retry_after }) => {
                let _ = self.budget.on_rate_limited(retry_after).await;
            }
            Err(e) if e.is_permanent() => {
                let _ = self.budget.observe(&headers).await;
            }
            Err(e) => {
                if let Some(state) = e.down_state() {
                    let _ = self.budget.on_down(state, e.down_message()).await;
                }
            }
        }
        Ok(RawAnswer {
            status,
            headers,
            content_type,
            body: bytes.to_vec(),
            round_trip,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    pub(crate) fn referer(&self) -> &str {
        &self.config.referer
    }

    /// Whether AniList ever answered this process, or how the first contact failed.
    pub(crate) fn first_contact(&self) -> FirstContact {
        self.contact.get()
    }

    /// The budget's last known state, without asking the store (for ETAs in events).
    pub(crate) fn last_budget(&self) -> Option<BudgetState> {
        self.budget.last_state()
    }
}

/// What one raw request got back (`franchise doctor`).
pub(crate) struct RawAnswer {
    pub status: u16,
    pub headers: RateHeaders,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub round_trip: Duration,
}

/// reqwest's error with its whole source chain (its Display hides the cause).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The budget lives in the store; a store that fails it fails the request as transient
/// (the workers' flusher decides whether the store is broken for good).
fn budget_error(e: StoreError) -> UpstreamError {
    UpstreamError::Transient {
        reason: format!("the shared rate budget could not be read: {e}"),
    }
}
