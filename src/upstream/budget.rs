//! The one AniList budget every caller shares, across threads AND processes: its state lives
//! in a ledger (the store, for a real data dir), so no number of processes, restarts or
//! `fetch` calls can exceed it or send during a ban. The rules are in `crate::ledger`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::ledger::{
    LedgerOp, LedgerOutcome, LedgerRules, ParkReason, UpstreamState, UpstreamStatus,
};
use crate::store::{Store, StoreError};

/// How much a budget allows. `requests` per `window` is the long-term limit; `min_spacing` the
/// shortest gap between two requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetConfig {
    pub requests: u32,
    pub window: Duration,
    pub min_spacing: Duration,
    /// Added to every server `Retry-After` before anyone may send again.
    pub retry_after_margin: Duration,
    /// First pause before a probe of a down AniList; doubles after each failed probe, up to
    /// `outage_pause_max`.
    pub outage_pause_min: Duration,
    pub outage_pause_max: Duration,
    /// The longest any park may last (a `Retry-After` beyond it is cut to it).
    pub max_park: Duration,
    /// How long a probe holds the others back (its request's timeout and a margin).
    pub probe_hold: Duration,
}

impl BudgetConfig {
    /// The ledger's rules. The window gets 1/30 of slack (2 s in a minute): a request sent at t
    /// may arrive a little later, so arrivals can bunch up by the latency jitter.
    pub(crate) fn rules(&self) -> LedgerRules {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        LedgerRules {
            requests: self.requests.max(1),
            window_ms: ms(self.window + self.window / 30).max(1),
            min_spacing_ms: ms(self.min_spacing),
            retry_after_margin_ms: ms(self.retry_after_margin),
            outage_pause_min_ms: ms(self.outage_pause_min),
            outage_pause_max_ms: ms(self.outage_pause_max.min(self.max_park)),
            max_park_ms: ms(self.max_park),
            probe_hold_ms: ms(self.probe_hold),
        }
    }
}

/// What AniList's rate-limit headers said about a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub retry_after: Option<Duration>,
}

impl RateHeaders {
    /// Reads the headers through `get`, so reqwest's map and recorded JSON both work.
    /// Unparseable values are ignored rather than trusted.
    pub(crate) fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u32>().ok());
        Self {
            limit: num("x-ratelimit-limit"),
            remaining: num("x-ratelimit-remaining"),
            retry_after: get("retry-after").and_then(|v| retry_after(v, SystemTime::now())),
        }
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay seconds, or an HTTP date, as the time
/// left until then (nothing for a date already past). Anything else is ignored.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The budget as a status view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// Requests sent by every process sharing this budget.
    pub requests_made: u64,
    pub rate_limited_seen: u64,
    pub outages_seen: u64,
    /// The limit in force now: the configured one, or lower if the server said so.
    pub limit_per_window: u32,
    pub window_secs: f64,
    pub used_in_window: u32,
    pub min_spacing_ms: u64,
    /// Requests a minute the budget allows at the moment, all limits considered (0 while
    /// parked).
    pub pace_per_minute: f64,
    pub parked_for_ms: Option<u64>,
    /// How long until the next request may go under the window and the spacing (or the
    /// park); `None` when one may go now.
    #[serde(default)]
    pub next_slot_in_ms: Option<u64>,
    /// When the park ends (Unix ms).
    pub parked_until_ms: Option<i64>,
    pub parked_reason: Option<ParkReason>,
    pub server_limit: Option<u32>,
    pub server_remaining: Option<u32>,
    /// The most levels of relations a request walks until `walk_cap_until_ms`, lowered by a
    /// deep query AniList failed; `None` while the configured depth holds.
    #[serde(default)]
    pub walk_cap: Option<u32>,
    #[serde(default)]
    pub walk_cap_until_ms: Option<i64>,
}

/// A change every caller of the budget cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BudgetChange {
    Parked {
        until_ms: i64,
        reason: ParkReason,
    },
    Resumed,
    UpstreamDown {
        state: UpstreamState,
        message: String,
        retry_at_ms: Option<i64>,
    },
    UpstreamUp,
}

