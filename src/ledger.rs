//! The AniList budget's rules, as pure functions over its shared state, and that state's types.
//! It stands on the ground floor because two layers share it: every store backend keeps the
//! state where all its processes see it (a table in SQLite, rows in PostgreSQL; a mutex in
//! memory) and applies one operation at a time in a transaction through [`apply`], while
//! `upstream/budget.rs` decides what to ask for. Neither has to import the other for it.
//!
//! Why a rolling window and not a plain GCRA: AniList counts requests in a fixed one-minute
//! window. A GCRA of 30/min with a burst of 30 lets 30 go at once and then refills, so 52 can
//! land inside one minute and the 31st is banned. Counting the sends of the last window
//! guarantees at most `requests` in ANY window, so a walk may spend the whole minute's budget
//! on round trips without ever crossing the server's count. The minimum spacing between two
//! sends keeps under AniList's undocumented burst limiter.
//!
//! Beside the budget lives AniList's state as every process sees it ([`UpstreamState`]).
//! While AniList is down, everyone is parked until the next probe; the first take after the
//! park IS the probe, and parks the others until its answer (or its hold) is in, so one
//! request at a time asks a dead upstream, across every process.

use serde::{Deserialize, Serialize};

/// The budget's limits in the ledger's unit (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerRules {
    pub requests: u32,
    /// The window plus slack: a request sent at t may arrive a little later, so arrivals can
    /// bunch up by the latency jitter.
    pub window_ms: i64,
    pub min_spacing_ms: i64,
    pub retry_after_margin_ms: i64,
    pub outage_pause_min_ms: i64,
    pub outage_pause_max_ms: i64,
    /// The longest park in force at any moment, whatever asked for it (a stored park from
    /// before the cap, too).
    pub max_park_ms: i64,
    /// How long a probe of a down upstream holds the others back: its whole-request timeout
    /// and a margin, so a probe whose process died costs the others no more than that.
    pub probe_hold_ms: i64,
}

/// One thing that happened to, or is asked of, the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LedgerOp {
    /// May a request go now? If so it is counted as sent, and so are up to `most - 1` more
    /// slots granted with it, which the caller keeps in memory and spends without a write
    /// transaction each. More than one is granted only while the next slot could go now too,
    /// by the same rule the first is judged by, so a spacing (AniList's), a spent server
    /// count, a probe or a click's claim keeps the block at one; and extra slots stop at half
    /// the window's limit, so one process never holds the whole minute.
    Take { most: u32 },
    /// A `Take` for a request that carries a click. If it may not go now, it claims the next
    /// slot: every plain `Take`, in every process, is refused until the click's request went
    /// out or the claim lapsed (its process died), so a click waits for one slot, not for
    /// every background batch that asks at the same moment.
    TakeUrgent,
    /// AniList answered (and what its rate-limit headers said): it is up.
    Observe {
        limit: Option<u32>,
        remaining: Option<u32>,
    },
    /// A 429: park everyone for `retry_after_ms` plus the margin.
    RateLimited { retry_after_ms: i64 },
    /// AniList is down in this way: park everyone until a probe, for a pause that doubles
    /// while it lasts (up to the max).
    Down {
        state: UpstreamState,
        message: String,
    },
    /// The request granted at `sent_at_ms` never reached AniList (a refused connect, a DNS
    /// failure): it spends nothing.
    Unsent { sent_at_ms: i64 },
    /// A query walking more than one level of relations failed as deep queries do (a 5xx, a
    /// complexity refusal, no answer in time): every process walks at most `levels` levels
    /// per request for `for_ms`.
    LowerWalk { levels: u32, for_ms: i64 },
    /// Only read the state.
    Read,
}

/// Why every caller is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParkReason {
    /// AniList answered 429: wait out its `Retry-After` plus a margin.
    RateLimited,
    /// AniList refused (403, API disabled): a pause until the next probe, doubling while the
    /// outage lasts.
    Outage,
    /// AniList could not be reached (connect, DNS, TLS, timeout): a pause until the next probe.
    Unreachable,
    /// What answered is not AniList (an HTML page, a bare 404): a pause until the next probe.
    NotAnilist,
}

impl ParkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Outage => "outage",
            Self::Unreachable => "unreachable",
            Self::NotAnilist => "not_anilist",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "rate_limited" => Some(Self::RateLimited),
            "outage" => Some(Self::Outage),
            "unreachable" => Some(Self::Unreachable),
            "not_anilist" => Some(Self::NotAnilist),
            _ => None,
        }
    }
}

