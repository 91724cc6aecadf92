//! The JSON API that `work`, `import --wait` and `retry --wait` serve on a free loopback port
//! while they own the embedded queue, so a click (`franchise open`) from another terminal is
//! answered by the workers here instead of being refused.

use std::time::Duration;

use franchise::{ApiServer, Importer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long requests in flight get to finish after a stop (as `franchise serve`).
const DRAIN: Duration = Duration::from_secs(10);

/// A running local API; [`LocalApi::stop`] withdraws it.
pub struct LocalApi {
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), franchise::Error>>,
}

impl LocalApi {
    /// Serves the API if this process runs the workers. Without it other terminals can still
    /// record imports and read the store, so a failure to bind is a warning, not an error.
    pub async fn start(importer: &Importer) -> Option<Self> {
        if !importer.is_running().await {
            return None;
        }
        let server = match ApiServer::bind_local(importer.clone()).await {
            Ok(server) => server,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no local API for other terminals: a click there waits for this process to end"
                );
                return None;
            }
        };
        if let Ok(url) = server.url() {
            tracing::info!(%url, "answering other terminals' clicks and imports");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Some(Self { stop, serving })
    }

    /// Stops taking requests and gives those in flight [`DRAIN`] to finish, then withdraws
    /// the address.
    pub async fn stop(mut self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(DRAIN, &mut self.serving).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the local API ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the local API task failed"),
            Err(_) => self.serving.abort(),
        }
    }
}
