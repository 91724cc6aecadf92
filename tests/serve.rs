//! `franchise serve` as a user runs it: the binary on a random port, and the CLI of another
//! terminal talking to it (import, open, cancel, retry, status) while its workers run; a
//! token both sides read from the environment; SIGTERM stops it gracefully.

mod common;

use std::time::Duration;

use common::process::{
    child_log, franchise, run, signal, spawn_serve, start_fake, text, wait_child,
};
use fake_anilist::World;
use serde_json::Value;
use tokio::process::Command;

async fn status_json(cmd: Command) -> Value {
    let out = run(cmd, &["status", "--json"], Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_of_another_terminal_talks_to_the_serving_process() {
    let world = World::single_franchise(30, 23);
    let big = world.franchises()[0].root;
    let other = world.franchises()[1].root;
    let fake = start_fake(world, Duration::from_millis(400)).await;
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let cli = || franchise(data.path(), &fake.url());
    // One level per request, so the 23-level import outlasts the commands below.
    let mut serve = cli();
    serve.env("FRANCHISE_ANILIST__WALK_LEVELS", "1");
    let (mut server, url) = spawn_serve(serve, logs.path(), "serve").await;

    // `import` is started by the server, not recorded behind its back.
    let out = run(
        cli(),
        &["import", &big.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "started by the franchise process that owns the queue, at {url}"
        )),
        "{}",
        text(&out.stdout)
    );

    // `open` works while the server's workers run (it used to be refused).
    let out = run(
        cli(),
        &["open", &other.to_string(), "--json"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let opened: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(opened["id"], other);
    let out = run(cli(), &["open", "999999"], Duration::from_secs(30)).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("999999"));

    // `cancel` and `retry` go through the API, with its answers.
    let out = run(cli(), &["cancel", "1", "--json"], Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cancelled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let out = run(cli(), &["cancel", "1"], Duration::from_secs(30)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already finished"),
        "{}",
        text(&out.stderr)
    );
    let out = run(cli(), &["retry", "1", "--wait"], Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // `status` is the server's own view: its cache is on (a reader's would be off).
    let status = status_json(cli()).await;
    assert_eq!(status["cache"]["enabled"], true, "{status}");
    assert_eq!(status["imports"][0]["state"], "done", "{status}");
    assert_eq!(status["workers"][0]["api_url"], url.as_str());

    // SIGTERM: a graceful stop, exit 0, and the address is withdrawn.
    signal(server.id().unwrap(), "TERM").await;
    let exit = wait_child(&mut server, Duration::from_secs(30), "serve after SIGTERM").await;
    assert_eq!(exit.code(), Some(0), "{}", child_log(logs.path(), "serve"));
    let status = status_json(cli()).await;
    assert!(status["workers"].as_array().unwrap().is_empty(), "{status}");
}

#[tokio::test]
async fn with_a_token_the_cli_sends_it_and_a_client_without_it_is_told_why() {
    let world = World::single_franchise(4, 29);
    let root = world.franchises()[0].root;
    let fake = start_fake(world, Duration::from_millis(5)).await;
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let token = "a-long-enough-token-for-tests";
    let with_token = || {
        let mut cmd = franchise(data.path(), &fake.url());
        cmd.env("FRANCHISE_SERVE__TOKEN", token);
        cmd
    };
    let (mut server, url) = spawn_serve(with_token(), logs.path(), "serve").await;

    let out = run(
        with_token(),
        &["import", &root.to_string(), "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&url), "{}", text(&out.stdout));

    let out = run(
        franchise(data.path(), &fake.url()),
        &["import", &root.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Authorization: Bearer"),
        "{}",
        text(&out.stderr)
    );

    // `status` needs no token: without one it reads the store itself, and says whose view
    // it missed.
    let out = run(
        franchise(data.path(), &fake.url()),
        &["status"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("FRANCHISE_SERVE__TOKEN"),
        "{}",
        text(&out.stderr)
    );

    signal(server.id().unwrap(), "TERM").await;
    let exit = wait_child(&mut server, Duration::from_secs(30), "serve").await;
    assert_eq!(exit.code(), Some(0), "{}", child_log(logs.path(), "serve"));
}

/// Raises this process's descriptor limit to at least `want` (up to the hard limit).
fn at_least_descriptors(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// 1,100 idle connections (no token needed to open one) against a `serve` limited to 1,024
/// descriptors: a normal request still gets an answer within 5 s, the import running
/// meanwhile finishes exactly, and nothing is blamed on the disk.
#[tokio::test]
async fn idle_connections_never_starve_serve_of_descriptors() {
    at_least_descriptors(4096);
    let world = World::single_franchise(150, 24);
    let root = world.franchises()[0].root;
    let size = world.walk(root).len();
    let fake = start_fake(world, Duration::from_millis(100)).await;
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let cli = || franchise(data.path(), &fake.url());
    let mut serve = cli();
    serve.env("FRANCHISE_ANILIST__WALK_LEVELS", "1");
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        serve.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut server, url) = spawn_serve(serve, logs.path(), "serve").await;
    let out = run(
        cli(),
        &["import", &root.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let asked = std::time::Instant::now();
    let answer = http
        .get(format!("{url}api/status"))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no answer within 5 s: {e}\n{}",
                child_log(logs.path(), "serve")
            )
        });
    assert!(answer.status().is_success(), "{}", answer.status());
    println!(
        "with 1,100 idle connections open, /api/status answered in {:.0} ms",
        asked.elapsed().as_secs_f64() * 1000.0
    );
    drop(idle);

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        let status = status_json(cli()).await;
        if status["imports"][0]["state"] != "running" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["imports"][0]["state"], "done", "{status}");
    assert_eq!(status["imports"][0]["done"], size, "{status}");
    assert_eq!(status["imports"][0]["failed"], 0, "{status}");
    assert!(server.try_wait().unwrap().is_none(), "serve must still run");
    let log = child_log(logs.path(), "serve");
    assert!(!log.contains("disk"), "{log}");
    signal(server.id().unwrap(), "TERM").await;
    let exit = wait_child(&mut server, Duration::from_secs(30), "serve after SIGTERM").await;
    assert_eq!(exit.code(), Some(0), "{}", child_log(logs.path(), "serve"));
}
