//! Serves the router on one fixed 127.0.0.1 port, closing the socket and every open
//! connection while the fake plays `Offline`, and binding the same port again after.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};

use super::App;
use super::modes::{Link, wants_offline};

/// A listener that reports its own closing: axum drops it the moment it stops accepting,
/// before it waits for open connections.
struct Watched {
    inner: TcpListener,
    app: Arc<App>,
}

impl axum::serve::Listener for Watched {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (TcpStream, SocketAddr)> + Send {
        axum::serve::Listener::accept(&mut self.inner)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.app.link.send_replace(Link::Closing);
    }
}

/// Rebinding right after closing can race the kernel; a second is plenty on loopback.
const BIND_TRIES: u32 = 50;
const BIND_PAUSE: Duration = Duration::from_millis(20);

async fn bind_again(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if tries + 1 >= BIND_TRIES => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(BIND_PAUSE).await;
            }
        }
    }
}

/// Runs until the fake stops. Each pass serves until the mode goes `Offline` (graceful:
/// the socket closes at once, idle keep-alive connections are closed, requests in flight
/// are woken and answered), then waits for the mode to end and binds `addr` again.
pub async fn serve(app: Arc<App>, first: TcpListener, addr: SocketAddr, router: Router) {
    let mut next = Some(first);
    loop {
        let listener = match next.take() {
            Some(listener) => listener,
            None => match bind_again(addr).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::error!("fake-anilist could not bind {addr} again: {e}");
                    app.link.send_replace(Link::Failed(e.kind(), e.to_string()));
                    // Try again on the next mode change; a test may clear it once more.
                    let mut mode = app.mode.subscribe();
                    let mut stop = app.shutdown.clone();
                    tokio::select! {
                        _ = mode.changed() => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    if app.stopping() {
                        break;
                    }
                    continue;
                }
            },
        };
        app.link.send_replace(Link::Up);
        let watched = Watched {
            inner: listener,
            app: app.clone(),
        };
        let signal = {
            let app = app.clone();
            async move {
                let mut mode = app.mode.subscribe();
                let mut stop = app.shutdown.clone();
                tokio::select! {
                    _ = mode.wait_for(wants_offline) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
        };
        if let Err(e) = axum::serve(watched, router.clone())
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!("fake-anilist server stopped: {e}");
        }
        app.link.send_replace(Link::Down);
        if app.stopping() {
            break;
        }
        app.until_back_online().await;
        if app.stopping() {
            break;
        }
    }
}