/// AniList as every process on the data dir (or database) sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpstreamState {
    /// Answering.
    #[default]
    Ok,
    /// Rate limited (a 429): every process waits until `retry_at_ms`.
    Parked,
    /// Not reachable: a refused connect, DNS, TLS, or a request that timed out.
    Unreachable,
    /// AniList refused with 403 (its "temporarily disabled" sentence is the message).
    Refused,
    /// Something answered that is not AniList's GraphQL JSON: an HTML page, a wrong content
    /// type, a bare 404 (a wrong URL, a proxy, a captive portal).
    NotAnilist,
}

impl UpstreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Parked => "parked",
            Self::Unreachable => "unreachable",
            Self::Refused => "refused",
            Self::NotAnilist => "not_anilist",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ok" => Some(Self::Ok),
            "parked" => Some(Self::Parked),
            "unreachable" => Some(Self::Unreachable),
            "refused" => Some(Self::Refused),
            "not_anilist" => Some(Self::NotAnilist),
            _ => None,
        }
    }

    /// Down: nothing but a probe goes out until a probe gets an answer.
    pub fn is_down(self) -> bool {
        matches!(self, Self::Unreachable | Self::Refused | Self::NotAnilist)
    }

    fn park_reason(self) -> ParkReason {
        match self {
            Self::Refused => ParkReason::Outage,
            Self::NotAnilist => ParkReason::NotAnilist,
            Self::Parked => ParkReason::RateLimited,
            Self::Ok | Self::Unreachable => ParkReason::Unreachable,
        }
    }
}

/// AniList's state as every process sharing the budget sees it (`status --json`'s
/// `upstream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub state: UpstreamState,
    /// What AniList (or whatever answered in its place) last said, word for word where it
    /// said something; `None` while all is well.
    pub message: Option<String>,
    /// Since when it has been in this state (Unix ms), if known.
    pub since_ms: Option<i64>,
    /// When the next request (the probe, for a down AniList) may go (Unix ms); `None` if now.
    pub retry_at_ms: Option<i64>,
}

impl UpstreamStatus {
    /// Down: unreachable, refused, or not AniList. Clicks answer at once from the store.
    pub fn is_down(&self) -> bool {
        self.state.is_down()
    }
}

/// The upstream part of an outcome: the state, since when, and AniList's last word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamView {
    pub state: UpstreamState,
    pub since_ms: Option<i64>,
    pub message: Option<String>,
}

/// The persistent part of the budget: one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LedgerRow {
    pub parked_until_ms: Option<i64>,
    pub parked_reason: Option<ParkReason>,
    pub consecutive_outages: u32,
    pub server_limit: Option<u32>,
    pub server_remaining: Option<u32>,
    pub server_at_ms: Option<i64>,
    pub server_sent_since: u32,
    pub last_sent_ms: Option<i64>,
    /// A waiting click's claim on the next slot, until this time.
    pub urgent_claim_until_ms: Option<i64>,
    pub requests_made: u64,
    pub rate_limited_seen: u64,
    pub outages_seen: u64,
    pub upstream: UpstreamView,
    /// The most levels of relations a request may walk, taught by a failed deep query, and
    /// until when.
    pub walk_cap: Option<WalkCap>,
}

/// A lowered walk depth every process keeps to until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkCap {
    pub levels: u32,
    pub until_ms: i64,
}

/// The sends of the current window, as the backend counted them (older ones already gone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowView {
    pub in_window: u32,
    pub oldest_ms: Option<i64>,
}

/// What an operation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LedgerOutcome {
    /// The time the decision was made at (the backend's clock; waits are measured from it).
    pub now_ms: i64,
    /// A `Take` was granted: the backend records a send at `now`.
    pub granted: bool,
    /// Slots granted beyond the first by a `Take` (all sent at `now`: the backend
    /// records `1 + extra` sends).
    pub extra: u32,
    /// When a refused `Take` is worth trying again.
    pub retry_at_ms: Option<i64>,
    /// When the next request may go, as of after this operation (`None`: now). What a
    /// status view waits for: the window, the spacing, a park.
    pub next_slot_ms: Option<i64>,
    /// The park in force after this operation, if any.
    pub parked: Option<(i64, ParkReason)>,
    pub snapshot: LedgerSnapshot,
    pub upstream: UpstreamView,
    /// The lowered walk depth in force after this operation, if any.
    pub walk_cap: Option<WalkCap>,
}

/// The state for a status view, as of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerSnapshot {
    pub limit: u32,
    pub used_in_window: u32,
    pub requests_made: u64,
    pub rate_limited_seen: u64,
    pub outages_seen: u64,
    pub server_limit: Option<u32>,
    pub server_remaining: Option<u32>,
}

impl LedgerRules {
    /// The limit in force: the configured one, or lower if the server admitted to less.
    fn limit(&self, row: &LedgerRow) -> u32 {
        match row.server_limit {
            Some(server) => self.requests.min(server.max(1)),
            None => self.requests,
        }
    }
}