/// Where the budget's state lives. The store implements it for real data dirs; the memory
/// ledger serves a process that has no store.
#[async_trait]
pub(crate) trait BudgetLedger: Send + Sync {
    async fn apply(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError>;
}

/// The store as the budget's ledger: every process sharing the store shares one budget.
pub(crate) struct StoreLedger(pub(crate) Store);

#[async_trait]
impl BudgetLedger for StoreLedger {
    async fn apply(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        self.0.budget(op, rules, now_ms).await
    }
}

/// Proof that the budget let one request go: spend it on exactly one request. Holding one
/// lets a batcher choose WHICH ids go out at the moment the slot opens.
#[must_use = "a slot is one request the budget already counted"]
#[derive(Debug)]
pub(crate) struct Slot {
    /// When the ledger counted it (its clock), so a request that never left can be uncounted.
    taken_at_ms: i64,
    /// The most levels of relations this request may walk, if a failed deep query lowered it
    /// for every process.
    walk_cap: Option<usize>,
}

/// The budget of one upstream. Clone the `Arc` into every worker.
pub(crate) struct RateBudget {
    config: BudgetConfig,
    rules: LedgerRules,
    ledger: Arc<dyn BudgetLedger>,
    clock: Arc<dyn Clock>,
    changes: broadcast::Sender<BudgetChange>,
    /// The park this process last reported, so each park and resume is told once.
    reported: Mutex<Option<(i64, ParkReason)>>,
    /// The upstream state this process last reported (down or not).
    reported_upstream: Mutex<UpstreamState>,
    /// The state as of the last operation, for ETAs that must not cost a query.
    last: Mutex<Option<(BudgetState, UpstreamStatus)>>,
    /// Slots the ledger granted this process in a block, not yet spent.
    spare: Mutex<Spare>,
}

/// Slots a block take granted beyond the one it spent at once. The ledger counted them all as
/// sent when they were granted, so they are spent from memory without a write transaction
/// each, but only for as long as the window's slack ([`RateBudget::spare_life_ms`]): a slot
/// counted at t and spent a moment later still leaves the window before the server's does.
#[derive(Debug, Default)]
struct Spare {
    left: u32,
    /// When the ledger granted them, on the ledger's clock (what `Unsent` must name).
    taken_at_ms: i64,
    /// When they were kept, on this process's clock (what their life is measured on).
    kept_at_ms: i64,
    walk_cap: Option<u32>,
}

/// The most slots one background take asks the ledger for. The ledger grants more than one
/// only while they could all go now (no spacing, no server count spent, no probe, no click
/// waiting, under half the window), so this matters only to a budget with room to spare: a
/// local fake, or a mirror without AniList's spacing. 8 cut the budget's write transactions
/// to about one per 8 requests at 100k embedded (see docs/benchmarks.md).
const BLOCK: u32 = 8;
/// The longest a spare slot is kept, if the window's slack is longer.
const SPARE_FOR_AT_MOST_MS: i64 = 1_000;

/// A refused take is tried again at least this often, so a park lifted or shortened by
/// another process is noticed.
const RECHECK_AT_MOST: Duration = Duration::from_secs(5);
/// How long a request waits for a budget it cannot read (its database gone for now) before
/// its attempt fails as a transient error.
const WAIT_FOR_THE_LEDGER: Duration = Duration::from_secs(60);

impl RateBudget {
    pub(crate) fn new(
        config: BudgetConfig,
        ledger: Arc<dyn BudgetLedger>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (changes, _) = broadcast::channel(64);
        Self {
            rules: config.rules(),
            config,
            ledger,
            clock,
            changes,
            reported: Mutex::new(None),
            reported_upstream: Mutex::new(UpstreamState::Ok),
            last: Mutex::new(None),
            spare: Mutex::new(Spare::default()),
        }
    }

