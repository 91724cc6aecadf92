//! Logging for the command line: `RUST_LOG` (or its alias `FRANCHISE_LOG`) if set, else a
//! level from `-v`/`-q`. Log lines go to stderr through the progress bars, which step aside
//! while a line prints, so a warning never lands inside "Importing 82/102…".

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The one set of progress bars of this process.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

pub fn init(verbose: u8, quiet: bool) {
    // At the default level, apalis' and sqlx's own lines about a lost connection, and sqlx's
    // "slow statement" notes (reading a 100k-anime franchise takes a second), are left out:
    // franchise says what matters in its own words (and -v shows theirs).
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,apalis_core=off,sqlx_core=error,sqlx::query=error",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_from_env("FRANCHISE_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(AboveBars)
        .init();
}

/// Colour only where a person reads it: stderr is a terminal and `NO_COLOR` is unset or
/// empty (no-color.org). A log redirected to a file or a pipe stays plain text.
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes each log line above the progress bars.
#[derive(Clone, Copy)]
struct AboveBars;

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::new())
    }
}

struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        bars().suspend(|| {
            let _ = std::io::stderr().lock().write_all(&line);
        });
    }
}
