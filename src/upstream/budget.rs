//! The one rate budget every caller of an upstream shares: a rolling-window request budget,
//! a burst guard, server-header adaptation, and a park that stops everyone after a 429 or 403.
//!
//! Why a rolling window and not a plain GCRA: AniList counts requests in a fixed one-minute
//! window. A GCRA of 30/min with a burst of 30 lets 30 go at once and then refills, so 52 can
//! land inside one minute and the 31st is banned. Keeping the send times of the last window
//! guarantees at most `requests` in ANY window, so a walk may spend the whole minute's budget
//! on round trips without ever crossing the server's count. `governor` keeps the short-term
//! pace (a couple a second), which is what AniList's undocumented burst limiter watches.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How much a budget allows. `requests` per `window` is the long-term limit; `min_spacing` the
/// shortest gap between two requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    pub requests: u32,
    pub window: Duration,
    pub min_spacing: Duration,
    /// Added to every server `Retry-After` before anyone may send again.
    pub retry_after_margin: Duration,
    /// First pause after a 403 outage; doubles on each further 403, up to `outage_pause_max`.
    pub outage_pause_min: Duration,
    pub outage_pause_max: Duration,
}

impl BudgetConfig {
    /// AniList as it behaves now: degraded to 30/min while its headers still say 90.
    pub fn per_minute(requests: u32) -> Self {
        Self {
            requests,
            window: Duration::from_secs(60),
            min_spacing: Duration::from_millis(500),
            retry_after_margin: Duration::from_secs(1),
            outage_pause_min: Duration::from_secs(5),
            outage_pause_max: Duration::from_secs(60),
        }
    }

    /// Checks the values make a usable budget and says which one does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.requests == 0 {
            return Err("budget must allow at least 1 request per window, got 0".into());
        }
        if self.window.is_zero() {
            return Err("budget window must be longer than 0 s".into());
        }
        if self.outage_pause_min > self.outage_pause_max {
            return Err(format!(
                "outage pause min ({:?}) is longer than its max ({:?})",
                self.outage_pause_min, self.outage_pause_max
            ));
        }
        Ok(())
    }

    /// Slack added to the window: a request sent at t may arrive a little later, so arrivals
    /// can bunch up by the latency jitter. 1/30 of the window is 2 s in a minute.
    fn window_with_slack(&self) -> Duration {
        self.window + self.window / 30
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self::per_minute(30)
    }
}

/// What AniList's rate-limit headers said about a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub retry_after: Option<Duration>,
}

impl RateHeaders {
    /// Reads the headers through `get`, so reqwest's map and recorded JSON both work.
    /// Unparseable values are ignored rather than trusted.
    pub fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u32>().ok());
        Self {
            limit: num("x-ratelimit-limit"),
            remaining: num("x-ratelimit-remaining"),
            retry_after: num("retry-after").map(|s| Duration::from_secs(u64::from(s))),
        }
    }
}

/// Why everyone is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    RateLimited,
    Outage,
}

/// A snapshot of the budget for the status view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetState {
    pub requests_made: u64,
    pub rate_limited_seen: u64,
    pub outages_seen: u64,
    /// The limit in force now: the configured one, or lower if the server said so.
    pub limit_per_window: u32,
    pub window_secs: f64,
    pub used_in_window: u32,
    /// Requests a minute the budget allows at the moment, all limits considered.
    pub pace_per_minute: f64,
    pub parked_for_ms: Option<u64>,
    pub parked_until: Option<SystemTime>,
    pub parked_reason: Option<ParkReason>,
    pub server_limit: Option<u32>,
    pub server_remaining: Option<u32>,
}

/// Proof that the budget let one request go: spend it on exactly one request. Holding one
/// lets a batcher choose WHICH ids go out at the moment the slot opens.
#[must_use = "a slot is one request the budget already counted"]
#[derive(Debug)]
pub struct Slot(());

/// One upstream's shared budget. Clone the `Arc` into every worker; never build two for one
/// upstream, or the limits multiply.
pub struct RateBudget {
    config: BudgetConfig,
    pace: DefaultDirectRateLimiter,
    clock: DefaultClock,
    state: Mutex<State>,
}

struct State {
    sent: VecDeque<Instant>,
    limit: u32,
    parked_until: Option<Instant>,
    parked_reason: Option<ParkReason>,
    consecutive_outages: u32,
    server: Option<ServerView>,
    requests_made: u64,
    rate_limited_seen: u64,
    outages_seen: u64,
}

/// The server's own count, as of the last response: `remaining` left at `at`.
#[derive(Clone, Copy)]
struct ServerView {
    limit: Option<u32>,
    remaining: u32,
    at: Instant,
    sent_since: u32,
}

