//! The local HTTP API and status page of `franchise serve`: JSON over the [`Importer`], its
//! events as Server-Sent Events, and server-rendered pages that update live from them.
//!
//! One router over one `Importer`; each route's handler is in the file named after its
//! resource. Everything a client sends is checked in `input` and every failure leaves as the
//! JSON of `error`. `guard` decides who may call.

mod anime;
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

/// Largest request body accepted (an import request is a few dozen bytes).
const BODY_LIMIT: usize = 64 * 1024;

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct ApiState {
    importer: Importer,
    token: Option<String>,
    /// Cancelled when the server stops: open event streams end then.
    shutdown: CancellationToken,
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
    Router::new()
        .route("/", get(page::status_page))
        .route("/franchise/{root}", get(page::franchise_page))
        .route("/fragments/status", get(page::status_fragment))
        .route("/fragments/franchise/{root}", get(page::franchise_fragment))
        .route("/assets/{file}", get(page::asset))
        .nest("/api", api)
        .fallback(page::not_found)
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
    pub async fn bind(importer: Importer, addr: SocketAddr) -> Result<Self, Error> {
        let token = importer.settings().token().map(str::to_string);
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(Error::Listen {
                addr,
                reason: "only a loopback address (127.0.0.1 or [::1]) may be served without a \
                         token; set serve.token (FRANCHISE_SERVE__TOKEN) to at least 16 \
                         characters, or listen on 127.0.0.1"
                    .into(),
            });
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| Error::Listen {
            addr,
            reason: e.to_string(),
        })?;
        Ok(Self {
            listener,
            state: ApiState {
                importer,
                token,
                shutdown: CancellationToken::new(),
            },
        })
    }

    /// Where it listens (the real port when bound to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|e| Error::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            reason: e.to_string(),
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
        let addr = self.local_addr()?;
        let stop = self.state.shutdown.clone();
        let app = router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stop.cancel();
            })
            .await
            .map_err(|e| Error::Listen {
                addr,
                reason: e.to_string(),
            })
    }
}