    fn spare(&self) -> MutexGuard<'_, Spare> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a spare slot may wait to be spent: the window's slack (a request counted at t
    /// and sent this much later still leaves the window before AniList's count does), at most
    /// a second.
    fn spare_life_ms(&self) -> i64 {
        let window = i64::try_from(self.config.window.as_millis()).unwrap_or(i64::MAX);
        (self.rules.window_ms - window).clamp(0, SPARE_FOR_AT_MOST_MS)
    }

    /// A slot granted earlier in a block, if one is left and still fresh.
    fn spare_slot(&self) -> Option<Slot> {
        let mut spare = self.spare();
        if spare.left == 0 {
            return None;
        }
        let age = self.clock.now_ms().saturating_sub(spare.kept_at_ms);
        if !(0..self.spare_life_ms()).contains(&age) {
            spare.left = 0;
            return None;
        }
        spare.left -= 1;
        Some(Slot::counted(spare.taken_at_ms, spare.walk_cap))
    }

    /// Spare slots are spent only while the budget is as free as when they were granted: a
    /// park, an AniList that is not answering, a full window or a server count spent (another
    /// process's doing, say), or a changed walk depth drops them.
    fn forget_spare_unless_free(&self, outcome: &LedgerOutcome) {
        let mut spare = self.spare();
        if spare.left > 0
            && (!free(outcome) || outcome.walk_cap.map(|cap| cap.levels) != spare.walk_cap)
        {
            spare.left = 0;
        }
    }

    /// A budget kept in this process's memory only.
    #[cfg(test)]
    pub(crate) fn in_memory(config: BudgetConfig, clock: Arc<dyn Clock>) -> Self {
        Self::new(config, Arc::new(memory::MemoryLedger::default()), clock)
    }

    /// Parks and resumes as they happen (as this process learns of them).
    pub(crate) fn changes(&self) -> broadcast::Receiver<BudgetChange> {
        self.changes.subscribe()
    }

    fn reported(&self) -> MutexGuard<'_, Option<(i64, ParkReason)>> {
        self.reported.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn op(&self, op: LedgerOp) -> Result<LedgerOutcome, StoreError> {
        let outcome = self
            .ledger
            .apply(op, &self.rules, self.clock.now_ms())
            .await?;
        self.report(&outcome);
        self.forget_spare_unless_free(&outcome);
        let state = (self.describe(&outcome), describe_upstream(&outcome));
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        Ok(outcome)
    }

    /// The state as of the last operation of this process, if any.
    pub(crate) fn last_state(&self) -> Option<BudgetState> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(budget, _)| budget.clone())
    }

