//! The live part of the status page: imports with their progress, ETA and buttons, recent
//! failures, the queue per lane, the rate budget, the read cache and the worker processes.

use super::{ago, anilist_anime, escape, eta_text, human_secs, label};
use crate::anime::AnimeId;
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::cache::{CacheStats, TierStats};
use crate::clock::unix_ms_now;
use crate::importer::{ImportStatus, Status};
use crate::producer::ImportOptions;
use crate::queue::{LaneDepth, QueueDepth};
use crate::store::{ImportFilter, ImportState, ProcessInfo, ProcessRole};
use crate::upstream::{BudgetState, UpstreamState, UpstreamStatus};

/// Imports shown: every running one first (up to this many), then the newest finished.
const IMPORTS_SHOWN: u32 = 20;
/// Imports whose failed anime are listed one by one, and how many of each.
const FAILED_IMPORTS_DETAILED: usize = 3;
const FAILED_ITEMS_SHOWN: u32 = 5;

/// What the page shows, read at one moment.
pub(super) struct StatusView {
    /// Running imports first, then finished ones; newest first within each.
    pub imports: Vec<ImportStatus>,
    pub queue: Option<QueueDepth>,
    pub budget: Option<BudgetState>,
    pub upstream: Option<UpstreamStatus>,
    pub workers: Vec<ProcessInfo>,
    pub cache: CacheStats,
    /// Failed anime with their reasons, for the newest imports that have some.
    pub failed_items: Vec<(i64, Vec<(AnimeId, String)>)>,
    pub now_ms: i64,
}

/// Reads everything the page shows.
pub(super) async fn gather(state: &ApiState) -> Result<StatusView, ApiError> {
    let running = ImportFilter {
        state: Some(ImportState::Running),
        limit: Some(IMPORTS_SHOWN),
        ..ImportFilter::all()
    };
    let Status {
        imports: mut shown,
        queue,
        budget,
        upstream,
        workers,
        cache,
        ..
    } = state.importer.status(&running).await?;
    let recent = state
        .importer
        .imports(&ImportFilter {
            limit: Some(IMPORTS_SHOWN),
            ..ImportFilter::all()
        })
        .await?;
    // One started or finished between the two reads is shown once, as first read.
    for progress in recent {
        if shown.len() >= IMPORTS_SHOWN as usize {
            break;
        }
        if !shown
            .iter()
            .any(|s| s.progress.import_id == progress.import_id)
        {
            shown.push(ImportStatus {
                progress,
                eta_secs: None,
                eta_at_least_secs: None,
                eta_waiting_secs: None,
            });
        }
    }
    sort_imports(&mut shown);
    let mut failed_items = Vec::new();
    for import in shown
        .iter()
        .filter(|i| i.progress.failed > 0)
        .take(FAILED_IMPORTS_DETAILED)
    {
        let id = import.progress.import_id;
        failed_items.push((id, state.importer.failures(id, FAILED_ITEMS_SHOWN).await?));
    }
    Ok(StatusView {
        imports: shown,
        queue,
        budget,
        upstream,
        workers,
        cache,
        failed_items,
        now_ms: unix_ms_now(),
    })
}

/// Running first, then the rest; newest first within each.
fn sort_imports(imports: &mut [ImportStatus]) {
    imports.sort_by_key(|i| {
        (
            i.progress.state.is_finished(),
            std::cmp::Reverse(i.progress.import_id),
        )
    });
}

/// The form that starts an import (outside the live part, so a refresh never eats what
/// someone is typing).
pub(super) fn start_form(defaults: &ImportOptions) -> String {
    format!(
        "<section class=\"card start\"><h2>Start an import</h2>\
         <form id=\"import-form\" class=\"start-form\" autocomplete=\"off\" novalidate>\
         <label class=\"grow\">AniList anime id or URL\
         <input name=\"root\" required placeholder=\"16498 or https://anilist.co/anime/16498\">\
         </label>\
         <label>Depth<input name=\"depth\" inputmode=\"numeric\" placeholder=\"{}\"></label>\
         <label>Max items<input name=\"max_items\" inputmode=\"numeric\" placeholder=\"{}\">\
         </label>\
         <label class=\"check\"><input name=\"force_refresh\" type=\"checkbox\">\
         Force refresh</label>\
         <button type=\"submit\" class=\"primary\">Import</button>\
         </form><p id=\"form-msg\" class=\"form-msg\" role=\"alert\" hidden></p></section>",
        defaults.max_depth, defaults.max_items
    )
}

