//! The status page in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) against `franchise serve` and a slow fake AniList. The page's progress figure
//! moves without a reload, the form starts an import, the Cancel button cancels one, and the
//! franchise page shows the imported franchise. With `FRANCHISE_SCREENSHOTS=1` the
//! screenshots go to docs/screenshots/ (otherwise to a temporary directory).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing).

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use fake_anilist::world::WorldSpec;
use fake_anilist::{FakeAniList, FakeConfig, Latency, RateModel};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_franchise");
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "sudo apt-get install -y chromium chromium-driver";
/// An id the fake AniList does not have: its import fails.
const MISSING: i32 = 2_000_000;
/// The browser's window: a laptop screen.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// A phone, or an app's side panel.
const NARROW: u32 = 400;

/// A child process, in a process group of its own, that is killed with its group (and
/// reaped) when dropped, failing test or not. On a failing test it prints what it wrote.
struct Guard {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The whole group: whatever it started and left in it goes too.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("--- {} output\n{log}--- end of {}", self.name, self.name);
        }
    }
}

/// Spawns `cmd`, copying its stdout and stderr into the guard's log from reader threads;
/// each stdout line starting with `ready` is sent back, so a caller can wait for it.
fn spawn(name: &'static str, mut cmd: Command, ready: &str) -> (Guard, mpsc::Receiver<String>) {
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (out_log, ready) = (log.clone(), ready.to_string());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(&ready) {
                let _ = tx.send(line.clone());
            }
            if let Ok(mut log) = out_log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let err_log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut log) = err_log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    (Guard { name, child, log }, rx)
}

