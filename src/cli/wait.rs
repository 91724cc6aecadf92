//! Waiting for imports with a progress bar ("Importing 37/120 related anime… ~12 s left"), fed by the importer's event stream. While the rate budget parks the workers the
//! bar says so. A process that does not own the queue waits on the owner's progress and takes
//! the queue over if the owner goes away.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use franchise::{
    Error, Event, FirstContact, ImportFilter, ImportProgress, ImportState, Importer, ParkReason,
    QueueOwner, UpstreamError, UpstreamState,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::local_api::LocalApi;
use super::log::{bars, colour_on_stderr};
use super::signal::stop_signal;
use super::{EXIT_INTERRUPTED, EXIT_PARTIAL};
use crate::out;

/// How often the store is read again (events may have been missed, or come from another
/// process) and a process that does not own the queue tries to take it.
const TICK: Duration = Duration::from_secs(1);

/// Waits until every import in `ids` has finished; prints a summary (JSON lines with
/// `json`). Exit 3 if any item failed, 130 if interrupted.
///
/// While this process runs the workers it also serves the JSON API on a loopback port, so a
/// click from another terminal is answered here.
pub async fn wait_for_imports(
    importer: &Importer,
    ids: &[i64],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut api = LocalApi::start(importer).await;
    let outcome = wait_loop(importer, ids, json, &mut api).await;
    if let Some(api) = api {
        api.stop().await;
    }
    outcome
}