/// The live part of `/`, also served alone at `/fragments/status`.
pub(super) fn render(view: &StatusView) -> String {
    let mut out = upstream_banner(view.upstream.as_ref(), view.now_ms);
    out.push_str("<div class=\"columns\"><div class=\"col-main\">");
    out.push_str(&imports(view));
    out.push_str(&failures(view));
    out.push_str("</div><aside class=\"col-side\">");
    out.push_str(&budget(view.budget.as_ref(), view.now_ms));
    out.push_str(&queue(view.queue.as_ref()));
    out.push_str(&cache(&view.cache));
    out.push_str(&workers(&view.workers, view.now_ms));
    out.push_str("</aside></div>");
    out
}

/// A banner while AniList is not answering normally: what it is, AniList's own words, since
/// when and when the next try goes. Nothing while all is well.
fn upstream_banner(upstream: Option<&UpstreamStatus>, now_ms: i64) -> String {
    let Some(upstream) = upstream else {
        return String::new();
    };
    let headline = match upstream.state {
        UpstreamState::Ok => return String::new(),
        UpstreamState::Parked => "AniList's rate limit: every worker waits",
        UpstreamState::Unreachable => "AniList cannot be reached",
        UpstreamState::Refused => "AniList refuses requests (HTTP 403)",
        UpstreamState::NotAnilist => "What answers in AniList's place is not AniList",
    };
    let mut out = format!(
        "<section class=\"banner upstream-{}\" role=\"status\" id=\"upstream-banner\">\
         <strong>{}</strong>",
        upstream.state.as_str(),
        escape(headline)
    );
    if let Some(message) = &upstream.message {
        out.push_str(&format!("<q>{}</q>", escape(message)));
    }
    let mut when = Vec::new();
    if let Some(since) = upstream.since_ms {
        when.push(format!(
            "for {}",
            human_secs(now_ms.saturating_sub(since) as f64 / 1000.0)
        ));
    }
    match upstream.retry_at_ms {
        Some(at) if at > now_ms => when.push(format!(
            "next try in {}",
            human_secs((at - now_ms) as f64 / 1000.0)
        )),
        _ if upstream.state.is_down() => when.push("trying again now".to_string()),
        _ => {}
    }
    if upstream.state.is_down() {
        when.push("stored franchises stay readable; queued work goes on by itself".into());
    }
    if !when.is_empty() {
        out.push_str(&format!("<p>{}</p>", escape(&when.join(" · "))));
    }
    out.push_str("</section>");
    out
}

/// "Importing 37/120" while running (settled of discovered), "Imported 118/120" after
/// (stored of discovered). The script writes the same text from progress events.
fn figure(state: ImportState, settled: u64, done: u64, discovered: u64) -> String {
    if state.is_finished() {
        format!("Imported {done}/{discovered}")
    } else {
        format!("Importing {settled}/{discovered}")
    }
}

fn imports(view: &StatusView) -> String {
    let running = view
        .imports
        .iter()
        .filter(|i| !i.progress.is_finished())
        .count();
    let mut out = format!(
        "<section class=\"card\" id=\"imports\"><h2>Imports <span class=\"count\">{running} \
         running</span></h2>"
    );
    if view.imports.is_empty() {
        out.push_str(
            "<p class=\"empty\">No imports yet: start one with the form above.</p></section>",
        );
        return out;
    }
    out.push_str(
        "<table class=\"imports\"><thead><tr><th>#</th><th>Franchise</th>\
         <th class=\"wide\">Progress</th><th>ETA</th><th>State</th><th>Started</th><th></th>\
         </tr></thead><tbody>",
    );
    for import in &view.imports {
        out.push_str(&import_row(import, view.now_ms));
    }
    out.push_str("</tbody></table></section>");
    out
}

