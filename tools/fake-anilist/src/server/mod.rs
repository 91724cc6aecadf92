//! Starts the fake on 127.0.0.1 (random port by default) and hands back a control handle:
//! URL, stats, forced 429s, outages, graceful shutdown on `shutdown()` or drop.

mod admin;
mod route;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::{Dice, Faults, Latency};
use crate::graphql::{FakeSchema, TypeFilter, build_schema_with};
use crate::rate::{RateLimiter, RateModel, after};
use crate::stats::{Recorder, Stats};
use crate::world::World;

/// Everything the fake serves and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct FakeConfig {
    pub world: World,
    pub rate: RateModel,
    pub latency: Latency,
    pub faults: Faults,
    /// 0 picks a free port, so tests can run in parallel.
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
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

    /// Sleeps, but wakes early when the server shuts down so held requests do not block it.
    pub async fn pause(&self, length: Duration) {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(length) => {}
            _ = rx.wait_for(|stop| *stop) => {}
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
        let app = Arc::new(App {
            schema: build_schema_with(world.clone(), TypeFilter(!config.faults.ignore_type_filter)),
            world,
            rate: RateLimiter::new(config.rate),
            dice: Dice::new(config.latency, config.faults),
            stats: Recorder::new(started),
            outages: Mutex::new(outages),
            shutdown: shutdown.clone(),
        });
        let router = route::router(app.clone());
        let mut until_stop = shutdown;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = until_stop.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::error!("fake-anilist server stopped: {e}");
            }
        });
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
