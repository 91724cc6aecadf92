//! Starts the fake on 127.0.0.1 (random port by default) and hands back a control handle:
//! URL, stats, forced 429s, outages, bad-day modes, graceful shutdown on `shutdown()` or drop.

mod admin;
mod bad_day;
mod gate;
mod listen;
mod modes;
mod reply;
mod route;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::{Dice, Faults, Latency};
use crate::graphql::{
    DEFAULT_MAX_RELATION_HOPS, FakeSchema, Hidden, SchemaOptions, TypeFilter, UnknownSchemaField,
    build_schema_from,
};
use crate::mode::Mode;
use crate::rate::{RateLimiter, RateModel, after};
use crate::stats::{Recorder, Stats};
use crate::world::World;
use modes::Link;
use modes::ModeState;

/// Everything the fake serves and how it misbehaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub world: World,
    pub rate: RateModel,
    pub latency: Latency,
    pub faults: Faults,
    /// 0 picks a free port, so tests can run in parallel.
    pub port: u16,
    /// AniList's edge answers every GraphQL request without a `Referer` header with its 403
    /// "temporarily disabled" body (since September 2026). One client saw no gate from its
    /// region (AniSync PR #140), so it may be regional; on by default all the same, so a
    /// client that forgets the header fails against the fake as it would where it applies.
    pub referer_gate: bool,
    /// A query nesting `relations` deeper than this (one hop = one `relations` field on a
    /// path) gets AniList's 500. Default `DEFAULT_MAX_RELATION_HOPS` (4, the deepest a
    /// public client is known to send); 1 models an AniList that fails every deep query;
    /// `usize::MAX` turns the check off.
    pub max_relation_hops: usize,
    /// `"Type.field"` or `"Type.field(argument)"` entries left out of introspection answers
    /// only (queries using them still run), so a test can show a schema check an AniList
    /// without them; a type that only hidden fields lead to disappears too. Names outside
    /// `graphql::HIDEABLE` make `start` fail.
    pub hide_schema_fields: Vec<String>,
    /// Records spoiled on purpose, by id (see [`crate::poison`]).
    pub poison: std::collections::BTreeMap<i32, crate::Poison>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            world: World::default(),
            rate: RateModel::default(),
            latency: Latency::default(),
            faults: Faults::default(),
            port: 0,
            referer_gate: true,
            max_relation_hops: DEFAULT_MAX_RELATION_HOPS,
            hide_schema_fields: Vec::new(),
            poison: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Schema(#[from] UnknownSchemaField),
}

/// Shared by every request handler.
pub(crate) struct App {
    pub world: Arc<World>,
    pub schema: FakeSchema,
    pub rate: RateLimiter,
    pub dice: Dice,
    pub stats: Recorder,
    /// Outage windows as (start, end); a request inside any of them gets a 403.
    pub outages: Mutex<Vec<(Instant, Instant)>>,
    pub shutdown: watch::Receiver<bool>,
    pub referer_gate: bool,
    /// The bad-day mode in force, if any.
    pub mode: watch::Sender<Option<ModeState>>,
    /// Whether the port accepts; the serving loop keeps it current.
    pub link: watch::Sender<Link>,
    pub poison: std::collections::BTreeMap<i32, crate::Poison>,
}

impl App {
    pub fn in_outage(&self, now: Instant) -> bool {
        let outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        outages.iter().any(|&(from, to)| now >= from && now < to)
    }

    pub fn start_outage(&self, length: Duration) {
        let now = Instant::now();
        let mut outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        outages.push((now, after(now, length)));
    }

    pub fn end_outages(&self) {
        self.outages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Sleeps, but wakes early when the server shuts down or goes offline, so held requests
    /// block neither.
    pub async fn pause(&self, length: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(length) => {}
            _ = self.interrupted() => {}
        }
    }
}

/// A running fake. Dropping it stops the server (in the background).
pub struct FakeAniList {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FakeAniList {
    pub async fn start(config: FakeConfig) -> Result<FakeAniList, StartError> {
        let hidden = Hidden::new(&config.hide_schema_fields)?;
        let port = config.port;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| StartError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { port, source })?;
        let started = Instant::now();
        let (stop, shutdown) = watch::channel(false);
        let world = Arc::new(config.world);
        let outages = config
            .faults
            .outage_at
            .map(|at| {
                let from = after(started, at);
                (from, after(from, config.faults.outage_for))
            })
            .into_iter()
            .collect();
        let schema = build_schema_from(
            world.clone(),
            SchemaOptions {
                type_filter: TypeFilter(!config.faults.ignore_type_filter),
                max_relation_hops: config.max_relation_hops,
                hidden,
                ..SchemaOptions::default()
            },
        );
        let app = Arc::new(App {
            schema,
            world,
            rate: RateLimiter::new(config.rate),
            dice: Dice::new(config.latency, config.faults),
            stats: Recorder::new(started),
            outages: Mutex::new(outages),
            shutdown,
            referer_gate: config.referer_gate,
            mode: watch::Sender::new(None),
            link: watch::Sender::new(Link::Up),
            poison: config.poison,
        });
        let router = route::router(app.clone());
        let task = tokio::spawn(listen::serve(app.clone(), listener, addr, router));
        Ok(FakeAniList {
            addr,
            app,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/`, AniList's GraphQL endpoint is the root path.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> Stats {
        self.app.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.app.stats.reset();
    }

    /// Clears the rate window, burst history and any running ban.
    pub fn reset_rate_limiter(&self) {
        self.app.rate.reset();
    }

    /// The next request gets a 429 and starts a ban of `RateModel::ban_secs`.
    pub fn force_rate_limit(&self) {
        self.app.rate.force();
    }

    /// Every request from now for `length` gets AniList's 403 "API temporarily disabled".
    pub fn start_outage(&self, length: Duration) {
        self.app.start_outage(length);
    }

    /// Ends every outage at once: AniList is back.
    pub fn end_outages(&self) {
        self.app.end_outages();
    }

    /// Puts the fake in a bad-day mode until `clear_mode` (or another `set_mode`), or for
    /// `length`. Returns once the mode is in force: for `Offline`, once the port refuses
    /// connections and every open one is closed; leaving `Offline`, once the same port is
    /// bound again (`url()` stays valid throughout). The error is a failed re-bind.
    pub async fn set_mode(&self, mode: Mode, length: Option<Duration>) -> Result<(), StartError> {
        self.app.set_mode(Some(mode), length);
        self.settled().await
    }

    /// Ends the bad-day mode: AniList is back (for `Offline`, once the port is bound again).
    pub async fn clear_mode(&self) -> Result<(), StartError> {
        self.app.set_mode(None, None);
        self.settled().await
    }

    /// The bad-day mode answering requests now, if any.
    pub fn mode(&self) -> Option<Mode> {
        self.app.mode_at(Instant::now()).map(|s| s.mode)
    }

    async fn settled(&self) -> Result<(), StartError> {
        self.app
            .port_settled(true)
            .await
            .map_err(|source| StartError::Bind {
                port: self.addr.port(),
                source,
            })
    }

    pub fn world(&self) -> Arc<World> {
        self.app.world.clone()
    }

    pub fn rate_model(&self) -> &RateModel {
        self.app.rate.model()
    }

    /// Stops accepting, wakes held requests and waits for open connections to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeAniList {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