fn import_row(import: &ImportStatus, now_ms: i64) -> String {
    let p = &import.progress;
    let id = p.import_id;
    let eta = if p.is_finished() {
        match p.finished_at_ms {
            Some(end) => format!(
                "took {}",
                human_secs(end.saturating_sub(p.created_at_ms) as f64 / 1000.0)
            ),
            None => String::new(),
        }
    } else {
        match import.eta_secs {
            Some(secs) => match import.eta_waiting_secs {
                Some(wait) => format!(
                    "waiting for AniList's rate limit, resuming in {}; {} left",
                    human_secs(wait),
                    eta_text(secs, import.eta_at_least_secs)
                ),
                None => eta_text(secs, import.eta_at_least_secs),
            },
            None => "estimating…".to_string(),
        }
    };
    let mut notes = String::new();
    if p.failed > 0 {
        notes.push_str(&format!(
            " <span class=\"note bad\">{} failed</span>",
            p.failed
        ));
    }
    if p.cancelled > 0 && p.state != ImportState::Cancelled {
        notes.push_str(&format!(
            " <span class=\"note\">{} cancelled</span>",
            p.cancelled
        ));
    }
    if p.state == ImportState::Capped {
        notes.push_str(&format!(
            " <span class=\"note\" title=\"relations a depth or size cap left unwalked\">{} \
             unwalked</span>",
            p.unwalked_edges
        ));
    }
    let mut actions = String::new();
    if !p.is_finished() {
        actions.push_str(&format!(
            "<button data-action=\"cancel\" data-import-id=\"{id}\">Cancel</button>"
        ));
    }
    if p.is_finished() && (p.failed > 0 || p.cancelled > 0) {
        actions.push_str(&format!(
            "<button data-action=\"retry\" data-import-id=\"{id}\">Retry</button>"
        ));
    }
    format!(
        "<tr class=\"import\" data-import-id=\"{id}\" data-state=\"{state}\" \
         data-cancelled=\"{cancelled}\" data-failed=\"{failed}\"><td class=\"num\">#{id}</td>\
         <td class=\"name\"><a href=\"/franchise/{root}\" data-title-of=\"{root}\">anime {root}</a></td>\
         <td class=\"wide\"><progress max=\"{max}\" value=\"{settled}\"></progress>\
         <span class=\"figure\">{figure}</span></td>\
         <td class=\"eta\">{eta}</td>\
         <td class=\"st\"><span class=\"state state-{state}\">{state_label}</span>{notes}</td>\
         <td class=\"muted\">{started}</td><td class=\"actions\">{actions}</td></tr>",
        state = p.state.as_str(),
        cancelled = p.cancelled,
        failed = p.failed,
        root = p.root,
        max = p.discovered.max(1),
        settled = p.settled(),
        figure = figure(p.state, p.settled(), p.done, p.discovered),
        eta = escape(&eta),
        state_label = label(p.state.as_str()),
        started = ago(p.created_at_ms, now_ms),
    )
}

fn failures(view: &StatusView) -> String {
    let failed: Vec<&ImportStatus> = view
        .imports
        .iter()
        .filter(|i| i.progress.failed > 0)
        .collect();
    let mut out = String::from("<section class=\"card\" id=\"failures\"><h2>Recent failures</h2>");
    if failed.is_empty() {
        out.push_str("<p class=\"empty\">No failures among the imports shown.</p></section>");
        return out;
    }
    out.push_str("<ul class=\"failures\">");
    for import in failed {
        let p = &import.progress;
        let items: &[(AnimeId, String)] = view
            .failed_items
            .iter()
            .find(|(id, _)| *id == p.import_id)
            .map_or(&[], |(_, items)| items.as_slice());
        out.push_str(&format!(
            "<li><b>Import #{id}</b> of <a href=\"/franchise/{root}\" \
             data-title-of=\"{root}\">anime {root}</a>: {failed} failed<ul class=\"reasons\">",
            id = p.import_id,
            root = p.root,
            failed = p.failed,
        ));
        // Each reason once, with the newest anime that failed for it.
        for (reason, count) in &p.failures {
            let which: Vec<String> = items
                .iter()
                .filter(|(_, r)| r == reason)
                .map(|(anime, _)| {
                    format!(
                        "<a href=\"{}\" rel=\"noreferrer\">{anime}</a>",
                        anilist_anime(*anime)
                    )
                })
                .collect();
            let which = match which.len() {
                0 => String::new(),
                n if (n as u64) < *count => format!(": {}, …", which.join(", ")),
                _ => format!(": {}", which.join(", ")),
            };
            out.push_str(&format!(
                "<li><span class=\"reason\">{}</span> ×{count}<span class=\"items\">{which}\
                 </span></li>",
                escape(reason)
            ));
        }
        out.push_str("</ul></li>");
    }
    out.push_str("</ul></section>");
    out
}