    /// AniList's state as of the last operation of this process, if any.
    pub(crate) fn last_upstream(&self) -> Option<UpstreamStatus> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, upstream)| upstream.clone())
    }

    /// Tells subscribers about a park this process had not seen, or the end of one.
    fn report(&self, outcome: &LedgerOutcome) {
        let mut reported = self.reported();
        match (outcome.parked, *reported) {
            (Some(park), seen) if seen != Some(park) => {
                *reported = Some(park);
                let _ = self.changes.send(BudgetChange::Parked {
                    until_ms: park.0,
                    reason: park.1,
                });
            }
            (None, Some(_)) => {
                *reported = None;
                let _ = self.changes.send(BudgetChange::Resumed);
            }
            _ => {}
        }
        drop(reported);
        let mut upstream = self
            .reported_upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = outcome.upstream.state;
        if now.is_down() && *upstream != now {
            let _ = self.changes.send(BudgetChange::UpstreamDown {
                state: now,
                message: outcome.upstream.message.clone().unwrap_or_default(),
                retry_at_ms: outcome.parked.map(|(until, _)| until),
            });
        } else if !now.is_down() && upstream.is_down() {
            let _ = self.changes.send(BudgetChange::UpstreamUp);
        }
        *upstream = now;
    }

    /// Waits until one request may go out, and counts it as sent. A budget that cannot be
    /// read because the database is gone for now is asked again for up to a minute first.
    /// Cancel-safe: a caller that stops waiting has taken nothing. Waiting holds no database
    /// connection.
    pub(crate) async fn acquire(&self) -> Result<Slot, StoreError> {
        self.acquire_for(false).await
    }

    /// [`RateBudget::acquire`] for a request that carries a click (`urgent`): it claims the
    /// next slot ahead of every background request, in every process sharing the budget.
    /// A slot left from an earlier block goes first, a click's too: it is already counted.
    pub(crate) async fn acquire_for(&self, urgent: bool) -> Result<Slot, StoreError> {
        if let Some(slot) = self.spare_slot() {
            return Ok(slot);
        }
        let take = if urgent {
            LedgerOp::TakeUrgent
        } else {
            LedgerOp::Take { most: BLOCK }
        };
        let mut unreachable_for = Duration::ZERO;
        loop {
            let outcome = match self.op(take.clone()).await {
                Ok(outcome) => outcome,
                // The database holding the budget is gone for now (restarting, out of
                // connections): no slot can be known taken, so none is spent; ask again.
                Err(e) if e.failure().passes() && unreachable_for < WAIT_FOR_THE_LEDGER => {
                    let pause = Duration::from_millis(250);
                    tokio::time::sleep(pause).await;
                    unreachable_for += pause;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if outcome.granted {
                if outcome.extra > 0 && free(&outcome) {
                    *self.spare() = Spare {
                        left: outcome.extra,
                        taken_at_ms: outcome.now_ms,
                        kept_at_ms: self.clock.now_ms(),
                        walk_cap: outcome.walk_cap.map(|cap| cap.levels),
                    };
                }
                return Ok(Slot::counted(
                    outcome.now_ms,
                    outcome.walk_cap.map(|cap| cap.levels),
                ));
            }
            // Measured on the clock the decision was made on (the database server's, for a
            // shared database), so machines whose clocks differ wait the same.
            let now = outcome.now_ms;
            let wait_ms = outcome.retry_at_ms.unwrap_or(now + 1).saturating_sub(now);
            let wait = Duration::from_millis(u64::try_from(wait_ms.max(1)).unwrap_or(1));
            tokio::time::sleep(wait.min(RECHECK_AT_MOST)).await;
        }
    }

    /// Feeds back what a successful (non-429) response's headers said.
    pub(crate) async fn observe(&self, headers: &RateHeaders) -> Result<(), StoreError> {
        self.op(LedgerOp::Observe {
            limit: headers.limit,
            remaining: headers.remaining,
        })
        .await
        .map(|_| ())
    }

    /// A 429: park every caller, in every process, until `retry_after` plus the margin. The
    /// ledger cuts any park to `max_park`, so one bad answer cannot stop every process for a
    /// day; a `Retry-After` beyond it is suspicious (AniList says 60 s) and logged here.
    pub(crate) async fn on_rate_limited(
        &self,
        retry_after: Duration,
    ) -> Result<Duration, StoreError> {
        if retry_after > self.config.max_park {
            tracing::warn!(
                asked_secs = retry_after.as_secs(),
                cap_secs = self.config.max_park.as_secs(),
                "a 429 asked every process to wait {} s, more than anilist.max_park_secs: \
                 suspicious (AniList asks for 60 s); waiting {} s",
                retry_after.as_secs(),
                self.config.max_park.as_secs()
            );
        }
        let retry_after_ms = i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX);
        let outcome = self.op(LedgerOp::RateLimited { retry_after_ms }).await?;
        Ok(self.left(outcome))
    }

    /// AniList is down (`state`, with its last word): park every caller, in every process,
    /// until one probe may go, for a pause that doubles while it lasts; the workers back off
    /// as one instead of each asking a dead API.
    pub(crate) async fn on_down(
        &self,
        state: UpstreamState,
        message: String,
    ) -> Result<Duration, StoreError> {
        let outcome = self.op(LedgerOp::Down { state, message }).await?;
        Ok(self.left(outcome))
    }

    /// A query walking more than one level failed as deep queries do: every process walks at
    /// most `levels` levels per request for `lasting`.
    pub(crate) async fn lower_walk(
        &self,
        levels: usize,
        lasting: Duration,
    ) -> Result<(), StoreError> {
        self.op(LedgerOp::LowerWalk {
            levels: u32::try_from(levels).unwrap_or(1),
            for_ms: i64::try_from(lasting.as_millis()).unwrap_or(i64::MAX),
        })
        .await
        .map(|_| ())
    }

    /// The request of this slot never reached AniList (a refused connect, DNS): it is not
    /// counted, in any process.
    pub(crate) async fn unsent(&self, slot: SlotTime) -> Result<(), StoreError> {
        self.op(LedgerOp::Unsent { sent_at_ms: slot.0 })
            .await
            .map(|_| ())
    }

    fn left(&self, outcome: LedgerOutcome) -> Duration {
        let now = outcome.now_ms;
        outcome
            .parked
            .map(|(until, _)| Duration::from_millis(u64::try_from(until - now).unwrap_or(0)))
            .unwrap_or_default()
    }

    /// A snapshot of the budget alone.
    #[cfg(test)]
    pub(crate) async fn state(&self) -> Result<BudgetState, StoreError> {
        let outcome = self.op(LedgerOp::Read).await?;
        Ok(self.describe(&outcome))
    }

    /// The budget and AniList's state, from one read.
    pub(crate) async fn states(&self) -> Result<(BudgetState, UpstreamStatus), StoreError> {
        let outcome = self.op(LedgerOp::Read).await?;
        Ok((self.describe(&outcome), describe_upstream(&outcome)))
    }

    fn describe(&self, outcome: &LedgerOutcome) -> BudgetState {
        let now = outcome.now_ms;
        let s = outcome.snapshot;
        let parked = outcome.parked.filter(|(until, _)| *until > now);
        let window_secs = self.rules.window_ms as f64 / 1000.0;
        let per_minute_window = f64::from(s.limit) * 60.0 / window_secs.max(1e-9);
        let per_minute_pace = 60_000.0 / (self.rules.min_spacing_ms.max(1) as f64);
        BudgetState {
            requests_made: s.requests_made,
            rate_limited_seen: s.rate_limited_seen,
            outages_seen: s.outages_seen,
            limit_per_window: s.limit,
            window_secs: self.config.window.as_secs_f64(),
            used_in_window: s.used_in_window,
            min_spacing_ms: u64::try_from(self.rules.min_spacing_ms).unwrap_or(0),
            pace_per_minute: if parked.is_some() {
                0.0
            } else {
                per_minute_window.min(per_minute_pace)
            },
            parked_for_ms: parked.map(|(until, _)| u64::try_from(until - now).unwrap_or(0)),
            next_slot_in_ms: outcome
                .next_slot_ms
                .filter(|at| *at > now)
                .map(|at| u64::try_from(at - now).unwrap_or(0)),
            parked_until_ms: parked.map(|(until, _)| until),
            parked_reason: parked.map(|(_, reason)| reason),
            server_limit: s.server_limit,
            server_remaining: s.server_remaining,
            walk_cap: outcome.walk_cap.map(|cap| cap.levels),
            walk_cap_until_ms: outcome.walk_cap.map(|cap| cap.until_ms),
        }
    }
}

