//! Counters and a per-request log of what the fake served, so tests can prove how a client
//! behaved (never hammered, honoured bans, sent an interactive id in the very next request).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::faults::FaultKind;
use crate::mode::Mode;

/// Who sent a request, as its headers say: kept so a test can prove every request the client
/// sent carried a `Referer` and a `User-Agent` naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// No `Authorization` header.
    pub anonymous: bool,
}

/// One GraphQL request, logged on arrival and completed when its status is decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Arrival, in ms since the server started.
    pub at_ms: u64,
    /// Ids asked for (`id_in` members, `Media(id:)` ids), in request order.
    pub ids: Vec<i32>,
    /// `None` while the request is still in flight, and forever if the client went away
    /// before the answer (a killed process): the handler is dropped before it can record one.
    pub status: Option<u16>,
    pub anonymous: bool,
    /// The `Referer` header as sent (lossy UTF-8), `None` without one.
    pub referer: Option<String>,
    /// The `User-Agent` header as sent (lossy UTF-8), `None` without one.
    pub user_agent: Option<String>,
    pub fault: Option<FaultKind>,
    /// Arrived while a rate-limit ban was running.
    pub during_ban: bool,
    /// Refused by the Referer gate (a 403 that never reached the rest of the pipeline).
    pub refused_by_gate: bool,
    /// Answered by this bad-day mode instead of by AniList.
    pub mode: Option<Mode>,
    /// Bytes of the GraphQL answer's body as sent (uncompressed); `None` for answers that are
    /// not the schema's (gate, bad-day modes, injected faults other than a truncated body).
    pub bytes: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// GraphQL requests received (every status).
    pub requests: u64,
    /// Ids asked per request (`id_in` length, or 1 for `Media(id:)`), in arrival order.
    pub ids_per_request: Vec<usize>,
    /// Responses by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// 429s served, whether they started a ban or arrived during one.
    pub rate_limited: u64,
    pub arrived_during_ban: u64,
    /// 403 outage answers (configured, `start_outage`, or `Mode::Disabled`).
    pub outages: u64,
    /// 403s from the Referer gate (requests without a `Referer`); not counted in `outages`
    /// nor against the rate limit.
    pub refused_by_gate: u64,
    /// Requests answered by each bad-day mode (`Mode::Offline` refuses connections, so it
    /// never answers one).
    pub by_mode: BTreeMap<Mode, u64>,
    /// 5xx answers (injected 500/502 and held-then-504 timeouts).
    pub server_errors: u64,
    /// Injected faults of any kind, including 200s with a broken body.
    pub faults: u64,
    /// Bytes of every GraphQL answer's body sent (see `LogEntry::bytes`).
    pub bytes_out: u64,
    pub log: Vec<LogEntry>,
}

/// Identifies a log entry across a `reset` (entries from before a reset are not updated).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    index: usize,
}

#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    inner: Mutex<(u64, Stats)>,
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Recorder {
            started,
            inner: Mutex::new((0, Stats::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Stats)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn arrive(&self, at: Instant, ids: Vec<i32>, caller: Caller) -> Ticket {
        let at_ms = at.duration_since(self.started).as_millis() as u64;
        let mut guard = self.lock();
        let (epoch, stats) = &mut *guard;
        stats.requests += 1;
        stats.ids_per_request.push(ids.len());
        stats.log.push(LogEntry {
            at_ms,
            ids,
            status: None,
            anonymous: caller.anonymous,
            referer: caller.referer,
            user_agent: caller.user_agent,
            fault: None,
            during_ban: false,
            refused_by_gate: false,
            mode: None,
            bytes: None,
        });
        Ticket {
            epoch: *epoch,
            index: stats.log.len() - 1,
        }
    }

    pub fn finish(&self, ticket: Ticket, status: u16, fault: Option<FaultKind>, during_ban: bool) {
        let mut guard = self.lock();
        let (epoch, stats) = &mut *guard;
        if *epoch != ticket.epoch {
            return;
        }
        *stats.by_status.entry(status).or_default() += 1;
        match status {
            429 => stats.rate_limited += 1,
            403 => stats.outages += 1,
            500..=599 => stats.server_errors += 1,
            _ => {}
        }
        stats.arrived_during_ban += u64::from(during_ban);
        stats.faults += u64::from(fault.is_some());
        if let Some(entry) = stats.log.get_mut(ticket.index) {
            entry.status = Some(status);
            entry.fault = fault;
            entry.during_ban = during_ban;
        }
    }

    /// The GraphQL answer's body went out with `bytes` bytes.
    pub fn sent(&self, ticket: Ticket, bytes: usize) {
        let mut guard = self.lock();
        let (epoch, stats) = &mut *guard;
        if *epoch != ticket.epoch {
            return;
        }
        stats.bytes_out += bytes as u64;
        if let Some(entry) = stats.log.get_mut(ticket.index) {
            entry.bytes = Some(bytes);
        }
    }

    /// A 403 from the Referer gate.
    pub fn refuse(&self, ticket: Ticket) {
        let mut guard = self.lock();
        let (epoch, stats) = &mut *guard;
        if *epoch != ticket.epoch {
            return;
        }
        *stats.by_status.entry(403).or_default() += 1;
        stats.refused_by_gate += 1;
        if let Some(entry) = stats.log.get_mut(ticket.index) {
            entry.status = Some(403);
            entry.refused_by_gate = true;
        }
    }

    /// An answer from a bad-day mode; its status counts as any other (a 403 as an outage,
    /// a 5xx as a server error).
    pub fn answer_in_mode(&self, ticket: Ticket, mode: Mode, status: u16) {
        self.finish(ticket, status, None, false);
        let mut guard = self.lock();
        let (epoch, stats) = &mut *guard;
        if *epoch != ticket.epoch {
            return;
        }
        *stats.by_mode.entry(mode).or_default() += 1;
        if let Some(entry) = stats.log.get_mut(ticket.index) {
            entry.mode = Some(mode);
        }
    }

    pub fn snapshot(&self) -> Stats {
        self.lock().1.clone()
    }

    pub fn reset(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1 = Stats::default();
    }
}