/// The oldest send time still inside the window at `now_ms`; the backend drops older ones
/// before counting.
pub(crate) fn window_start(rules: &LedgerRules, now_ms: i64) -> i64 {
    now_ms.saturating_sub(rules.window_ms) + 1
}

/// Applies `op` at `now_ms`. The caller persists `row` afterwards, and records a send at
/// `now_ms` if the outcome is granted.
pub(crate) fn apply(
    op: LedgerOp,
    rules: &LedgerRules,
    now_ms: i64,
    row: &mut LedgerRow,
    window: WindowView,
) -> LedgerOutcome {
    // A send, or a server answer, stamped later than now came from a clock ahead of this one
    // (another process, or this one before its clock stepped back). It counts as sent now:
    // waited for, it would stall every request until that clock's time came round.
    if row.last_sent_ms.is_some_and(|at| at > now_ms) {
        row.last_sent_ms = Some(now_ms);
    }
    if row.server_at_ms.is_some_and(|at| at > now_ms) {
        row.server_at_ms = Some(now_ms);
    }
    let window = WindowView {
        oldest_ms: window.oldest_ms.map(|oldest| oldest.min(now_ms)),
        ..window
    };
    let claim_longest = now_ms
        .saturating_add(rules.window_ms)
        .saturating_add(claim_hold_ms(rules));
    if row
        .urgent_claim_until_ms
        .is_some_and(|until| until > claim_longest)
    {
        row.urgent_claim_until_ms = Some(claim_longest);
    }
    if let Some(cap) = row.walk_cap.as_mut() {
        cap.until_ms = cap.until_ms.min(now_ms.saturating_add(rules.max_park_ms));
    }
    // No park outlasts the cap from now on, whoever stored it (a day-long Retry-After that an
    // older version kept would otherwise hold every process for that day).
    let longest = now_ms.saturating_add(rules.max_park_ms);
    if row.parked_until_ms.is_some_and(|until| until > longest) {
        row.parked_until_ms = Some(longest);
    }
    // A park that has run out is over (a 429's with it; a down upstream stays down until a
    // probe gets an answer); a server view older than a window is stale.
    if let Some(until) = row.parked_until_ms.filter(|until| *until <= now_ms) {
        row.parked_until_ms = None;
        row.parked_reason = None;
        if row.upstream.state == UpstreamState::Parked {
            row.upstream = UpstreamView {
                state: UpstreamState::Ok,
                since_ms: Some(until),
                message: None,
            };
        }
    }
    if row
        .server_at_ms
        .is_some_and(|at| now_ms >= at.saturating_add(rules.window_ms))
    {
        row.server_remaining = None;
        row.server_at_ms = None;
        row.server_sent_since = 0;
    }
    if row
        .urgent_claim_until_ms
        .is_some_and(|until| until <= now_ms)
    {
        row.urgent_claim_until_ms = None;
    }
    if row.walk_cap.is_some_and(|cap| cap.until_ms <= now_ms) {
        row.walk_cap = None;
    }
    let mut used = window.in_window;
    let mut granted = false;
    let mut extra = 0;
    let mut retry_at_ms = None;
    match op {
        LedgerOp::Take { most } => match (
            next_slot(rules, now_ms, row, window),
            row.urgent_claim_until_ms,
        ) {
            // A click claimed this slot: ask again once it has gone (a slot later).
            (None, Some(claim)) => {
                retry_at_ms = Some(claim.min(now_ms.saturating_add(rules.min_spacing_ms.max(1))));
            }
            (None, None) => {
                grant(rules, row, now_ms);
                granted = true;
                used += 1;
                let half = rules.limit(row) / 2;
                while extra + 1 < most.max(1) && used < half {
                    let sent = sent_now(window, used, now_ms);
                    if next_slot(rules, now_ms, row, sent).is_some() {
                        break;
                    }
                    grant(rules, row, now_ms);
                    used += 1;
                    extra += 1;
                }
            }
            (Some(at), _) => retry_at_ms = Some(at),
        },
        LedgerOp::TakeUrgent => match next_slot(rules, now_ms, row, window) {
            None => {
                grant(rules, row, now_ms);
                row.urgent_claim_until_ms = None;
                granted = true;
                used += 1;
            }
            Some(at) => {
                let hold = at.saturating_add(claim_hold_ms(rules));
                row.urgent_claim_until_ms =
                    Some(row.urgent_claim_until_ms.map_or(hold, |c| c.max(hold)));
                retry_at_ms = Some(at);
            }
        },
        LedgerOp::Observe { limit, remaining } => {
            row.consecutive_outages = 0;
            if row.upstream.state.is_down() {
                // The probe (or any request) got an answer: AniList is back for everyone.
                row.upstream = UpstreamView {
                    state: UpstreamState::Ok,
                    since_ms: Some(now_ms),
                    message: None,
                };
                if row.parked_reason != Some(ParkReason::RateLimited) {
                    row.parked_until_ms = None;
                    row.parked_reason = None;
                }
            }
            if let Some(limit) = limit {
                // A server that admits to less than we planned for wins; one claiming more
                // does not (AniList's headers say 90 while it enforces 30).
                row.server_limit = (limit < rules.requests).then_some(limit.max(1));
            }
            if let Some(remaining) = remaining {
                row.server_remaining = Some(remaining);
                row.server_at_ms = Some(now_ms);
                row.server_sent_since = 0;
            }
        }
        LedgerOp::RateLimited { retry_after_ms } => {
            row.rate_limited_seen += 1;
            let until = now_ms.saturating_add(
                retry_after_ms
                    .max(0)
                    .saturating_add(rules.retry_after_margin_ms)
                    .min(rules.max_park_ms),
            );
            park(row, until, ParkReason::RateLimited);
            // A 429 is an answer: AniList is reachable, only rate limited.
            row.upstream = UpstreamView {
                state: UpstreamState::Parked,
                since_ms: Some(now_ms),
                message: Some(format!(
                    "AniList's rate limit was hit: every process waits {} s",
                    (until - now_ms + 999) / 1000
                )),
            };
            // After a ban the server starts a fresh window.
            row.server_remaining = None;
            row.server_at_ms = None;
            row.server_sent_since = 0;
        }
        LedgerOp::Down { state, message } => {
            row.outages_seen += 1;
            let doublings = row.consecutive_outages.min(16);
            row.consecutive_outages = row.consecutive_outages.saturating_add(1);
            let pause = rules
                .outage_pause_min_ms
                .saturating_mul(1i64 << doublings)
                .min(rules.outage_pause_max_ms);
            let since = if row.upstream.state.is_down() {
                row.upstream.since_ms.unwrap_or(now_ms)
            } else {
                now_ms
            };
            row.upstream = UpstreamView {
                state,
                since_ms: Some(since),
                message: Some(message),
            };
            // The next probe replaces a probe's hold; only a longer 429 ban outlasts it.
            let until = now_ms.saturating_add(pause);
            let banned_longer = row.parked_reason == Some(ParkReason::RateLimited)
                && row.parked_until_ms.is_some_and(|current| current > until);
            if !banned_longer {
                row.parked_until_ms = Some(until);
                row.parked_reason = Some(state.park_reason());
            }
        }
        LedgerOp::Unsent { sent_at_ms } => {
            // The backend forgot the send before counting the window; the counter follows.
            row.requests_made = row.requests_made.saturating_sub(1);
            // A probe that never left holds nobody back: the next may go at once.
            let hold = sent_at_ms.saturating_add(rules.probe_hold_ms.max(1));
            if row.upstream.state.is_down() && row.parked_until_ms == Some(hold) {
                row.parked_until_ms = None;
                row.parked_reason = None;
            }
        }
        LedgerOp::LowerWalk { levels, for_ms } => {
            // The lower of two caps, for the longer of their times: a depth that failed is
            // not tried again sooner because a shallower one failed too.
            let until_ms = now_ms.saturating_add(for_ms.max(0));
            row.walk_cap = Some(match row.walk_cap {
                Some(cap) => WalkCap {
                    levels: cap.levels.min(levels.max(1)),
                    until_ms: cap.until_ms.max(until_ms),
                },
                None => WalkCap {
                    levels: levels.max(1),
                    until_ms,
                },
            });
        }
        LedgerOp::Read => {}
    }
    let after = if granted {
        sent_now(window, used, now_ms)
    } else {
        window
    };
    LedgerOutcome {
        now_ms,
        granted,
        extra,
        retry_at_ms,
        next_slot_ms: next_slot(rules, now_ms, row, after),
        parked: row.parked_until_ms.zip(row.parked_reason),
        snapshot: LedgerSnapshot {
            limit: rules.limit(row),
            used_in_window: used,
            requests_made: row.requests_made,
            rate_limited_seen: row.rate_limited_seen,
            outages_seen: row.outages_seen,
            server_limit: row.server_limit,
            server_remaining: row.server_remaining,
        },
        upstream: row.upstream.clone(),
        walk_cap: row.walk_cap,
    }
}

