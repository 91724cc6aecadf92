//! The CLI as a client of the process that owns the embedded data dir (`serve`, `work`,
//! `import --wait` or `retry --wait`): `import`, `open`, `cancel`, `retry` and `status` ask
//! its local API instead of recording behind its back or refusing.

use std::time::Duration;

use franchise::{
    AnimeId, ApiServer, ImportFilter, ImportOptions, ImportProgress, Importer, Status, StoredAnime,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// Whether something accepts connections at `base`'s host and port (a loopback address).
async fn listening(base: &reqwest::Url) -> bool {
    let Some(host) = base.host_str() else {
        return false;
    };
    let port = base.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// An answer the API refused, with its status and message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (from the franchise process that owns this data dir, at {base})")]
pub struct ApiRefused {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    base: String,
}

/// The owner's API stopped taking connections between [`ApiClient::of`]'s probe and a
/// request: the request never reached it (the owner exited, or is exiting, and lets go of the
/// data dir), so the caller does the work itself, as when no API is advertised.
#[derive(Debug, thiserror::Error)]
#[error("the franchise process that owns this data dir stopped answering at {base} ({source})")]
pub struct OwnerGone {
    base: String,
    source: reqwest::Error,
}

impl OwnerGone {
    /// Whether `e` says a request never reached the owner.
    pub fn is(e: &anyhow::Error) -> bool {
        e.downcast_ref::<OwnerGone>().is_some()
    }
}

/// The local API of the process that owns this data dir.
pub struct ApiClient {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// The owner's API if another process owns the data dir and serves one.
    pub async fn of(importer: &Importer) -> Option<Self> {
        let url = match ApiServer::owner_url(importer).await {
            Ok(Some(url)) => url,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the owner's API address");
                return None;
            }
        };
        let base = reqwest::Url::parse(&url).ok()?;
        // A process killed with kill -9 leaves its address behind until its heartbeat goes
        // stale: nothing listens there any more, and this process may own the queue now.
        if !listening(&base).await {
            tracing::debug!(%url, "the advertised API does not answer; going on without it");
            return None;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // No proxy for a loopback API.
            .no_proxy()
            .build()
            .ok()?;
        Some(Self {
            base,
            token: importer.settings().token().map(str::to_string),
            http,
        })
    }

    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    pub async fn import(&self, root: AnimeId, options: &ImportOptions) -> anyhow::Result<i64> {
        let body = serde_json::json!({
            "root": root,
            "depth": options.max_depth,
            "max_items": options.max_items,
            "force_refresh": options.force_refresh,
        });
        let answer: serde_json::Value = self
            .call(Method::POST, "api/imports", Some(body), None)
            .await?;
        answer["import_id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("the API answered without an import id: {answer}"))
    }

    pub async fn open(&self, id: AnimeId, timeout_secs: u64) -> anyhow::Result<StoredAnime> {
        let path = format!("api/anime/{id}/open?timeout_secs={timeout_secs}");
        self.call(
            Method::POST,
            &path,
            None,
            Some(Duration::from_secs(timeout_secs + 5)),
        )
        .await
    }

    pub async fn cancel(&self, import_id: i64) -> anyhow::Result<ImportProgress> {
        let path = format!("api/imports/{import_id}/cancel");
        self.call(Method::POST, &path, None, None).await
    }

    pub async fn retry(&self, import_id: i64) -> anyhow::Result<ImportProgress> {
        let path = format!("api/imports/{import_id}/retry");
        self.call(Method::POST, &path, None, None).await
    }

    pub async fn status(&self, filter: &ImportFilter) -> anyhow::Result<Status> {
        let path = match filter.state {
            Some(state) => format!("api/status?state={}", state.as_str()),
            None => "api/status".to_string(),
        };
        self.call(Method::GET, &path, None, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<T> {
        let url = self.base.join(path)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(timeout.unwrap_or(Duration::from_secs(30)));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                return OwnerGone {
                    base: self.base.to_string(),
                    source: e,
                }
                .into();
            }
            // The request may have reached the owner: doing it here too could do it twice.
            anyhow::anyhow!(
                "the franchise process that owns this data dir does not answer at {} \
                 ({e}); if it was stopped, run the command again",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            return Err(ApiRefused {
                status,
                code: value["error"].as_str().unwrap_or("").to_string(),
                message: value["message"]
                    .as_str()
                    .map_or_else(|| format!("{status}: {text}"), str::to_string),
                base: self.base.to_string(),
            }
            .into());
        }
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("the API's answer to {url} is not what this CLI reads: {e}")
        })
    }
}
