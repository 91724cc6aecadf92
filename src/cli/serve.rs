//! `franchise serve`: the workers, like `work`, plus the local HTTP API and status page on
//! `serve.listen` (127.0.0.1:7878). Advertises its address so the CLI of another terminal
//! talks to it; Ctrl-C or SIGTERM stops both gracefully.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use franchise::{ApiServer, Error, Settings};

use super::signal::stop_signal;
use crate::out;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on, e.g. 127.0.0.1:7878 (port 0 picks a free one). Anything but
    /// loopback needs serve.token [default: serve.listen, 127.0.0.1:7878].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// How long requests in flight get to finish after a stop.
const DRAIN: Duration = Duration::from_secs(10);

pub async fn run(settings: Settings, _args: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr = settings.listen();
    let workers = settings.workers();
    let importer = super::importer(settings)?.open().await?;
    if let Err(e) = super::work::start(&importer).await {
        importer.close().await;
        return Err(e.into());
    }
    let server = match ApiServer::bind(importer.clone(), addr).await {
        Ok(server) => server,
        Err(e) => {
            importer.close().await;
            return Err(e.into());
        }
    };
    // Bound after the workers started, so the address is advertised to other terminals.
    let url = server.url()?;
    out!("serving {url}");
    eprintln!(
        "franchise serve: {url} (status page and API), pid {}, {workers} jobs at a time; \
         Ctrl-C stops gracefully",
        std::process::id()
    );
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let outcome = tokio::select! {
        () = stop_signal() => Ok(ExitCode::SUCCESS),
        halt = importer.until_halted() => Err(Error::Halted(halt).into()),
        ended = &mut serving => match ended {
            Ok(Ok(())) => Ok(ExitCode::SUCCESS),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(anyhow::anyhow!("the API server stopped: {e}")),
        },
    };
    eprintln!("stopping: finishing requests and in-flight jobs…");
    let _ = stop_server.send(());
    if tokio::time::timeout(DRAIN, &mut serving).await.is_err() {
        serving.abort();
    }
    // Connections the drain cut short may still hold clones: end it for all of them.
    importer.shutdown().await;
    outcome
}