fn budget(budget: Option<&BudgetState>, now_ms: i64) -> String {
    let mut out = String::from("<section class=\"card\" id=\"budget\"><h2>Rate budget</h2>");
    let Some(b) = budget else {
        out.push_str("<p class=\"empty\">Not readable right now.</p></section>");
        return out;
    };
    let parked = b.parked_until_ms.filter(|until| *until > now_ms);
    let parked_text = match parked {
        Some(until) => {
            let reason = b
                .parked_reason
                .map_or("unknown reason", |r| match r.as_str() {
                    "rate_limited" => "AniList's rate limit (429)",
                    "outage" => "AniList is down (403)",
                    other => other,
                });
            format!(
                "<span class=\"state state-parked\">parked</span> for {} more \
                 (until <time data-ms=\"{until}\">{}</time>): {}",
                human_secs((until - now_ms) as f64 / 1000.0),
                clock_utc(until),
                escape(reason)
            )
        }
        None => "no: requests go out".to_string(),
    };
    out.push_str(&format!(
        "<dl class=\"facts\"><dt>Used</dt><dd>{used}/{limit} in the last {window}\
         <meter min=\"0\" max=\"{limit}\" value=\"{used}\"></meter></dd>\
         <dt>Pace</dt><dd>{pace:.0}/min <span class=\"muted\">(at least {spacing} ms \
         apart)</span></dd>\
         <dt>Parked</dt><dd class=\"{parked_class}\">{parked_text}</dd>\
         <dt>Requests</dt><dd>{made} made, {limited} rate limited, {outages} outages</dd></dl>",
        limit = b.limit_per_window,
        used = b.used_in_window,
        window = human_secs(b.window_secs),
        pace = b.pace_per_minute,
        spacing = b.min_spacing_ms,
        parked_class = if parked.is_some() { "parked" } else { "" },
        made = b.requests_made,
        limited = b.rate_limited_seen,
        outages = b.outages_seen,
    ));
    if let (Some(levels), Some(until)) = (
        b.walk_cap,
        b.walk_cap_until_ms.filter(|until| *until > now_ms),
    ) {
        out.push_str(&format!(
            "<p class=\"muted\" id=\"walk-cap\">AniList failed a deep query: every request \
             walks {levels} level{s} of relations until <time data-ms=\"{until}\">{}</time>.</p>",
            clock_utc(until),
            s = if levels == 1 { "" } else { "s" },
        ));
    }
    out.push_str("</section>");
    out
}

/// A Unix time as "HH:MM:SS UTC" (the script shows it in local time).
fn clock_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn queue(depth: Option<&QueueDepth>) -> String {
    let mut out = String::from("<section class=\"card\" id=\"queue\"><h2>Queue</h2>");
    let Some(depth) = depth else {
        out.push_str(
            "<p class=\"empty\">Unknown: no live process could read the queue.</p></section>",
        );
        return out;
    };
    out.push_str(
        "<table class=\"numbers\"><thead><tr><th>Lane</th><th>Pending</th><th>Running</th>\
         <th>Done</th><th>Failed</th></tr></thead><tbody>",
    );
    let row = |name: &str, lane: &LaneDepth| {
        format!(
            "<tr data-lane=\"{name}\"><th>{name}</th><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            lane.pending, lane.running, lane.done, lane.failed
        )
    };
    out.push_str(&row("interactive", &depth.interactive));
    out.push_str(&row("background", &depth.background));
    out.push_str("</tbody></table></section>");
    out
}