/// The window after `used` sends in all, the latest of them at `now_ms`.
fn sent_now(window: WindowView, used: u32, now_ms: i64) -> WindowView {
    WindowView {
        in_window: used,
        oldest_ms: window.oldest_ms.or(Some(now_ms)),
    }
}

/// Counts one request as sent at `now_ms`. While the upstream is down it is the probe: the
/// others wait for its answer, or for its hold to run out.
fn grant(rules: &LedgerRules, row: &mut LedgerRow, now_ms: i64) {
    row.last_sent_ms = Some(now_ms);
    row.requests_made += 1;
    if row.server_remaining.is_some() {
        row.server_sent_since += 1;
    }
    if row.upstream.state.is_down() {
        row.parked_until_ms = Some(now_ms.saturating_add(rules.probe_hold_ms.max(1)));
        row.parked_reason = Some(row.upstream.state.park_reason());
    }
}

/// How long past its slot a click's claim holds: long enough for its process to come back
/// and take the slot, short enough that a process that died with a claim costs the others
/// about a second.
fn claim_hold_ms(rules: &LedgerRules) -> i64 {
    rules.min_spacing_ms.saturating_mul(2).max(1_000)
}

/// `None` if a request may go now, else the earliest time worth asking again.
fn next_slot(rules: &LedgerRules, now_ms: i64, row: &LedgerRow, window: WindowView) -> Option<i64> {
    if let Some(until) = row.parked_until_ms {
        return Some(until);
    }
    if window.in_window >= rules.limit(row) {
        let oldest = window.oldest_ms.unwrap_or(now_ms);
        return Some(oldest.saturating_add(rules.window_ms).max(now_ms + 1));
    }
    if let (Some(remaining), Some(at)) = (row.server_remaining, row.server_at_ms)
        && row.server_sent_since >= remaining
    {
        // The server says its window is spent, whatever we counted ourselves.
        return Some(at.saturating_add(rules.window_ms));
    }
    if let Some(last) = row.last_sent_ms {
        let next = last.saturating_add(rules.min_spacing_ms);
        if next > now_ms {
            return Some(next);
        }
    }
    None
}

