//! The local HTTP API and status page of `franchise serve`: JSON over the [`Importer`], its
//! events as Server-Sent Events, and server-rendered pages that update live from them.
//!
//! One router over one `Importer`; each route's handler is in the file named after its
//! resource. Everything a client sends is checked in `input` and every failure leaves as the
//! JSON of `error`. `guard` decides who may call.

mod anime;
mod connections;
mod error;
mod guard;
mod imports;
mod input;
mod page;
mod status;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::importer::Importer;
use crate::store::ProcessRole;

/// Largest request body accepted (an import request is a few dozen bytes).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct ApiState {
    importer: Importer,
    token: Option<String>,
    /// Cancelled when the server stops: open event streams end then.
    shutdown: CancellationToken,
    /// The status and franchise pages too (`franchise serve`), or the JSON API alone.
    pages: bool,
}

/// The routes, for the server and for tests that call it without a socket.
pub(crate) fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/imports", post(imports::start).get(imports::list))
        .route("/imports/{id}", get(imports::show))
        .route("/imports/{id}/cancel", post(imports::cancel))
        .route("/imports/{id}/retry", post(imports::retry))
        .route("/anime/{id}", get(anime::show))
        .route("/anime/{id}/open", post(anime::open))
        .route("/franchise/{root}", get(anime::franchise))
        .route("/status", get(status::status))
        .route("/events", get(status::events))
        .fallback(page::api_not_found)
        .method_not_allowed_fallback(page::method_not_allowed);
    let site = if state.pages {
        Router::new()
            .route("/", get(page::status_page))
            .route("/franchise/{root}", get(page::franchise_page))
            .route("/fragments/status", get(page::status_fragment))
            .route("/fragments/franchise/{root}", get(page::franchise_fragment))
            .route("/assets/{file}", get(page::asset))
            .fallback(page::not_found)
    } else {
        Router::new().fallback(page::no_pages)
    };
    site.nest("/api", api)
        .method_not_allowed_fallback(page::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A bound, not yet serving, local API over one importer.
pub struct ApiServer {
    listener: TcpListener,
    state: ApiState,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl ApiServer {
    /// Binds `addr` (`settings.listen()` for `franchise serve`; port 0 picks a free one).
    /// Anything but loopback needs `serve.token`: the API can start imports and spend the
    /// AniList budget.
    ///
    /// If the importer's workers run ([`Importer::start`]), the address is advertised in the
    /// store at once, so the CLI of another terminal talks to this process (connections wait
    /// in the socket's backlog until [`ApiServer::run`]); `run` withdraws it when it ends.
    pub async fn bind(importer: Importer, addr: SocketAddr) -> Result<Self, Error> {
        Self::bind_with(importer, addr, true).await
    }

    /// Binds the JSON API alone (no pages) on a free loopback port: what `franchise work` and
    /// `import --wait` serve, so that a click from another terminal (or a second app window)
    /// is answered by the process that owns the embedded queue instead of being refused.
    /// Advertised like [`ApiServer::bind`] when the workers run.
    pub async fn bind_local(importer: Importer) -> Result<Self, Error> {
        Self::bind_with(importer, SocketAddr::from(([127, 0, 0, 1], 0)), false).await
    }

    async fn bind_with(importer: Importer, addr: SocketAddr, pages: bool) -> Result<Self, Error> {
        let token = importer.settings().token().map(str::to_string);
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(Error::NeedsToken { addr });
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let server = Self {
            listener,
            state: ApiState {
                importer,
                token,
                shutdown: CancellationToken::new(),
                pages,
            },
        };
        let role = if pages {
            ProcessRole::Server
        } else {
            ProcessRole::Worker
        };
        let url = server.url()?;
        if let Err(e) = server.state.importer.advertise_api(Some((url, role))).await {
            tracing::debug!(error = %e, "the API address is not advertised to other processes");
        }
        Ok(server)
    }

    /// The local API of the process that runs the workers over `importer`'s embedded data
    /// dir, if it serves one: where another process's CLI (or a second app window) should
    /// send clicks and imports. `None` on PostgreSQL, where every process runs its own.
    pub async fn owner_url(importer: &Importer) -> Result<Option<String>, Error> {
        importer.owner_api().await
    }

    /// Where it listens (the real port when bound to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|source| Error::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })
    }

    /// `http://ADDR/`, for people and for the CLI of other processes.
    pub fn url(&self) -> Result<String, Error> {
        Ok(format!("http://{}/", self.local_addr()?))
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish; open event
    /// streams end at once.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let stop = self.state.shutdown.clone();
        let importer = self.state.importer.clone();
        let app = router(self.state);
        connections::serve(
            self.listener,
            app,
            connections::connection_cap(),
            async move {
                shutdown.await;
                stop.cancel();
            },
        )
        .await;
        // Not served any more: other processes stop sending here. (The workers may have
        // stopped first, in which case their stop retired the advertisement already.)
        let _ = importer.advertise_api(None).await;
        Ok(())
    }
}
