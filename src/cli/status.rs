//! `franchise status`: progress and ETA per import, queue depth per lane, the rate budget,
//! the live worker processes and the read cache. Reads the store, so it works from any
//! process, and on a read-only data dir.

use std::process::ExitCode;

use clap::Args;
use franchise::{ImportFilter, ImportState, Settings, Status};

use super::client::ApiClient;
use super::wait::{franchise_now_ms, human};
use crate::out;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Only imports still running.
    #[arg(long)]
    active: bool,
}

pub async fn run(settings: Settings, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.read_only().open().await?;
    let filter = if args.active {
        ImportFilter::in_state(ImportState::Running)
    } else {
        ImportFilter::all()
    };
    // The process serving this data dir knows its own cache and queue best.
    let status = match ApiClient::of(&importer).await {
        Some(api) => match api.status(&filter).await {
            Ok(status) => Ok(status),
            // It has just gone: the store is the whole truth now.
            Err(e) if super::client::OwnerGone::is(&e) => {
                importer.status(&filter).await.map_err(anyhow::Error::from)
            }
            // Status is only a read: whatever the serving process refuses, the store answers.
            Err(e) => {
                let why = match e.downcast_ref::<super::client::ApiRefused>() {
                    Some(refused) if refused.status == reqwest::StatusCode::UNAUTHORIZED => {
                        "needs a token for its live view (set FRANCHISE_SERVE__TOKEN to the one                          it was started with)"
                            .to_string()
                    }
                    _ => format!("did not answer ({e})"),
                };
                eprintln!(
                    "note: the franchise process at {} {why}; showing what the store holds",
                    api.base()
                );
                importer.status(&filter).await.map_err(anyhow::Error::from)
            }
        },
        None => importer.status(&filter).await.map_err(anyhow::Error::from),
    };
    importer.close().await;
    let status = status?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_text(&status, args.active)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(status: &Status, active: bool) -> anyhow::Result<()> {
    if status.imports.is_empty() {
        if active {
            out!("no import is running");
        } else {
            out!("no imports yet: `franchise import <ID>` starts one");
        }
    }
    for i in &status.imports {
        let p = &i.progress;
        let eta = match i.eta_secs {
            Some(s) => {
                let floor = i
                    .eta_at_least_secs
                    .filter(|f| *f >= 1.0 && s - f >= 1.0)
                    .map(|f| format!(" (at least {})", human(f)))
                    .unwrap_or_default();
                let waiting = i
                    .eta_waiting_secs
                    .map(|w| {
                        format!(
                            " (waiting for AniList's rate limit, resuming in {})",
                            human(w)
                        )
                    })
                    .unwrap_or_default();
                format!(", ETA ~{}{floor}{waiting}", human(s))
            }
            None if !p.is_finished() && status.workers.is_empty() => {
                ", no worker runs it (`franchise work` does)".to_string()
            }
            None => String::new(),
        };
        out!(
            "import {:<4} root {:<8} {:<18} {}/{} done, {} failed, {} queued{eta}",
            p.import_id,
            p.root,
            p.state.as_str(),
            p.done,
            p.discovered,
            p.failed,
            p.queued
        );
        for (reason, count) in &p.failures {
            out!("    {count} × {reason}");
        }
        if p.unwalked_edges > 0 {
            out!(
                "    capped: {} followed relations left unwalked (raise --depth or --max-items)",
                p.unwalked_edges
            );
        }
        if p.cancelled > 0 {
            out!("    {} anime cancelled", p.cancelled);
        }
    }
    match &status.queue {
        Some(q) => out!(
            "queue   interactive {} pending, {} running | background {} pending, {} running, \
             {} done, {} failed",
            q.interactive.pending,
            q.interactive.running,
            q.background.pending,
            q.background.running,
            q.background.done,
            q.background.failed
        ),
        None => out!("queue   (no worker running; `franchise work` runs the queue)"),
    }
    match &status.budget {
        Some(b) => out!(
            "budget  {}/{} requests in the current {:.0} s window, pace {:.0}/min, {} made, {} \
             rate-limited{}",
            b.used_in_window,
            b.limit_per_window,
            b.window_secs,
            b.pace_per_minute,
            b.requests_made,
            b.rate_limited_seen,
            match (b.parked_for_ms, b.parked_reason) {
                (Some(ms), Some(reason)) => format!(
                    ", parked {} ({})",
                    human(ms as f64 / 1000.0),
                    reason.as_str()
                ),
                _ => String::new(),
            }
        ),
        None => out!("budget  (could not be read)"),
    }
    if let Some(u) = &status.upstream {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut line = format!("anilist {}", u.state.as_str());
        if let Some(since) = u
            .since_ms
            .filter(|_| u.state != franchise::UpstreamState::Ok)
        {
            line.push_str(&format!(
                " for {}",
                human((now - since).max(0) as f64 / 1000.0)
            ));
        }
        if let Some(message) = &u.message {
            line.push_str(&format!(": {message}"));
        }
        match u.retry_at_ms {
            Some(at) if at > now => line.push_str(&format!(
                "; next try in {}",
                human((at - now) as f64 / 1000.0)
            )),
            _ if u.is_down() => line.push_str("; next try now"),
            _ => {}
        }
        out!("{line}");
    }
    if status.workers.is_empty() {
        out!("workers none running: `franchise work` runs the queue");
    }
    let now_ms = franchise_now_ms();
    for w in &status.workers {
        out!(
            "worker  {} pid {} on {}, heartbeat {} ago{}",
            w.id,
            w.pid,
            w.host,
            human(now_ms.saturating_sub(w.heartbeat_at_ms).max(0) as f64 / 1000.0),
            w.api_url
                .as_deref()
                .map(|u| format!(", API at {u}"))
                .unwrap_or_default()
        );
    }
    let c = &status.cache;
    if c.enabled {
        out!(
            "cache   anime {:.0}% of {} hits, relations {:.0}% of {}, franchises {:.0}% of {}",
            c.basic.hit_rate() * 100.0,
            c.basic.hits + c.basic.misses,
            c.detailed.hit_rate() * 100.0,
            c.detailed.hits + c.detailed.misses,
            c.franchise.hit_rate() * 100.0,
            c.franchise.hits + c.franchise.misses
        );
        if let Some(short) = c.short_ttl_ms {
            out!(
                "        other processes' rewrites unheard: entries trusted {:.1} s only",
                short as f64 / 1000.0
            );
        }
    } else {
        out!(
            "cache   off in this process (on the embedded store only the process running the \
             workers caches)"
        );
    }
    Ok(())
}