fn cache(stats: &CacheStats) -> String {
    let mut out = String::from("<section class=\"card\" id=\"cache\"><h2>Read cache</h2>");
    if !stats.enabled {
        out.push_str(
            "<p class=\"empty\">Off in this process (disabled, or another process owns the \
             embedded store and may write it unheard).</p></section>",
        );
        return out;
    }
    if let Some(short) = stats.short_ttl_ms {
        out.push_str(&format!(
            "<p class=\"warn\">Other processes' rewrites cannot be heard right now: entries are \
             trusted for {} only.</p>",
            human_secs(short as f64 / 1000.0)
        ));
    }
    out.push_str(
        "<table class=\"numbers\"><thead><tr><th>Tier</th><th>Hit rate</th><th>Hits</th>\
         <th>Misses</th><th>Entries</th></tr></thead><tbody>",
    );
    let row = |name: &str, tier: &TierStats| {
        let rate = if tier.hits + tier.misses == 0 {
            "—".to_string()
        } else {
            format!("{:.0}%", tier.hit_rate() * 100.0)
        };
        format!(
            "<tr><th title=\"entries live {}\">{name}</th><td>{rate}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            human_secs(tier.ttl_secs as f64),
            tier.hits,
            tier.misses,
            tier.entries
        )
    };
    out.push_str(&row("anime", &stats.basic));
    out.push_str(&row("relations", &stats.detailed));
    out.push_str(&row("franchise", &stats.franchise));
    out.push_str("</tbody></table></section>");
    out
}