/// Parks everyone until `until`, unless a longer park is already in force.
fn park(row: &mut LedgerRow, until: i64, reason: ParkReason) {
    if row.parked_until_ms.is_none_or(|current| current < until) {
        row.parked_until_ms = Some(until);
        row.parked_reason = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(requests: u32) -> LedgerRules {
        LedgerRules {
            requests,
            window_ms: 60_000,
            min_spacing_ms: 500,
            retry_after_margin_ms: 1_000,
            outage_pause_min_ms: 5_000,
            outage_pause_max_ms: 60_000,
            max_park_ms: 900_000,
            probe_hold_ms: 22_000,
        }
    }

    fn down(state: UpstreamState) -> LedgerOp {
        LedgerOp::Down {
            state,
            message: format!("AniList is {}", state.as_str()),
        }
    }

    /// A reference ledger: the send log in a Vec, as a backend would keep it.
    struct Model {
        row: LedgerRow,
        sends: Vec<i64>,
    }

    impl Model {
        fn new() -> Self {
            Self {
                row: LedgerRow::default(),
                sends: Vec::new(),
            }
        }

        fn op(&mut self, op: LedgerOp, rules: &LedgerRules, now: i64) -> LedgerOutcome {
            if let LedgerOp::Unsent { sent_at_ms } = op
                && let Some(i) = self.sends.iter().position(|t| *t == sent_at_ms)
            {
                self.sends.remove(i);
            }
            let start = window_start(rules, now);
            self.sends.retain(|t| *t >= start);
            let view = WindowView {
                in_window: self.sends.len() as u32,
                oldest_ms: self.sends.iter().min().copied(),
            };
            let out = apply(op, rules, now, &mut self.row, view);
            if out.granted {
                self.sends.extend((0..=out.extra).map(|_| now));
            }
            out
        }
    }

    /// Drives takes at every ms a caller would retry at, and returns the grant times.
    fn drain(model: &mut Model, rules: &LedgerRules, from: i64, until: i64) -> Vec<i64> {
        drain_with(model, rules, LedgerOp::Take { most: 1 }, from, until)
    }

    /// `drain` with `take` (a block, say): one grant time per slot granted.
    fn drain_with(
        model: &mut Model,
        rules: &LedgerRules,
        take: LedgerOp,
        from: i64,
        until: i64,
    ) -> Vec<i64> {
        let mut now = from;
        let mut granted = Vec::new();
        while now < until {
            let out = model.op(take.clone(), rules, now);
            if out.granted {
                granted.extend((0..=out.extra).map(|_| now));
            } else {
                now = out.retry_at_ms.expect("a refused take says when to retry");
            }
        }
        granted
    }

    fn max_in_any_window(sends: &[i64], window: i64) -> usize {
        sends
            .iter()
            .map(|start| {
                sends
                    .iter()
                    .filter(|t| **t >= *start && **t < start + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn never_more_than_the_limit_in_any_window_and_spaced() {
        let r = rules(30);
        let mut m = Model::new();
        let sends = drain(&mut m, &r, 0, 300_000);
        assert_eq!(max_in_any_window(&sends, 60_000), 30);
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= 500), "{sends:?}");
        // The first 30 go back to back at the pace, not evenly over the minute.
        assert_eq!(sends[29], 29 * 500);
        // About 30 a minute over five minutes.
        assert!((145..=151).contains(&sends.len()), "{}", sends.len());
    }

    #[test]
    fn a_block_is_granted_only_while_all_may_go_now_and_half_the_window_is_left() {
        let block = LedgerOp::Take { most: 8 };
        let unspaced = LedgerRules {
            min_spacing_ms: 0,
            ..rules(30)
        };
        let mut m = Model::new();
        let first = m.op(block.clone(), &unspaced, 0);
        assert!(first.granted);
        assert_eq!(first.extra, 7);
        assert_eq!(first.snapshot.used_in_window, 8);
        assert_eq!(first.snapshot.requests_made, 8);
        // Extra slots stop at half the window's limit (15 of 30); a lone slot still goes.
        assert_eq!(m.op(block.clone(), &unspaced, 10).extra, 6);
        let lone = m.op(block.clone(), &unspaced, 20);
        assert!(lone.granted);
        assert_eq!(lone.extra, 0);
        assert_eq!(m.sends.len(), 16);
        // Never more than the limit in any window, however the blocks fall.
        let sends = drain_with(&mut m, &unspaced, block.clone(), 30, 300_000);
        let all: Vec<i64> = [vec![0; 8], vec![10; 7], vec![20], sends].concat();
        assert_eq!(max_in_any_window(&all, 60_000), 30);

        // AniList's spacing keeps every block at one slot.
        let mut m = Model::new();
        assert_eq!(m.op(block.clone(), &rules(30), 0).extra, 0);
        // So does a server that says only 2 are left, a click's claim, and a probe.
        let mut m = Model::new();
        m.op(
            LedgerOp::Observe {
                limit: None,
                remaining: Some(2),
            },
            &unspaced,
            0,
        );
        assert_eq!(m.op(block.clone(), &unspaced, 1).extra, 1);
        assert!(!m.op(block.clone(), &unspaced, 2).granted);
        let mut m = Model::new();
        m.row.urgent_claim_until_ms = Some(5_000);
        assert!(!m.op(block.clone(), &unspaced, 0).granted);
        let mut m = Model::new();
        m.op(down(UpstreamState::Refused), &unspaced, 0);
        let probe = m.op(block, &unspaced, 5_000);
        assert!(probe.granted);
        assert_eq!(probe.extra, 0);
    }

    #[test]
    fn a_429_parks_everyone_until_retry_after_plus_the_margin() {
        let r = rules(30);
        let mut m = Model::new();
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 0).granted);
        let out = m.op(
            LedgerOp::RateLimited {
                retry_after_ms: 60_000,
            },
            &r,
            1_000,
        );
        assert_eq!(out.parked, Some((62_000, ParkReason::RateLimited)));
        let refused = m.op(LedgerOp::Take { most: 1 }, &r, 61_999);
        assert!(!refused.granted);
        assert_eq!(refused.retry_at_ms, Some(62_000));
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 62_000).granted);
        assert_eq!(m.row.rate_limited_seen, 1);
    }

    #[test]
    fn no_park_outlasts_the_cap_whoever_asked_for_it() {
        let r = rules(30);
        let mut m = Model::new();
        // A day-long Retry-After parks for the cap (margin included), not a day.
        let out = m.op(
            LedgerOp::RateLimited {
                retry_after_ms: 86_400_000,
            },
            &r,
            1_000,
        );
        assert_eq!(
            out.parked,
            Some((1_000 + r.max_park_ms, ParkReason::RateLimited))
        );
        // A longer park already stored (an older version's) is cut at the next operation.
        m.row.parked_until_ms = Some(1_000_000_000);
        let read = m.op(LedgerOp::Read, &r, 5_000);
        assert_eq!(
            read.parked,
            Some((5_000 + r.max_park_ms, ParkReason::RateLimited))
        );
        assert!(
            m.op(LedgerOp::Take { most: 1 }, &r, 5_000 + r.max_park_ms)
                .granted
        );
    }

    #[test]
    fn outages_park_for_a_pause_that_doubles_up_to_the_max_and_resets_on_success() {
        let r = rules(30);
        let mut m = Model::new();
        let pauses: Vec<i64> = (0..6)
            .map(|i| {
                let now = i * 100_000;
                m.op(down(UpstreamState::Refused), &r, now)
                    .parked
                    .map(|(until, _)| until - now)
                    .unwrap()
            })
            .collect();
        assert_eq!(pauses, vec![5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
        m.op(
            LedgerOp::Observe {
                limit: None,
                remaining: None,
            },
            &r,
            700_000,
        );
        let again = m
            .op(down(UpstreamState::Refused), &r, 800_000)
            .parked
            .unwrap();
        assert_eq!(again.0 - 800_000, 5_000);
    }

    #[test]
    fn a_server_that_says_less_is_left_slows_the_budget_down() {
        let r = rules(30);
        let mut m = Model::new();
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 0).granted);
        m.op(
            LedgerOp::Observe {
                limit: Some(90),
                remaining: Some(1),
            },
            &r,
            100,
        );
        assert_eq!(
            m.row.server_limit, None,
            "a server claiming more than we plan does not win"
        );
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 600).granted);
        let refused = m.op(LedgerOp::Take { most: 1 }, &r, 1_200);
        assert_eq!(
            refused.retry_at_ms,
            Some(100 + 60_000),
            "the server's window is spent"
        );
        // A server admitting to less lowers the limit.
        let mut m = Model::new();
        let out = m.op(
            LedgerOp::Observe {
                limit: Some(10),
                remaining: None,
            },
            &r,
            0,
        );
        assert_eq!(out.snapshot.limit, 10);
        let sends = drain(&mut m, &r, 0, 60_000);
        assert_eq!(sends.len(), 10);
    }

    #[test]
    fn a_longer_park_is_never_shortened() {
        let r = rules(30);
        let mut m = Model::new();
        m.op(
            LedgerOp::RateLimited {
                retry_after_ms: 60_000,
            },
            &r,
            0,
        );
        let out = m.op(down(UpstreamState::Refused), &r, 1_000);
        assert_eq!(out.parked, Some((61_000, ParkReason::RateLimited)));
    }

    #[test]
    fn a_click_claims_the_next_slot_and_background_takes_wait_for_it() {
        let r = rules(30);
        let mut m = Model::new();
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 0).granted);
        let claim = m.op(LedgerOp::TakeUrgent, &r, 100);
        assert!(!claim.granted);
        assert_eq!(claim.retry_at_ms, Some(500));
        // At the slot a background take is refused: the click goes first.
        let background = m.op(LedgerOp::Take { most: 1 }, &r, 500);
        assert!(!background.granted);
        assert_eq!(background.retry_at_ms, Some(1_000));
        assert!(m.op(LedgerOp::TakeUrgent, &r, 510).granted);
        // The claim went with the click; the spacing holds for the next request.
        assert_eq!(
            m.op(LedgerOp::Take { most: 1 }, &r, 1_000).retry_at_ms,
            Some(1_010)
        );
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 1_010).granted);
    }

    #[test]
    fn a_claim_whose_process_died_lapses_about_a_second_after_its_slot() {
        let r = rules(30);
        let mut m = Model::new();
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 0).granted);
        assert!(!m.op(LedgerOp::TakeUrgent, &r, 100).granted);
        // The click never comes back for its slot (500): others wait until 1,500, not longer.
        assert!(!m.op(LedgerOp::Take { most: 1 }, &r, 500).granted);
        assert!(!m.op(LedgerOp::Take { most: 1 }, &r, 1_499).granted);
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 1_500).granted);
    }

    #[test]
    fn clicks_mixed_with_background_takes_keep_the_window_and_the_spacing() {
        let r = rules(30);
        let mut m = Model::new();
        let (mut background_at, mut click_at) = (0_i64, 0_i64);
        let mut sends = Vec::new();
        // A background caller retrying whenever told, and a click every 7 s that retries
        // when told: the claims may reorder them but never add a request.
        while background_at.min(click_at) < 300_000 {
            if click_at <= background_at {
                let out = m.op(LedgerOp::TakeUrgent, &r, click_at);
                if out.granted {
                    sends.push(click_at);
                    click_at += 7_000;
                } else {
                    click_at = out.retry_at_ms.unwrap();
                }
            } else {
                let out = m.op(LedgerOp::Take { most: 1 }, &r, background_at);
                if out.granted {
                    sends.push(background_at);
                } else {
                    background_at = out.retry_at_ms.unwrap();
                }
            }
        }
        assert_eq!(max_in_any_window(&sends, 60_000), 30);
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= 500), "{sends:?}");
    }

    #[test]
    fn a_down_upstream_lets_one_probe_out_at_a_time_and_an_answer_brings_everyone_back() {
        let r = rules(30);
        let mut m = Model::new();
        let out = m.op(down(UpstreamState::Unreachable), &r, 0);
        assert_eq!(out.upstream.state, UpstreamState::Unreachable);
        assert_eq!(out.upstream.since_ms, Some(0));
        assert_eq!(out.parked, Some((5_000, ParkReason::Unreachable)));
        assert!(!m.op(LedgerOp::Take { most: 1 }, &r, 4_999).granted);
        // The first take after the pause is the probe; everyone else waits for its answer.
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 5_000).granted);
        let other = m.op(LedgerOp::Take { most: 1 }, &r, 5_600);
        assert!(!other.granted);
        assert_eq!(
            other.retry_at_ms,
            Some(27_000),
            "held for the probe's timeout"
        );
        // The probe fails: the next pause doubles and replaces the hold.
        let out = m.op(down(UpstreamState::Unreachable), &r, 6_000);
        assert_eq!(out.parked, Some((16_000, ParkReason::Unreachable)));
        assert_eq!(
            out.upstream.since_ms,
            Some(0),
            "down since the first failure"
        );
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 16_000).granted);
        // The probe gets an answer: AniList is up for every process at once.
        let out = m.op(
            LedgerOp::Observe {
                limit: None,
                remaining: None,
            },
            &r,
            16_500,
        );
        assert_eq!(out.upstream.state, UpstreamState::Ok);
        assert_eq!(out.parked, None);
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 17_000).granted);
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 17_500).granted);
    }

    #[test]
    fn a_probe_whose_process_died_holds_the_others_only_until_its_hold_runs_out() {
        let r = rules(30);
        let mut m = Model::new();
        m.op(down(UpstreamState::Refused), &r, 0);
        assert!(
            m.op(LedgerOp::TakeUrgent, &r, 5_000).granted,
            "a click may probe"
        );
        assert!(!m.op(LedgerOp::Take { most: 1 }, &r, 26_999).granted);
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 27_000).granted);
    }

    #[test]
    fn an_unsent_request_is_not_counted() {
        let r = rules(30);
        let mut m = Model::new();
        let out = m.op(LedgerOp::Take { most: 1 }, &r, 0);
        assert!(out.granted);
        assert_eq!(out.snapshot.requests_made, 1);
        let out = m.op(LedgerOp::Unsent { sent_at_ms: 0 }, &r, 10);
        assert_eq!(out.snapshot.requests_made, 0);
        assert_eq!(out.snapshot.used_in_window, 0);
        // A probe whose connect was refused lets the next try go at once, not after its hold.
        m.op(down(UpstreamState::Unreachable), &r, 100);
        let probe = m.op(LedgerOp::Take { most: 1 }, &r, 5_100);
        assert!(probe.granted);
        assert!(!m.op(LedgerOp::Take { most: 1 }, &r, 5_700).granted);
        m.op(LedgerOp::Unsent { sent_at_ms: 5_100 }, &r, 5_700);
        assert!(m.op(LedgerOp::Take { most: 1 }, &r, 5_700).granted);
    }

    #[test]
    fn a_429_shows_as_parked_and_clears_by_itself() {
        let r = rules(30);
        let mut m = Model::new();
        let out = m.op(
            LedgerOp::RateLimited {
                retry_after_ms: 60_000,
            },
            &r,
            0,
        );
        assert_eq!(out.upstream.state, UpstreamState::Parked);
        let out = m.op(LedgerOp::Read, &r, 61_000);
        assert_eq!(out.upstream.state, UpstreamState::Ok);
        assert_eq!(out.upstream.since_ms, Some(61_000));
    }

    #[test]
    fn a_lowered_walk_holds_for_everyone_until_it_runs_out_and_never_rises_early() {
        let r = rules(30);
        let mut m = Model::new();
        assert_eq!(m.op(LedgerOp::Take { most: 1 }, &r, 0).walk_cap, None);
        let lowered = m.op(
            LedgerOp::LowerWalk {
                levels: 1,
                for_ms: 600_000,
            },
            &r,
            1_000,
        );
        let cap = WalkCap {
            levels: 1,
            until_ms: 601_000,
        };
        assert_eq!(lowered.walk_cap, Some(cap));
        // Every later take (any process's) carries it, and it does not slow the budget.
        let take = m.op(LedgerOp::Take { most: 1 }, &r, 2_000);
        assert!(take.granted);
        assert_eq!(take.walk_cap, Some(cap));
        // A later, higher cap neither raises the depth nor shortens the time.
        let again = m.op(
            LedgerOp::LowerWalk {
                levels: 3,
                for_ms: 10_000,
            },
            &r,
            3_000,
        );
        assert_eq!(again.walk_cap, Some(cap));
        assert_eq!(m.op(LedgerOp::Read, &r, 600_999).walk_cap, Some(cap));
        assert_eq!(m.op(LedgerOp::Read, &r, 601_000).walk_cap, None);
        // Zero levels is never asked for: one level always remains possible.
        let floor = m.op(
            LedgerOp::LowerWalk {
                levels: 0,
                for_ms: 1_000,
            },
            &r,
            700_000,
        );
        assert_eq!(floor.walk_cap.map(|c| c.levels), Some(1));
    }
}