/// When a slot was counted: kept by whoever spends the slot, so a request that never left
/// can be uncounted after the slot itself is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotTime(i64);

impl Slot {
    /// A slot the ledger counted at `taken_at_ms`, walking at most `walk_cap` levels if set.
    fn counted(taken_at_ms: i64, walk_cap: Option<u32>) -> Self {
        Self {
            taken_at_ms,
            walk_cap: walk_cap.map(|levels| usize::try_from(levels).unwrap_or(1)),
        }
    }

    pub(crate) fn time(&self) -> SlotTime {
        SlotTime(self.taken_at_ms)
    }

    /// The most levels this request may walk, if every process was told to walk fewer.
    pub(crate) fn walk_cap(&self) -> Option<usize> {
        self.walk_cap
    }
}

/// The next request may go at once, as of `outcome`: nothing parked, AniList answering.
fn free(outcome: &LedgerOutcome) -> bool {
    outcome.parked.is_none()
        && outcome.upstream.state == UpstreamState::Ok
        && outcome.next_slot_ms.is_none_or(|at| at <= outcome.now_ms)
}

/// AniList's state for a status view, as of one operation.
fn describe_upstream(outcome: &LedgerOutcome) -> UpstreamStatus {
    let now = outcome.now_ms;
    let view = &outcome.upstream;
    let retry_at_ms = match view.state {
        UpstreamState::Ok => None,
        _ => outcome
            .parked
            .map(|(until, _)| until)
            .filter(|until| *until > now),
    };
    UpstreamStatus {
        state: view.state,
        message: view.message.clone(),
        since_ms: view.since_ms,
        retry_at_ms,
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! The budget's rules over state kept in memory, for tests that need no store.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::BudgetLedger;
    use crate::ledger::{
        LedgerOp, LedgerOutcome, LedgerRow, LedgerRules, WindowView, apply, window_start,
    };
    use crate::store::StoreError;

    /// A ledger in this process's memory: the same rules, shared by this process only.
    #[derive(Default)]
    pub(crate) struct MemoryLedger {
        state: Mutex<(LedgerRow, VecDeque<i64>)>,
    }

    #[async_trait]
    impl BudgetLedger for MemoryLedger {
        async fn apply(
            &self,
            op: LedgerOp,
            rules: &LedgerRules,
            now_ms: i64,
        ) -> Result<LedgerOutcome, StoreError> {
            let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (row, sends) = &mut *guard;
            let start = window_start(rules, now_ms);
            while sends.front().is_some_and(|t| *t < start) {
                sends.pop_front();
            }
            for sent in sends.iter_mut().filter(|t| **t > now_ms) {
                *sent = now_ms;
            }
            if let LedgerOp::Unsent { sent_at_ms } = op
                && let Some(i) = sends.iter().position(|t| *t == sent_at_ms)
            {
                sends.remove(i);
            }
            let view = WindowView {
                in_window: u32::try_from(sends.len()).unwrap_or(u32::MAX),
                oldest_ms: sends.front().copied(),
            };
            let outcome = apply(op, rules, now_ms, row, view);
            if outcome.granted {
                sends.extend((0..=outcome.extra).map(|_| now_ms));
            }
            Ok(outcome)
        }
    }
}