async fn wait_loop(
    importer: &Importer,
    ids: &[i64],
    json: bool,
    api: &mut Option<LocalApi>,
) -> anyhow::Result<ExitCode> {
    let mut events = importer.subscribe();
    let mut display = Display::new(json);
    let mut latest: BTreeMap<i64, ImportProgress> = BTreeMap::new();
    let mut etas: BTreeMap<i64, Estimate> = BTreeMap::new();
    let mut parked: Option<(i64, ParkReason)> = None;
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(TICK);
    let mut read_store = true;
    loop {
        if read_store {
            read_store = false;
            for id in ids {
                match read_one(importer, &mut latest, &mut etas, *id).await {
                    Ok(()) => {}
                    // The database is gone for now (the workers say so once): read again at
                    // the next tick, and go on once it answers.
                    Err(e) if e.is_temporary() => read_store = true,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        display.show(&latest, &etas, parked);
        if latest.values().all(ImportProgress::is_finished) {
            break;
        }
        if let Some(error) = failed_first_contact(importer).await {
            display.finish();
            return Err(error);
        }
        tokio::select! {
            () = &mut stop => {
                display.finish();
                if !json {
                    eprintln!("interrupted: {}", who_goes_on(importer).await);
                }
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            halt = importer.until_halted() => {
                display.finish();
                return Err(Error::Halted(halt).into());
            }
            event = events.recv() => match event {
                Some(Event::Progress { import_id, eta, .. }) if latest.contains_key(&import_id) => {
                    let _ = importer.progress(import_id).await.map(|p| latest.insert(import_id, p));
                    match eta {
                        Some(eta) => etas.insert(import_id, Estimate::new(eta.secs, eta.waiting_secs)),
                        None => etas.remove(&import_id),
                    };
                }
                Some(Event::Finished { .. }) => read_store = true,
                Some(Event::BudgetParked { until_ms, reason }) => parked = Some((until_ms, reason)),
                Some(Event::BudgetResumed) => parked = None,
                Some(Event::UpstreamDown { retry_at_ms: Some(until), state, .. }) => {
                    parked = Some((until, park_reason(state)));
                }
                Some(Event::Lagged { .. }) => read_store = true,
                Some(_) => {}
                None => read_store = true,
            },
            _ = tick.tick() => {
                read_store = true;
                match take_over_if_free(importer, &display).await {
                    Ok(true) => *api = LocalApi::start(importer).await,
                    Ok(false) => {}
                    Err(e) if e.is_temporary() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    display.finish();
    summary(&latest, json)
}

/// A one-shot command gives up when its first contact with AniList found it down: within
/// seconds, with the cause and what to do. Once AniList answered, an outage is waited out.
async fn failed_first_contact(importer: &Importer) -> Option<anyhow::Error> {
    let error = match importer.first_contact() {
        FirstContact::Failed(error) => error,
        // Another process probed AniList within the last pause and found it down: fresh
        // news, so no need to wait for the next probe to say the same.
        FirstContact::NotYet => {
            // Only where this process runs the workers: an owner elsewhere (serve, work) is
            // already waiting AniList out for this import.
            if matches!(importer.queue_owner(), QueueOwner::OtherProcess { .. }) {
                return None;
            }
            let upstream = importer.upstream().await.ok()?;
            if !upstream.is_down() || upstream.retry_at_ms.is_none() {
                return None;
            }
            let hint = if upstream.state == UpstreamState::Refused {
                referer_hint(importer.settings())
            } else {
                String::new()
            };
            return Some(anyhow::anyhow!(
                "{}{hint}. The import stays recorded: it runs at the next `franchise work` (or \
                 `franchise serve`, which waits for AniList by itself)",
                Error::UpstreamDown(upstream)
            ));
        }
        _ => return None,
    };
    Some(anyhow::anyhow!(
        "{}. The import stays recorded: it runs at the next `franchise work` (or `franchise \
         serve`, which waits for AniList by itself). `franchise doctor` checks the connection step by step",
        first_contact_advice(&error, importer.settings())
    ))
}

/// What to tell a person whose command found AniList down at first contact.
pub fn first_contact_advice(error: &UpstreamError, settings: &franchise::Settings) -> String {
    let mut text = error.to_string();
    if let UpstreamError::Disabled { .. } = error {
        text.push_str(&referer_hint(settings));
    }
    text
}

/// What to tell a person whom AniList refused with its 403: the gate, and the Referer sent.
pub fn referer_hint(settings: &franchise::Settings) -> String {
    let mut text = String::new();
    {
        text.push_str(
            ". AniList's edge answers this 403 to every request without a Referer header, and \
             during real outages",
        );
        if settings.referer_is_default() {
            text.push_str("; franchise sends one, so this is most likely an outage");
        } else {
            text.push_str(&format!(
                "; this process sends the Referer {:?} (changed from the default): check that \
                 a proxy in between does not drop it",
                settings.referer()
            ));
        }
    }
    text
}

fn park_reason(state: UpstreamState) -> ParkReason {
    match state {
        UpstreamState::Refused => ParkReason::Outage,
        UpstreamState::NotAnilist => ParkReason::NotAnilist,
        UpstreamState::Parked => ParkReason::RateLimited,
        _ => ParkReason::Unreachable,
    }
}

/// An import's estimate as last heard, and until when its next request waits for the rate
/// limit (Unix ms), if that was worth saying.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    secs: f64,
    paced_until_ms: Option<i64>,
}

impl Estimate {
    fn new(secs: f64, waiting_secs: Option<f64>) -> Self {
        Self {
            secs,
            paced_until_ms: waiting_secs.map(|w| franchise_now_ms() + (w * 1000.0) as i64),
        }
    }
}

/// Reads one import's progress and estimate from the store.
async fn read_one(
    importer: &Importer,
    latest: &mut BTreeMap<i64, ImportProgress>,
    etas: &mut BTreeMap<i64, Estimate>,
    import_id: i64,
) -> Result<(), Error> {
    let status = importer.status(&ImportFilter::one(import_id)).await?;
    match status.imports.into_iter().next() {
        Some(found) => {
            match found.eta_secs {
                Some(secs) => etas.insert(import_id, Estimate::new(secs, found.eta_waiting_secs)),
                None => etas.remove(&import_id),
            };
            latest.insert(import_id, found.progress);
            Ok(())
        }
        None => Err(Error::UnknownImport(import_id)),
    }
}

/// A process recording for another owner runs the workers itself once that owner is gone.
/// True when it took them over.
async fn take_over_if_free(importer: &Importer, display: &Display) -> Result<bool, Error> {
    if !matches!(importer.queue_owner(), QueueOwner::OtherProcess { .. }) {
        return Ok(false);
    }
    match importer.start().await {
        Ok(()) => {
            display.note("the process that owned the queue is gone: running the workers here");
            Ok(true)
        }
        Err(Error::NotOwner { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Who runs the imports once this process stops waiting: the owner of the embedded queue,
/// other live workers (PostgreSQL), or nobody until the next `work`.
async fn who_goes_on(importer: &Importer) -> String {
    if let QueueOwner::OtherProcess { pid } = importer.queue_owner() {
        return match pid {
            Some(pid) => format!(
                "the imports go on in the franchise process that owns the queue (pid {pid})"
            ),
            None => "the imports go on in the franchise process that owns the queue".to_string(),
        };
    }
    let me = std::process::id();
    let others: Vec<String> = match importer
        .status(&ImportFilter::in_state(ImportState::Running))
        .await
    {
        Ok(status) => status
            .workers
            .iter()
            .filter(|w| w.pid != me)
            .map(|w| format!("pid {} on {}", w.pid, w.host))
            .collect(),
        Err(_) => Vec::new(),
    };
    if others.is_empty() {
        "the imports stay recorded and go on at the next `franchise work`, `serve` or \
         `import --wait`"
            .to_string()
    } else {
        format!(
            "the imports go on in the other franchise worker process{} running ({})",
            if others.len() == 1 { "" } else { "es" },
            others.join(", ")
        )
    }
}

/// The bar on a terminal; plain lines when stderr is not one; nothing with --json.
struct Display {
    bar: Option<ProgressBar>,
    plain: bool,
    last: String,
}

/// Columns the bar itself takes; its message gets the rest of the line (`wide_msg`), so bar
/// and message fit an 80-column terminal on one line and are cleared whole on exit.
const BAR_COLUMNS: usize = 12;

impl Display {
    fn new(json: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && !json).then(|| {
            let bar = bars().add(ProgressBar::new(1));
            let template = if colour_on_stderr() {
                format!("{{bar:{BAR_COLUMNS}.cyan/blue}} {{wide_msg}}")
            } else {
                format!("{{bar:{BAR_COLUMNS}}} {{wide_msg}}")
            };
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            bar,
            plain: !tty && !json,
            last: String::new(),
        }
    }

    fn show(
        &mut self,
        latest: &BTreeMap<i64, ImportProgress>,
        etas: &BTreeMap<i64, Estimate>,
        parked: Option<(i64, ParkReason)>,
    ) {
        let discovered: u64 = latest.values().map(|p| p.discovered).sum();
        let settled: u64 = latest.values().map(ImportProgress::settled).sum();
        let failed: u64 = latest.values().map(|p| p.failed).sum();
        let now = franchise_now_ms();
        let running: Vec<&Estimate> = latest
            .values()
            .filter(|p| !p.is_finished())
            .filter_map(|p| etas.get(&p.import_id))
            .collect();
        let eta = running
            .iter()
            .map(|e| e.secs)
            .fold(None, |max: Option<f64>, e| {
                Some(max.map_or(e, |m| m.max(e)))
            });
        // The budget's pace holds the next request back: say so, as for a 429's park.
        let paced = running
            .iter()
            .filter_map(|e| e.paced_until_ms)
            .min()
            .map(|until| (until, ParkReason::RateLimited));
        let waiting = parked.or(paced).filter(|(until, _)| *until > now);
        let state = state_text(failed, waiting, now, eta);
        if let Some(bar) = &self.bar {
            bar.set_length(discovered.max(1));
            bar.set_position(settled);
            // The bar says "importing"; its message keeps to what changes.
            bar.set_message(format!("{settled}/{discovered}{state}"));
        }
        let line = format!("Importing {settled}/{discovered} related anime…{state}");
        if self.bar.is_none() && self.plain && line != self.last {
            eprintln!("{line}");
        }
        self.last = line;
    }

    fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.plain => eprintln!("{text}"),
            None => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// What follows the counts: a wait for AniList, or the failures and what is left. (During a
/// wait the failures are left out, so the line fits; the summary lists them.)
fn state_text(
    failed: u64,
    parked: Option<(i64, ParkReason)>,
    now_ms: i64,
    eta: Option<f64>,
) -> String {
    let mut text = String::new();
    if failed > 0 && parked.is_none() {
        text.push_str(&format!(" ({failed} failed)"));
    }
    match parked {
        Some((until, reason)) => {
            let what = match reason {
                ParkReason::Outage => "AniList refuses requests (403); next try",
                ParkReason::Unreachable => "AniList cannot be reached; next try",
                ParkReason::NotAnilist => "what answers is not AniList; next try",
                _ => "waiting for AniList's rate limit, resuming",
            };
            text.push_str(&format!(
                " {what} in {}",
                human((until - now_ms) as f64 / 1000.0)
            ));
        }
        None => {
            // An estimate: it guesses how much the walk still grows (status gives the floor).
            if let Some(secs) = eta.filter(|s| *s >= 1.0) {
                text.push_str(&format!(", ~{} left", human(secs)));
            }
        }
    }
    text
}

pub(super) fn franchise_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn human(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs} s")
    }
}

fn summary(all: &BTreeMap<i64, ImportProgress>, json: bool) -> anyhow::Result<ExitCode> {
    let mut failed_any = false;
    for p in all.values() {
        failed_any |= p.failed > 0;
        if json {
            out!(
                "{}",
                serde_json::json!({
                    "import_id": p.import_id, "root": p.root, "state": p.state,
                    "discovered": p.discovered, "done": p.done, "failed": p.failed,
                    "cancelled": p.cancelled, "unwalked_edges": p.unwalked_edges,
                    "failures": p.failures,
                })
            );
            continue;
        }
        out!(
            "import {} of anime {}: {}, {} anime, {} failed",
            p.import_id,
            p.root,
            p.state,
            p.done,
            p.failed
        );
        for (reason, count) in &p.failures {
            out!("  {count} × {reason}");
        }
        if p.state == ImportState::Capped || p.unwalked_edges > 0 {
            out!(
                "  capped: {} followed relations were left unwalked (raise --depth or \
                 --max-items to take them in)",
                p.unwalked_edges
            );
        }
        if p.state == ImportState::Cancelled {
            out!("  cancelled: {} anime were not fetched", p.cancelled);
        }
    }
    Ok(if failed_any {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bar, a space and the longest message of a big import fit 80 columns.
    #[test]
    fn the_longest_bar_line_fits_eighty_columns() {
        let now = 1_000_000;
        let parked = [
            ParkReason::Outage,
            ParkReason::Unreachable,
            ParkReason::NotAnilist,
            ParkReason::RateLimited,
        ];
        for reason in parked {
            let state = state_text(99_999, Some((now + 3_599_000, reason)), now, None);
            let line = format!("{} 999999/999999{state}", "█".repeat(BAR_COLUMNS));
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        let state = state_text(99_999, None, now, Some(3_599.0));
        let line = format!("{} 999999/999999{state}", "█".repeat(BAR_COLUMNS));
        assert!(line.chars().count() <= 80, "{line}");
        assert!(line.contains("(99999 failed), ~59m59s left"), "{line}");
    }
}
