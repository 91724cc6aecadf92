//! The API's accept loop: at most a descriptor-safe number of connections at once (the oldest
//! idle one is let go for a newcomer), request headers read within a timeout, and a full
//! descriptor table waited out, never taken for a disk error.
//!
//! Why not `axum::serve`: it has no header timeout and no cap, so 1,100 idle sockets under
//! `ulimit -n 1024` took every descriptor and the store's next file open failed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client gets this long to send a request's headers, on a new connection and between the
/// requests of a kept-alive one: long for a person's browser on this machine, short for a
/// socket that only holds a descriptor.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Descriptors kept for everything but API connections: the store's files, the queue's, the
/// database pool, AniList's sockets, logs.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The most connections served at once, whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 1024;

/// How many connections may be open at once: under the process's descriptor limit with room
/// for the rest of the process.
pub(crate) fn connection_cap() -> usize {
    let limit = descriptor_limit().unwrap_or(1024);
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    usize::try_from(room)
        .unwrap_or(MAX_CONNECTIONS)
        .min(MAX_CONNECTIONS)
}

fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

/// One served connection, as the accept loop sees it.
struct Served {
    /// Requests whose response has not been sent to its end (an event stream counts until
    /// it closes).
    busy: Arc<AtomicUsize>,
    ended: Arc<AtomicBool>,
    let_go: CancellationToken,
}

/// Serves `app` on `listener` until `shutdown` completes; then no new connection is taken,
/// idle ones close, and those with a request in flight finish it.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    cap: usize,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut live: VecDeque<Served> = VecDeque::new();
    let mut tasks = JoinSet::new();
    let mut said_full = false;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        live.retain(|c| !c.ended.load(Ordering::Acquire));
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if out_of_descriptors(&e) => {
                if !said_full {
                    tracing::warn!(
                        "out of file descriptors with {} API connections open: letting the \
                         oldest idle ones go",
                        live.len()
                    );
                    said_full = true;
                }
                if !let_go_oldest_idle(&mut live) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            // A client that gave up before it was accepted, and the like: its own trouble.
            Err(e) => {
                tracing::debug!(error = %e, "accepting an API connection failed");
                continue;
            }
        };
        if live.len() >= cap && !let_go_oldest_idle(&mut live) {
            // Every connection has a request in flight: the newcomer is the one turned away.
            tracing::debug!(cap, "every API connection is busy; closing a new one");
            drop(stream);
            continue;
        }
        let served = Served {
            busy: Arc::new(AtomicUsize::new(0)),
            ended: Arc::new(AtomicBool::new(false)),
            let_go: CancellationToken::new(),
        };
        tasks.spawn(connection(
            stream,
            app.clone(),
            served.busy.clone(),
            served.ended.clone(),
            served.let_go.clone(),
        ));
        live.push_back(served);
    }
    for served in &live {
        served.let_go.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

/// Lets the oldest connection with no request in flight go. False if every one is busy.
fn let_go_oldest_idle(live: &mut VecDeque<Served>) -> bool {
    let Some(at) = live
        .iter()
        .position(|c| c.busy.load(Ordering::Acquire) == 0)
    else {
        return false;
    };
    if let Some(served) = live.remove(at) {
        served.let_go.cancel();
    }
    true
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    busy: Arc<AtomicUsize>,
    ended: Arc<AtomicBool>,
    let_go: CancellationToken,
) {
    let counted = {
        let busy = busy.clone();
        tower::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
            let app = app.clone();
            let guard = BusyGuard::new(busy.clone());
            async move {
                let response = app.oneshot(request.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(CountedBody {
                        body,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(counted));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = let_go.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    ended.store(true, Ordering::Release);
}

/// Counts a request as in flight from its arrival until its response body is dropped.
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted until it has been sent (or dropped).
struct CountedBody {
    body: Body,
    _guard: BusyGuard,
}

impl HttpBody for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