/// `name` on the PATH, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `probe` until it gives a value, or fails the test after `within` saying `what`.
async fn until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `script` (a function body) in the page and returns its value.
async fn js(browser: &Client, script: &str) -> Value {
    browser
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// The import's state as the API reports it.
async fn api_state(http: &reqwest::Client, base: &str, import_id: i64) -> String {
    let body: Value = http
        .get(format!("{base}api/imports/{import_id}"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET /api/imports/{id}")
        .json()
        .await
        .expect("JSON");
    body["state"].as_str().unwrap_or_default().to_string()
}

async fn start_import(http: &reqwest::Client, base: &str, root: i32) -> i64 {
    let answer: Value = http
        .post(format!("{base}api/imports"))
        .json(&json!({ "root": root }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("POST /api/imports")
        .json()
        .await
        .expect("JSON");
    answer["import_id"].as_i64().expect("an import id")
}

/// Where screenshots go: docs/screenshots/ when asked for, else a temporary directory.
fn screenshot_dir(scratch: &Path) -> PathBuf {
    if std::env::var("FRANCHISE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        scratch.join("screenshots")
    }
}

async fn screenshot(browser: &Client, path: &Path) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("screenshot dir");
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_updates_live_starts_and_cancels_imports() {
    let started = Instant::now();
    let step = |what: &str| eprintln!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    let chromedriver = on_path("chromedriver");
    assert!(
        Path::new(CHROMIUM).is_file() && chromedriver.is_some(),
        "the browser test needs Chromium ({CHROMIUM}) and chromedriver on the PATH: run \
         `{INSTALL}` (.ci/run installs them when missing)"
    );

    // Two giants, so two imports each take a while at half a second a round trip: the
    // first's walk is 30 levels deep, the second's 40.
    let world = WorldSpec::default()
        .seed(11)
        .franchises(6)
        .giant(120, 30)
        .giant(80, 40)
        .clean()
        .build();
    let giants: Vec<_> = world.giants().cloned().collect();
    let (first, second) = (&giants[0], &giants[1]);
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled(),
        latency: Latency::new(Duration::from_millis(450), Duration::from_millis(100)),
        ..FakeConfig::default()
    })
    .await
    .expect("start fake-anilist");

    let scratch = tempfile::tempdir().expect("tempdir");
    let mut serve = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FRANCHISE_") {
            serve.env_remove(&key);
        }
    }
    serve
        .env("FRANCHISE_ANILIST__MIN_SPACING_MS", "20")
        .env("FRANCHISE_ANILIST__BUDGET_PER_MINUTE", "1000")
        .env("FRANCHISE_QUEUE__HEARTBEAT_MS", "1000")
        .arg("--data-dir")
        .arg(scratch.path().join("data"))
        .arg("--anilist-url")
        .arg(fake.url())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (_server, serving) = spawn("franchise serve", serve, "serving ");
    let line = serving
        .recv_timeout(Duration::from_secs(60))
        .expect("franchise serve never said `serving http://…`");
    let base = format!(
        "{}/",
        line.trim_start_matches("serving ")
            .trim()
            .trim_end_matches('/')
    );

    let port = free_port();
    let mut driver = Command::new(chromedriver.expect("checked above"));
    driver.arg(format!("--port={port}"));
    let (_driver, _) = spawn("chromedriver", driver, "ChromeDriver was started");
    let driver_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    until(
        "chromedriver to answer",
        Duration::from_secs(30),
        || async {
            let r = http.get(format!("{driver_url}/status")).send().await.ok()?;
            let body: Value = r.json().await.ok()?;
            body["value"]["ready"].as_bool().filter(|ready| *ready)
        },
    )
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                // Nothing but the pages under test: no updates, sync or first-run calls out.
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .unwrap_or_else(|e| panic!("no Chromium session through chromedriver: {e}"));
    let id = browser.session_id().await.ok().flatten();
    let browser = Session {
        client: Some(browser),
        driver_port: port,
        id,
    };
    let b = browser.client();
    b.set_window_size(WIDTH, HEIGHT).await.expect("window size");
    step("browser ready");

    // An import under way, one of an id AniList does not have, and the page showing them.
    let import_a = start_import(&http, &base, first.root).await;
    let import_missing = start_import(&http, &base, MISSING).await;
    b.goto(&base).await.expect("load /");
    // The window's size includes the browser's frame: make the page itself WIDTH×HEIGHT.
    let inner = js(b, "return [window.innerWidth, window.innerHeight];").await;
    let frame_of =
        |i: usize, set: u32| set.saturating_sub(inner[i].as_u64().map_or(set, |v| v as u32));
    let (frame_w, frame_h) = (frame_of(0, WIDTH), frame_of(1, HEIGHT));
    b.set_window_size(WIDTH + frame_w, HEIGHT + frame_h)
        .await
        .expect("window size");
    js(b, "window.__marker = 1;").await;
    let not_reloaded = || async {
        assert_eq!(
            js(b, "return window.__marker === 1;").await,
            json!(true),
            "the page was reloaded"
        );
    };
    let figure_js = |import_id: i64| {
        format!(
            "var f = document.querySelector('tr[data-import-id=\"{import_id}\"] .figure'); \
             return f ? f.textContent : null;"
        )
    };
    let first_figure = until("the import's row on /", Duration::from_secs(20), || async {
        js(b, &figure_js(import_a))
            .await
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(
        first_figure.starts_with("Importing "),
        "figure {first_figure:?}"
    );
    let moved = until(
        "the progress figure to change without a reload",
        Duration::from_secs(30),
        || async {
            let figure = js(b, &figure_js(import_a)).await;
            figure
                .as_str()
                .filter(|f| *f != first_figure)
                .map(str::to_string)
        },
    )
    .await;
    not_reloaded().await;
    step(&format!("figure moved from {first_figure:?} to {moved:?}"));
    let conn = js(b, "return document.getElementById('conn').dataset.state;").await;
    assert_eq!(conn, json!("live"), "the event stream is not connected");
    let title_js = format!(
        "var a = document.querySelector('tr[data-import-id=\"{import_a}\"] a'); \
         return a ? a.textContent : null;"
    );
    let title = until(
        "the root's title in its row",
        Duration::from_secs(20),
        || async {
            let title = js(b, &title_js).await;
            title
                .as_str()
                .filter(|t| !t.starts_with("anime "))
                .map(str::to_string)
        },
    )
    .await;
    step(&format!("import {import_a} is of {title:?}"));

    // The form: a bad id shows the API's message inline; a good one starts an import.
    let root_field = b
        .find(Locator::Css("#import-form input[name=root]"))
        .await
        .expect("the form's root field");
    let submit = b
        .find(Locator::Css("#import-form button[type=submit]"))
        .await
        .expect("the form's button");
    root_field.send_keys("abc").await.expect("type");
    submit.click().await.expect("submit");
    let message = until(
        "the form's error message",
        Duration::from_secs(10),
        || async {
            let text = js(
                b,
                "var m = document.getElementById('form-msg'); \
             return m.hidden || !m.classList.contains('bad') ? null : m.textContent;",
            )
            .await;
            text.as_str().map(str::to_string)
        },
    )
    .await;
    assert!(message.contains("invalid anime id"), "message {message:?}");
    root_field.clear().await.expect("clear");
    root_field
        .send_keys(&format!("https://anilist.co/anime/{}/", second.root))
        .await
        .expect("type");
    submit.click().await.expect("submit");
    let row_js = format!(
        "var a = document.querySelector('tr[data-import-id] a[href=\"/franchise/{}\"]'); \
         return a ? Number(a.closest('tr').dataset.importId) : null;",
        second.root
    );
    let import_b = until("the new import's row", Duration::from_secs(15), || async {
        js(b, &row_js).await.as_i64()
    })
    .await;
    assert!(import_b != import_a && import_b != import_missing);
    assert_eq!(api_state(&http, &base, import_b).await, "running");
    // Let it fetch a little first, so the cancel stops it midway.
    until(
        "the new import to make progress",
        Duration::from_secs(30),
        || async {
            let figure = js(b, &figure_js(import_b)).await;
            figure
                .as_str()
                .and_then(|f| f.strip_prefix("Importing "))
                .and_then(|f| f.split('/').next())
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0)
        },
    )
    .await;
    step(&format!(
        "import {import_b}, started from the form, is under way"
    ));

    // The import of a missing id failed, and the page says why.
    assert_eq!(
        api_state(&http, &base, import_missing).await,
        "done_with_failures"
    );
    let failures_js = format!(
        "var f = document.getElementById('failures'); \
         return f !== null && f.textContent.indexOf('Import #{import_missing}') >= 0 \
         && f.querySelector('a[href=\"https://anilist.co/anime/{MISSING}\"]') !== null;"
    );
    until(
        "the failure in Recent failures",
        Duration::from_secs(15),
        || async { js(b, &failures_js).await.as_bool().filter(|ok| *ok) },
    )
    .await;
    let shots = screenshot_dir(scratch.path());
    js(b, "window.scrollTo(0, 0);").await;
    screenshot(b, &shots.join("status.png")).await;

    // Cancel it with its button.
    b.find(Locator::Css(&format!(
        "tr[data-import-id=\"{import_b}\"] button[data-action=cancel]"
    )))
    .await
    .expect("the Cancel button of a running import")
    .click()
    .await
    .expect("click Cancel");
    let state_js = format!(
        "var r = document.querySelector('tr[data-import-id=\"{import_b}\"]'); \
         return r ? r.dataset.state + '|' + r.querySelector('.state').textContent : null;"
    );
    until(
        "the row to say cancelled",
        Duration::from_secs(15),
        || async {
            let state = js(b, &state_js).await;
            state
                .as_str()
                .filter(|s| *s == "cancelled|Cancelled")
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(api_state(&http, &base, import_b).await, "cancelled");
    not_reloaded().await;
    step(&format!("cancelled import {import_b} with its button"));

    // The form's "Import #N started." goes by itself; no failure text speaks of CLI flags.
    until(
        "the form's message to clear",
        Duration::from_secs(15),
        || async {
            js(b, "return document.getElementById('form-msg').hidden;")
                .await
                .as_bool()
                .filter(|hidden| *hidden)
        },
    )
    .await;
    let page_text = js(b, "return document.body.textContent;").await;
    assert!(
        !page_text.as_str().unwrap_or("").contains("--force-refresh"),
        "the page speaks of a CLI flag: {page_text}"
    );

    // 400 px wide (a phone, an app's side panel): nothing scrolls sideways, and each import
    // is still there with its figure and its button.
    b.set_window_size(NARROW + frame_w, HEIGHT + frame_h)
        .await
        .expect("window size");
    let fits = until(
        "the page to lay out at 400 px",
        Duration::from_secs(10),
        || async {
            let sizes = js(
                b,
                "return [window.innerWidth, document.documentElement.scrollWidth, \
             document.querySelector('table.imports').getBoundingClientRect().right];",
            )
            .await;
            let inner = sizes[0].as_f64()?;
            (inner <= f64::from(NARROW) + 1.0).then_some(sizes)
        },
    )
    .await;
    let (inner, scroll, table_right) = (
        fits[0].as_f64().unwrap_or(0.0),
        fits[1].as_f64().unwrap_or(f64::MAX),
        fits[2].as_f64().unwrap_or(f64::MAX),
    );
    assert!(
        scroll <= inner && table_right <= inner,
        "at {inner} px the page is {scroll} px wide and the imports table ends at {table_right}"
    );
    let rows = js(
        b,
        "return document.querySelectorAll('tr.import .figure').length;",
    )
    .await;
    assert!(rows.as_u64().is_some_and(|n| n >= 3), "{rows}");
    screenshot(b, &shots.join("status-400px.png")).await;
    b.set_window_size(WIDTH + frame_w, HEIGHT + frame_h)
        .await
        .expect("window size");
    step("the page fits 400 px");

    // The first import ends; its row says so without a reload, and its franchise page
    // lists every member.
    until(
        "the first import to finish",
        Duration::from_secs(90),
        || async {
            let state = api_state(&http, &base, import_a).await;
            (state != "running").then_some(state)
        },
    )
    .await;
    assert_eq!(api_state(&http, &base, import_a).await, "done");
    let done = format!("Imported {n}/{n}", n = first.members.len());
    until("the row to say done", Duration::from_secs(15), || async {
        let figure = js(b, &figure_js(import_a)).await;
        figure.as_str().filter(|f| *f == done).map(|_| ())
    })
    .await;
    not_reloaded().await;
    step(&format!("import {import_a} finished: {done}"));

    b.goto(&format!("{base}franchise/{}", first.root))
        .await
        .expect("load the franchise page");
    let members = js(b, "return document.querySelectorAll('li.member').length;").await;
    assert_eq!(members, json!(first.members.len()), "members on the page");
    let chain = js(
        b,
        "return document.querySelectorAll('.chain li.member').length;",
    )
    .await;
    assert!(
        chain.as_u64().is_some_and(|n| n > 1),
        "a main story of {chain}"
    );
    // The watch order: every member, as the API orders them, the main story first.
    let watch_ids = js(
        b,
        "return Array.from(document.querySelectorAll('ol.watch-order li')) \
         .map(function (li) { return Number(li.dataset.animeId); });",
    )
    .await;
    let api_watch: Value = http
        .get(format!("{base}api/franchise/{}?order=watch", first.root))
        .send()
        .await
        .expect("GET the watch order")
        .json()
        .await
        .expect("JSON");
    let api_ids: Vec<Value> = api_watch["anime"]
        .as_array()
        .expect("anime")
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(
        watch_ids,
        json!(api_ids),
        "the page's watch order is the API's"
    );
    assert_eq!(api_ids.len(), first.members.len());
    let first_is_main = js(
        b,
        "var li = document.querySelector('ol.watch-order li'); \
         return li !== null && li.classList.contains('main');",
    )
    .await;
    assert_eq!(first_is_main, json!(true));
    let root_js = "var r = document.querySelector('.member.is-root'); \
                   return r ? r.dataset.animeId : null;";
    assert_eq!(js(b, root_js).await, json!(first.root.to_string()));
    // The whole page, not only what fits the window.
    let tall = js(b, "return document.documentElement.scrollHeight;").await;
    let tall = tall
        .as_u64()
        .map_or(HEIGHT, |h| h.clamp(u64::from(HEIGHT), 4000) as u32);
    b.set_window_size(WIDTH + frame_w, tall + frame_h)
        .await
        .expect("window size");
    screenshot(b, &shots.join("franchise.png")).await;

    browser.close().await;
    step("done");
}

/// The WebDriver session: closed at the end, or, when a failing test drops it, ended with a
/// blocking `DELETE /session/{id}` so Chromium quits before chromedriver is killed.
struct Session {
    client: Option<Client>,
    driver_port: u16,
    id: Option<String>,
}

impl Session {
    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let (Some(_), Some(id)) = (self.client.take(), self.id.as_ref()) else {
            return;
        };
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.driver_port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.driver_port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            // The answer comes once Chromium has quit.
            let _ = stream.read(&mut [0; 512]);
        }
    }
}