impl RateBudget {
    pub fn new(config: BudgetConfig) -> Result<Self, String> {
        config.validate()?;
        let spacing = if config.min_spacing.is_zero() {
            Duration::from_nanos(1)
        } else {
            config.min_spacing
        };
        let quota = Quota::with_period(spacing)
            .ok_or_else(|| "budget min spacing must be longer than 0".to_string())?
            .allow_burst(NonZeroU32::MIN);
        Ok(Self {
            pace: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            state: Mutex::new(State {
                sent: VecDeque::new(),
                limit: config.requests,
                parked_until: None,
                parked_reason: None,
                consecutive_outages: 0,
                server: None,
                requests_made: 0,
                rate_limited_seen: 0,
                outages_seen: 0,
            }),
            config,
        })
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one request may go out, and counts it as sent. Cancel-safe: a caller
    /// that stops waiting has taken nothing.
    pub async fn acquire(&self) -> Slot {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match self.next_slot(&mut state, now) {
                    Some(until) => until,
                    None => {
                        state.sent.push_back(now);
                        state.requests_made += 1;
                        if let Some(view) = state.server.as_mut() {
                            view.sent_since += 1;
                        }
                        return Slot(());
                    }
                }
            };
            tokio::time::sleep_until(wait).await;
        }
    }

    /// `None` if a request may go now, else the earliest instant worth checking again. Only the
    /// last check (the pace) consumes anything, so a refused request costs nothing.
    fn next_slot(&self, state: &mut State, now: Instant) -> Option<Instant> {
        if let Some(until) = state.parked_until {
            if until > now {
                return Some(until);
            }
            state.parked_until = None;
            state.parked_reason = None;
        }
        let window = self.config.window_with_slack();
        while state
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            state.sent.pop_front();
        }
        if state.sent.len() >= state.limit as usize {
            return state.sent.front().map(|oldest| *oldest + window);
        }
        if let Some(view) = state.server {
            let reset = view.at + window;
            if now >= reset {
                state.server = None;
            } else if view.sent_since >= view.remaining {
                // The server says its window is spent, whatever we counted ourselves.
                return Some(reset);
            }
        }
        match self.pace.check() {
            Ok(()) => None,
            Err(not_until) => Some(now + not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Feeds back what a successful (non-429) response's headers said.
    pub fn observe(&self, headers: &RateHeaders) {
        let mut state = self.lock();
        state.consecutive_outages = 0;
        if let Some(limit) = headers.limit {
            // A server that admits to less than we planned for wins; one claiming more does
            // not (AniList's headers say 90 while it enforces 30).
            state.limit = self.config.requests.min(limit.max(1));
        }
        if let Some(remaining) = headers.remaining {
            state.server = Some(ServerView {
                limit: headers.limit,
                remaining,
                at: Instant::now(),
                sent_since: 0,
            });
        }
    }

    /// A 429: park every caller until `retry_after` plus the margin has passed.
    pub fn on_rate_limited(&self, retry_after: Duration) -> Duration {
        let pause = retry_after + self.config.retry_after_margin;
        let mut state = self.lock();
        state.rate_limited_seen += 1;
        Self::park(&mut state, pause, ParkReason::RateLimited);
        // After a ban the server starts a fresh window.
        state.server = None;
        pause
    }

    /// A 403 outage: park every caller for a pause that doubles while the outage lasts, so
    /// the workers back off as one instead of each probing a dead API.
    pub fn on_outage(&self) -> Duration {
        let mut state = self.lock();
        state.outages_seen += 1;
        let doublings = state.consecutive_outages.min(16);
        state.consecutive_outages += 1;
        let pause = self
            .config
            .outage_pause_min
            .saturating_mul(1u32 << doublings)
            .min(self.config.outage_pause_max);
        Self::park(&mut state, pause, ParkReason::Outage);
        pause
    }

    fn park(state: &mut State, pause: Duration, reason: ParkReason) {
        let until = Instant::now() + pause;
        if state.parked_until.is_none_or(|current| current < until) {
            state.parked_until = Some(until);
            state.parked_reason = Some(reason);
        }
    }

    /// A snapshot for the status view and ETAs.
    pub fn state(&self) -> BudgetState {
        let state = self.lock();
        let now = Instant::now();
        let window = self.config.window_with_slack();
        let used = state
            .sent
            .iter()
            .filter(|t| now.duration_since(**t) < window)
            .count() as u32;
        let parked_for = state.parked_until.filter(|u| *u > now).map(|u| u - now);
        let per_minute_window = f64::from(state.limit) * 60.0 / window.as_secs_f64();
        let per_minute_pace = 60.0 / self.config.min_spacing.as_secs_f64().max(1e-9);
        BudgetState {
            requests_made: state.requests_made,
            rate_limited_seen: state.rate_limited_seen,
            outages_seen: state.outages_seen,
            limit_per_window: state.limit,
            window_secs: self.config.window.as_secs_f64(),
            used_in_window: used,
            pace_per_minute: if parked_for.is_some() {
                0.0
            } else {
                per_minute_window.min(per_minute_pace)
            },
            parked_for_ms: parked_for.map(|d| d.as_millis() as u64),
            parked_until: parked_for.map(|d| SystemTime::now() + d),
            parked_reason: parked_for.and(state.parked_reason),
            server_limit: state.server.and_then(|v| v.limit),
            server_remaining: state.server.map(|v| v.remaining),
        }
    }
}