fn workers(workers: &[ProcessInfo], now_ms: i64) -> String {
    let mut out = String::from("<section class=\"card\" id=\"workers\"><h2>Workers</h2>");
    if workers.is_empty() {
        out.push_str("<p class=\"empty\">No live worker process.</p></section>");
        return out;
    }
    out.push_str("<ul class=\"workers\">");
    for w in workers {
        let role = match w.role {
            ProcessRole::Server => "serve",
            _ => "worker",
        };
        out.push_str(&format!(
            "<li><b>pid {}</b> on {} <span class=\"muted\">({role}, up {})</span> \
             <span class=\"muted\">heartbeat {}</span></li>",
            w.pid,
            escape(&w.host),
            human_secs(now_ms.saturating_sub(w.started_at_ms) as f64 / 1000.0),
            ago(w.heartbeat_at_ms, now_ms)
        ));
    }
    out.push_str("</ul></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImportProgress;
    use crate::test_support::id;

    fn import(import_id: i64, state: ImportState, done: u64, discovered: u64) -> ImportStatus {
        let running = state == ImportState::Running;
        ImportStatus {
            progress: ImportProgress {
                import_id,
                root: id(100 + import_id),
                state,
                discovered,
                done,
                failed: 0,
                cancelled: 0,
                queued: if running { discovered - done } else { 0 },
                unwalked_edges: 0,
                queued_levels: 0,
                frontier_depth: 0,
                created_at_ms: 1_000,
                finished_at_ms: (!running).then_some(15_000),
                failures: Vec::new(),
            },
            eta_secs: running.then_some(12.4),
            eta_at_least_secs: running.then_some(4.0),
            eta_waiting_secs: None,
        }
    }

    fn view(imports: Vec<ImportStatus>) -> StatusView {
        StatusView {
            imports,
            queue: None,
            budget: None,
            upstream: None,
            workers: Vec::new(),
            cache: CacheStats::default(),
            failed_items: Vec::new(),
            now_ms: 61_000,
        }
    }

    #[test]
    fn running_imports_come_first_with_figure_eta_and_cancel() {
        let mut imports = vec![
            import(3, ImportState::Done, 5, 5),
            import(1, ImportState::Running, 2, 9),
            import(4, ImportState::Cancelled, 3, 7),
            import(2, ImportState::Running, 37, 120),
        ];
        imports[2].progress.cancelled = 4;
        sort_imports(&mut imports);
        let order: Vec<i64> = imports.iter().map(|i| i.progress.import_id).collect();
        assert_eq!(order, [2, 1, 4, 3]);

        let html = render(&view(imports));
        let row = |id: i64| {
            let start = html
                .find(&format!("data-import-id=\"{id}\" data-state"))
                .unwrap_or_else(|| panic!("no row for import {id} in {html}"));
            let end = html[start..].find("</tr>").unwrap() + start;
            html[start..end].to_string()
        };
        let running = row(2);
        assert!(running.contains("<span class=\"figure\">Importing 37/120</span>"));
        assert!(running.contains("<progress max=\"120\" value=\"37\">"));
        assert!(running.contains("~12 s (at least 4 s)"), "{running}");
        assert!(running.contains("data-action=\"cancel\""));
        assert!(running.contains("href=\"/franchise/102\""));
        assert!(!running.contains("data-action=\"retry\""));
        let cancelled = row(4);
        assert!(cancelled.contains("Imported 3/7"), "{cancelled}");
        assert!(cancelled.contains("data-action=\"retry\""));
        assert!(cancelled.contains("took 14 s"));
        assert!(!row(3).contains("<button"));
        assert!(html.find("data-import-id=\"2\"") < html.find("data-import-id=\"1\""));
    }

    #[test]
    fn a_wait_for_the_rate_limit_is_said_with_the_estimate() {
        let mut paced = import(5, ImportState::Running, 2, 9);
        paced.eta_secs = Some(56.0);
        paced.eta_waiting_secs = Some(25.0);
        let html = render(&view(vec![paced]));
        assert!(
            html.contains(
                "waiting for AniList&#39;s rate limit, resuming in 25 s; ~56 s (at least 4 s) left"
            ),
            "{html}"
        );
    }

    #[test]
    fn failure_reasons_are_escaped_and_missing_parts_are_said() {
        let mut failed = import(7, ImportState::DoneWithFailures, 3, 5);
        failed.progress.failed = 2;
        failed.progress.failures = vec![("<b>boom</b>".to_string(), 2)];
        let mut v = view(vec![failed]);
        v.failed_items = vec![(7, vec![(id(9), "<b>boom</b>".to_string())])];
        let html = render(&v);
        assert!(
            html.contains(
                "&lt;b&gt;boom&lt;/b&gt;</span> ×2<span class=\"items\">: \
                 <a href=\"https://anilist.co/anime/9\" rel=\"noreferrer\">9</a>, …"
            ),
            "{html}"
        );
        assert!(!html.contains("<b>boom"));
        assert!(html.contains("Import #7</b> of <a href=\"/franchise/107\""));
        assert!(html.contains("Off in this process"));
        assert!(html.contains("no live process could read the queue"));
    }

    #[test]
    fn a_parked_budget_says_until_when_and_why() {
        let b = BudgetState {
            requests_made: 120,
            rate_limited_seen: 1,
            outages_seen: 0,
            limit_per_window: 90,
            window_secs: 60.0,
            used_in_window: 30,
            min_spacing_ms: 20,
            pace_per_minute: 0.0,
            parked_for_ms: Some(30_000),
            next_slot_in_ms: Some(30_000),
            parked_until_ms: Some(3_723_000 + 30_000),
            parked_reason: Some(crate::upstream::ParkReason::RateLimited),
            server_limit: None,
            server_remaining: None,
            walk_cap: Some(1),
            walk_cap_until_ms: Some(3_723_000 + 600_000),
        };
        let html = budget(Some(&b), 3_723_000);
        assert!(html.contains("walks 1 level of relations until"), "{html}");
        assert!(html.contains("30/90 in the last 1 min"), "{html}");
        assert!(html.contains("for 30 s more"));
        assert!(html.contains("01:02:33 UTC"));
        assert!(html.contains("rate limit (429)"));
        let html = budget(Some(&b), 3_723_000 + 31_000);
        assert!(html.contains("no: requests go out"), "{html}");
    }
}
