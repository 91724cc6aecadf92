//! What a new user meets first: an AniList that cannot be reached, logs that can be turned
//! on, a progress line nothing garbles (and that says when the rate limit parks it), an honest
//! ETA, pipes, odd folder names, caps and contradictory upstream data. The real binary
//! against the fake AniList.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{describe, franchise, open_store, run, start_fake, text};
use fake_anilist::{FakeAniList, FakeConfig, Faults, Latency, RateModel, World, WorldSpec};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_anilist_is_named_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the discard port: every connection is refused.
    let url = "http://127.0.0.1:9/";
    for args in [
        vec!["import", "1", "--wait"],
        vec!["open", "1"],
        vec!["fetch", "1"],
    ] {
        let started = Instant::now();
        let out = run(franchise(dir.path(), url), &args, Duration::from_secs(60)).await;
        let took = started.elapsed();
        let err = text(&out.stderr);
        println!(
            "{args:?} without AniList: exit {:?} in {:.1} s",
            out.status.code(),
            took.as_secs_f64()
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            err.contains("cannot reach AniList at 127.0.0.1:9"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("--anilist-url"),
            "{args:?} gives a hint: {err}"
        );
        assert!(took < Duration::from_secs(30), "{args:?} took {took:?}");
    }
    // The import is still there, queued for when AniList can be reached.
    let out = run(
        franchise(dir.path(), url),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["imports"][0]["state"], "running", "{status:#}");
    assert_eq!(status["imports"][0]["failed"], 0, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_turned_on_by_rust_log_franchise_log_or_v_and_off_by_q() {
    let fake = start_fake(World::single_franchise(5, 41), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let root = fake.world().franchises()[0].root.to_string();
    let url = fake.url();
    let mut with_rust_log = franchise(dir.path(), &url);
    with_rust_log.env("RUST_LOG", "franchise=debug");
    let out = run(
        with_rust_log,
        &["import", &root, "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("DEBUG"),
        "RUST_LOG is honoured: {}",
        describe(&out)
    );

    // FRANCHISE_LOG is an alias, and not a setting the config loader refuses.
    let mut with_alias = franchise(dir.path(), &url);
    with_alias.env("FRANCHISE_LOG", "franchise=info");
    let out = run(
        with_alias,
        &["-v", "work", "--until-idle"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text(&out.stderr).contains("INFO"), "{}", describe(&out));

    let out = run(
        franchise(dir.path(), &url),
        &["-v", "status"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(
        franchise(dir.path(), "http://127.0.0.1:9/"),
        &["-q", "import", "1", "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !text(&out.stderr).contains("WARN"),
        "-q keeps warnings out: {}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_never_land_inside_the_progress_line_and_a_park_is_shown() {
    // A fake that answers one 429 (a 3 s ban) early in the import: the workers park, and warn.
    let world = World::single_franchise(40, 42);
    let root = world.franchises()[0].root.to_string();
    let fake = FakeAniList::start(FakeConfig {
        world,
        rate: RateModel::disabled().ban_secs(3),
        latency: Latency::new(Duration::from_millis(100), Duration::ZERO),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = franchise(dir.path(), &fake.url());
    cmd.args(["import", &root, "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut forced = false;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if !forced && line.starts_with("Importing") {
                // The next request gets a 429 with a 3 s Retry-After.
                fake.force_rate_limit();
                forced = true;
            }
            seen.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("import --wait finishes");
    let status = child.wait().await.unwrap();
    let all = seen.join("\n");
    assert!(status.success(), "{all}");
    for line in &seen {
        let progress = line.contains("Importing");
        let log = line.contains("WARN") || line.contains("ERROR");
        assert!(
            !(progress && log),
            "a log landed inside the progress line: {line:?}"
        );
    }
    assert!(all.contains("WARN"), "the 429 was logged: {all}");
    assert!(
        all.contains("waiting for AniList's rate limit, resuming in"),
        "the park is shown: {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eta_guesses_the_growth_over_a_floor_from_what_the_walk_knows() {
    let world = WorldSpec::default()
        .seed(43)
        .franchises(5)
        .giant(300, 12)
        .clean()
        .build();
    let giant = world.giants().next().unwrap().root.to_string();
    let fake = start_fake(world, Duration::from_millis(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    let mut child = common::process::spawn(
        franchise(dir.path(), &url),
        &["import", &giant, "--wait"],
        dir.path(),
        "import",
    );
    // Early in the walk: levels remain, each at least one 400 ms round trip.
    let deadline = Instant::now() + Duration::from_secs(60);
    let eta = loop {
        let out = run(
            franchise(dir.path(), &url),
            &["status", "--json"],
            Duration::from_secs(30),
        )
        .await;
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        let import = &status["imports"][0];
        if import["state"] == "running" && import["done"].as_u64().unwrap_or(0) >= 1 {
            break import.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the import never ran: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secs = eta["eta_secs"].as_f64().expect("an ETA while running");
    let floor = eta["eta_at_least_secs"]
        .as_f64()
        .expect("a floor while the walk may grow");
    assert!(floor >= 0.4, "at least one round trip is left: {eta:#}");
    // The walk has shown some of its 13 levels; the guess adds as many again as it showed.
    let shown = eta["frontier_depth"].as_u64().expect("frontier_depth") + 1;
    assert!(shown >= 2, "{eta:#}");
    assert!(
        secs > floor,
        "the guess adds the levels not seen yet: {eta:#}"
    );
    let status = common::process::wait_child(&mut child, Duration::from_secs(120), "import").await;
    assert!(status.success());
    let log = common::process::child_log(dir.path(), "import");
    assert!(log.contains(" left"), "import --wait shows the ETA: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_show_quietly() {
    let fake = start_fake(World::single_franchise(60, 44), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let root = fake.world().franchises()[0].root.to_string();
    let out = run(
        franchise(dir.path(), &fake.url()),
        &["import", &root, "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    for args in [
        vec!["show", &root],
        vec!["show", &root, "--dot"],
        vec!["status"],
    ] {
        // `franchise show ID | head -n 1`: read one line, then close the pipe.
        let mut cmd = franchise(dir.path(), &fake.url());
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = stdout.next_line().await.unwrap();
        assert!(first.is_some());
        drop(stdout);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{args:?}: {}",
            describe(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_name_is_a_path_not_a_url() {
    let fake = start_fake(World::single_franchise(3, 45), Duration::ZERO).await;
    let root = fake.world().franchises()[0].root.to_string();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a%20b", "x?y", "%ff", "with space", "#hash"] {
        let data = dir.path().join(name);
        let out = run(
            franchise(&data, &fake.url()),
            &["import", &root, "--wait"],
            Duration::from_secs(60),
        )
        .await;
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert!(
            data.join("franchise.sqlite").is_file(),
            "{name}: the store is in its own dir"
        );
        assert!(data.join("queue.redb").is_file(), "{name}");
    }
    // `a%20b` never touched its sibling `a b`.
    assert!(!dir.path().join("a b").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_import_says_so_with_the_edges_it_left() {
    let world = World::single_franchise(30, 46);
    let root = world.franchises()[0].root.to_string();
    let fake = start_fake(world, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        franchise(dir.path(), &fake.url()),
        &["import", &root, "--wait", "--max-items", "5"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("capped"), "{stdout}");
    assert!(stdout.contains("left unwalked"), "{stdout}");
    let out = run(
        franchise(dir.path(), &fake.url()),
        &["status", "--json"],
        Duration::from_secs(30),
    )
    .await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let import = &status["imports"][0];
    assert_eq!(import["state"], "capped", "{status:#}");
    assert_eq!(import["discovered"], 5, "{status:#}");
    assert!(import["unwalked_edges"].as_u64().unwrap() > 0, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manga_record_for_an_anime_query_is_malformed_not_stored() {
    // The world's franchise has a MANGA source; a fake ignoring `type: ANIME` returns it.
    let world = World::single_franchise(6, 47);
    let franchise_ = world.franchises()[0].clone();
    let manga = franchise_.sources[0];
    let fake = FakeAniList::start(FakeConfig {
        world: world.clone(),
        rate: RateModel::disabled(),
        faults: Faults {
            ignore_type_filter: true,
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        franchise(dir.path(), &fake.url()),
        &["fetch", &franchise_.root.to_string(), &manga.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("MANGA record"),
        "the manga is named as a wrong answer: {}",
        describe(&out)
    );
    // An import never stores it as an anime, and never follows it.
    let out = run(
        franchise(dir.path(), &fake.url()),
        &["import", &franchise_.root.to_string(), "--wait"],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let pool = open_store(dir.path()).await;
    let kinds: Vec<String> = sqlx::query_scalar("SELECT DISTINCT kind FROM anime")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["ANIME".to_string()]);
    pool.close().await;
}

/// What a hostile or broken AniList sends, after its response head.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A chunked body that never ends.
    EndlessChunks,
    /// 256 MiB of spaces, gzipped to a quarter of a megabyte.
    GzipBomb,
    /// 300 MB, no length given, the connection closed at its end.
    Huge,
}

/// A loopback server answering every connection with `kind`.
async fn hostile_server(kind: Hostile) -> String {
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bomb = std::sync::Arc::new({
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        if matches!(kind, Hostile::GzipBomb) {
            let block = vec![b' '; 1024 * 1024];
            for _ in 0..256 {
                encoder.write_all(&block).unwrap();
            }
        }
        encoder.finish().unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let bomb = bomb.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut request).await;
                let block = vec![b' '; 64 * 1024];
                match kind {
                    Hostile::EndlessChunks => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                    Transfer-Encoding: chunked\r\n\r\n";
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = [
                            format!("{:x}\r\n", block.len()).into_bytes(),
                            block,
                            b"\r\n".to_vec(),
                        ]
                        .concat();
                        while socket.write_all(&chunk).await.is_ok() {}
                    }
                    Hostile::GzipBomb => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                            bomb.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&bomb).await;
                    }
                    Hostile::Huge => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                    Connection: close\r\n\r\n";
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for _ in 0..(300_000_000 / block.len()) {
                            if socket.write_all(&block).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    url
}

/// Runs the binary to its end and returns its exit code and peak resident memory (MiB), as
/// the kernel accounted it (`wait4`'s `ru_maxrss`: std's `wait` cannot report it).
#[allow(clippy::zombie_processes)]
fn run_for_peak_rss(data_dir: &std::path::Path, url: &str, args: &[&str]) -> (i32, f64) {
    let child = std::process::Command::new(common::process::BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--anilist-url")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: plain libc calls on zeroed out-structs; the child is ours and not waited for
    // elsewhere (std's Child is dropped without a wait).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss as f64 / 1024.0)
}

/// An answer with no end, a gzip bomb and a 300 MB body are each a failed request, read no
/// further than the answer cap: the process exits 1 with peak memory far under 200 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_are_failed_requests_within_bounded_memory() {
    for kind in [Hostile::EndlessChunks, Hostile::GzipBomb, Hostile::Huge] {
        let url = hostile_server(kind).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let started = Instant::now();
        let (code, peak) =
            tokio::task::spawn_blocking(move || run_for_peak_rss(&path, &url, &["fetch", "1"]))
                .await
                .unwrap();
        println!(
            "{kind:?}: `franchise fetch 1` exit {code} in {:.1} s, peak RSS {peak:.1} MiB",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(code, 1, "{kind:?}");
        assert!(peak < 200.0, "{kind:?}: peak RSS {peak:.1} MiB");
    }
}
