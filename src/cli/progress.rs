//! Waiting for imports with a one-line progress display ("Importing 3/10 related anime…"),
//! read from the store so it works whichever process runs the workers.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use franchise::store::{ImportProgress, Store};

use super::{EXIT_INTERRUPTED, EXIT_PARTIAL};

/// Polls the store until every import in `ids` has nothing queued. Ctrl-C stops the wait.
pub async fn wait_for_imports(store: &Store, ids: &[i64], json: bool) -> anyhow::Result<ExitCode> {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let mut all = Vec::new();
        for id in ids {
            all.extend(store.import_progress(Some(*id)).await?);
        }
        let line = describe(&all);
        if !json && line != last_line {
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
            last_line = line;
        }
        if all.iter().all(ImportProgress::is_finished) {
            if tty && !json {
                eprintln!();
            }
            return Ok(summary(&all, json));
        }
        tokio::select! {
            _ = &mut interrupted => {
                if !json {
                    eprintln!("\ninterrupted: the imports continue on the next `franchise work`");
                }
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn describe(all: &[ImportProgress]) -> String {
    let discovered: u64 = all.iter().map(|p| p.discovered).sum();
    let settled: u64 = all.iter().map(|p| p.done + p.failed).sum();
    let failed: u64 = all.iter().map(|p| p.failed).sum();
    let mut line = format!("Importing {settled}/{discovered} related anime…");
    if failed > 0 {
        line.push_str(&format!(" ({failed} failed)"));
    }
    line
}

fn summary(all: &[ImportProgress], json: bool) -> ExitCode {
    let mut failed_any = false;
    for p in all {
        failed_any |= p.failed > 0;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "import_id": p.import_id, "root": p.root, "discovered": p.discovered,
                    "done": p.done, "failed": p.failed, "failures": p.failures,
                })
            );
            continue;
        }
        println!(
            "import {} of anime {}: {} anime, {} failed",
            p.import_id, p.root, p.done, p.failed
        );
        for (reason, count) in &p.failures {
            println!("  {count} × {reason}");
        }
    }
    if failed_any {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    }
}
