//! `examples/embed.rs`, the README's library section, built by `cargo test` and run here: it
//! starts its own fake AniList, so it needs no network.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_embedding_example_runs_end_to_end() {
    // cargo test builds examples next to the test binaries: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let example = examples.join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.is_file(),
        "{} was not built: `cargo test --workspace` builds examples (or `cargo build --examples`)",
        example.display()
    );
    let started = Instant::now();
    let out = Command::new(&example).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(120));
    for needle in [
        "import 1 of anime",
        "Importing ",
        "clicked ",
        "import 1 finished: done, 120 anime",
        "franchise of ",
        "watch order: 120 entries, ",
        "import 2 cancelled",
        "cache: ",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
}
