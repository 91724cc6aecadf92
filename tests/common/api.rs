//! The API as its clients meet it: a real `ApiServer` on a random loopback port over an
//! importer on a temp dir, against the fake AniList (the way zero2prod's tests spawn the app).

use std::time::Duration;

use fake_anilist::FakeAniList;
use franchise::{ApiServer, Importer};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::run::builder;

pub struct TestApp {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    pub importer: Importer,
    pub http: reqwest::Client,
    pub fake: FakeAniList,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), franchise::Error>>>,
    pub dir: tempfile::TempDir,
}

/// Serves an importer over `fake`, its workers running, with `token` if given.
pub async fn spawn_app(fake: FakeAniList, token: Option<&str>) -> TestApp {
    let token = token.map(str::to_string);
    spawn_app_with(fake, move |settings| match token {
        Some(token) => settings.token(token),
        None => settings,
    })
    .await
}

/// `spawn_app` with settings changed by `configure`.
#[allow(dead_code)]
pub async fn spawn_app_with(
    fake: FakeAniList,
    configure: impl FnOnce(franchise::SettingsBuilder) -> franchise::SettingsBuilder,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = configure(builder(dir.path(), &fake));
    let importer = Importer::open(settings.build().unwrap()).await.unwrap();
    importer.start().await.unwrap();
    let server = ApiServer::bind(importer.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.url().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        url,
        importer,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        fake,
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

impl TestApp {
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.at(path)).send().await.unwrap();
        read(response).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.post(self.at(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let request = self
            .http
            .post(self.at(path))
            .header("content-type", "application/json")
            .body(body);
        read(request.send().await.unwrap()).await
    }

    /// Polls `GET /api/imports/{id}` until it is finished.
    pub async fn wait_finished(&self, import_id: i64, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, body) = self.get(&format!("/api/imports/{import_id}")).await;
            assert_eq!(status, 200, "{body}");
            if body["finished_at_ms"].is_i64() {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "import {import_id} not finished within {within:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (graceful), then the importer.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(
                matches!(ended, Ok(Ok(Ok(())))),
                "the server did not stop cleanly: {ended:?}"
            );
        }
        self.importer.stop().await;
    }
}

/// The status and the JSON body (every answer of the API is JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}, {kind}: not JSON ({e}): {text}"));
    (status, body)
}

/// One Server-Sent Event: its `event:` name and `data:` as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub kind: String,
    pub data: Value,
}

/// Reads events from an open `text/event-stream` response until `done` says stop.
pub async fn read_events(
    mut response: reqwest::Response,
    within: Duration,
    mut done: impl FnMut(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no end of the stream within {within:?}: {events:#?}"))
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("the event stream ended early: {events:#?}");
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut kind = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if kind.is_empty() {
                continue; // a keep-alive comment
            }
            let event = SseEvent {
                kind,
                data: serde_json::from_str(&data).unwrap(),
            };
            let stop = done(&event);
            events.push(event);
            if stop {
                return events;
            }
        }
    }
}
