//! The status page (`/`) and franchise pages (`/franchise/{root}`): HTML rendered here, kept
//! live by a small script (`assets/app.js`) over the event stream; assets live in the binary.
//!
//! `status` and `franchise` render the two pages' live parts (also served alone as
//! fragments the script swaps in); this file has the shell around them, the assets, the
//! login form, the error pages and the small text helpers both share.

mod franchise;
mod status;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::anime::AnimeId;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// Escapes text for HTML element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the header bar, `main` (already HTML) and the script.
fn layout(title: &str, main: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header class=\"bar\"><a class=\"brand\" href=\"/\">franchise</a>\
         <span class=\"tagline\">AniList franchise importer</span>\
         <span id=\"conn\" class=\"conn\" data-state=\"connecting\" \
         title=\"live updates from /api/events\">connecting…</span></header>\
         {main}<div id=\"notice\" class=\"notice\" role=\"status\" hidden></div>\
         <script src=\"/assets/app.js\"></script></body></html>",
        escape(title)
    )
}

/// `GET /`: imports with progress, the queue, the budget, failures, the cache, the workers.
pub(crate) async fn status_page(State(state): State<ApiState>) -> Response {
    match status::gather(&state).await {
        Ok(view) => {
            let main = format!(
                "<main data-page=\"status\" class=\"status-page\">{}\
                 <div id=\"live\">{}</div></main>",
                status::start_form(&state.importer.settings().import_options()),
                status::render(&view)
            );
            Html(layout("franchise: status", &main)).into_response()
        }
        Err(e) => error_page(&e),
    }
}

/// `GET /fragments/status`: the live part of `/`, for the script.
pub(crate) async fn status_fragment(
    State(state): State<ApiState>,
) -> Result<Html<String>, ApiError> {
    let view = status::gather(&state).await?;
    Ok(Html(status::render(&view)))
}

/// `GET /franchise/{root}`: the franchise grouped by relation from its root; an HTML 404
/// that offers to import it when the root is not stored.
pub(crate) async fn franchise_page(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Response {
    let root = match input::anime_id(&raw) {
        Ok(root) => root,
        Err(e) => return error_page(&e),
    };
    let (code, title, live) = match state.importer.franchise(root).await {
        Ok(Some(f)) => (
            StatusCode::OK,
            franchise::page_title(&f),
            franchise::render(&f),
        ),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("anime {root}"),
            franchise::not_stored(root),
        ),
        Err(e) => return error_page(&ApiError::from(e)),
    };
    let main = format!(
        "<main data-page=\"franchise\" data-root=\"{root}\" class=\"franchise-page\">\
         <p class=\"crumbs\"><a href=\"/\">← Status</a></p>\
         <div id=\"franchise-progress\" class=\"banner\" hidden></div>\
         <div id=\"live\">{live}</div></main>"
    );
    (code, Html(layout(&format!("franchise: {title}"), &main))).into_response()
}

/// `GET /fragments/franchise/{root}`: the live part of a franchise page; 404 (JSON) while
/// the root is not stored.
pub(crate) async fn franchise_fragment(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Html<String>, ApiError> {
    let root = input::anime_id(&raw)?;
    match state.importer.franchise(root).await? {
        Some(f) => Ok(Html(franchise::render(&f))),
        None => Err(ApiError::not_found(format!(
            "anime {root} is not in the store"
        ))),
    }
}

/// `GET /assets/{file}`: the stylesheet and the script, compiled into the binary.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return not_found_json(&format!("/assets/{file}")),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // Small, and a new binary may change them: always ask.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page a browser gets when the server needs a token: a form that stores it in the
/// page's cookie and reloads. Its style and script are inline, because the assets, like
/// everything else here, need the token too.
pub(crate) fn login(path: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Html(login_html(path))).into_response()
}

fn login_html(path: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>franchise: token</title><style>{STYLE}</style></head><body>\
         <main class=\"login card\"><h1>franchise</h1><p>This server needs its token \
         (<code>serve.token</code>) to show <code>{}</code>.</p>\
         <form id=\"login\"><label>Token <input name=\"token\" type=\"password\" \
         autocomplete=\"current-password\" required autofocus></label>\
         <button>Open</button></form></main>\
         <script>document.getElementById('login').addEventListener('submit', function (e) {{\
         e.preventDefault();\
         var v = e.target.elements.token.value.trim();\
         document.cookie = 'franchise_token=' + encodeURIComponent(v) + \
         '; path=/; SameSite=Strict';\
         location.reload();}});</script></body></html>",
        escape(path)
    )
}

/// An error as a small HTML page with the same status (for the pages, not the fragments).
fn error_page(e: &ApiError) -> Response {
    let main = format!(
        "<main class=\"error-page card\"><h1>{} {}</h1><p>{}</p>\
         <p><a href=\"/\">Back to the status page</a></p></main>",
        e.status.as_u16(),
        escape(e.status.canonical_reason().unwrap_or("Error")),
        escape(&e.message)
    );
    (
        e.status,
        Html(layout(&format!("franchise: {}", e.status.as_u16()), &main)),
    )
        .into_response()
}

fn not_found_json(path: &str) -> Response {
    ApiError::not_found(format!(
        "there is no page {path:?}; the status page is at /"
    ))
    .into_response()
}

/// Unknown paths outside `/api`: an HTML page for a browser, JSON for anything else.
pub(crate) async fn not_found(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        error_page(&ApiError::not_found(format!(
            "there is no page {:?}; the status page is at /",
            uri.path()
        )))
    } else {
        not_found_json(uri.path())
    }
}

/// Anything but `/api` on the API-only server of `franchise work` and `import --wait`.
pub(crate) async fn no_pages(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "there is no page {:?} here: this process (`franchise work` or `import --wait`) serves \
         only the JSON API under /api, for other terminals; `franchise serve` serves the pages",
        uri.path()
    ))
}

pub(crate) async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "there is no endpoint {:?}; the README lists the API",
        uri.path()
    ))
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {:?}", uri.path()),
    )
}

/// A duration for people: "45 s", "12 min", "2 h 5 min" (the script's `human` matches).
fn human_secs(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    let whole = secs.round() as u64;
    if whole < 60 {
        format!("{whole} s")
    } else if whole < 3600 {
        format!("{} min", (secs / 60.0).round() as u64)
    } else {
        let minutes = (secs / 60.0).round() as u64;
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}

/// An ETA as the page shows it: "~12 s", and "~12 s (at least 4 s)" when the walk may still
/// grow and what it knows alone takes clearly less (the script's `etaText` matches).
fn eta_text(secs: f64, at_least: Option<f64>) -> String {
    if secs < 1.0 || !secs.is_finite() {
        // "~0 s" says nothing while the walk has not shown how far it goes.
        return if at_least.is_some() {
            "estimating…"
        } else {
            "almost done"
        }
        .to_string();
    }
    match at_least.filter(|floor| *floor >= 1.0 && secs - floor >= 1.0) {
        Some(floor) => format!("~{} (at least {})", human_secs(secs), human_secs(floor)),
        None => format!("~{}", human_secs(secs)),
    }
}

/// How long ago `then_ms` was, at `now_ms`: "3 s ago".
fn ago(then_ms: i64, now_ms: i64) -> String {
    format!(
        "{} ago",
        human_secs(now_ms.saturating_sub(then_ms) as f64 / 1000.0)
    )
}

/// AniList's SHOUTING_ENUM values for people: "Not yet released", "TV short", "OVA".
fn label(raw: &str) -> String {
    match raw {
        "TV" | "OVA" | "ONA" => raw.to_string(),
        "TV_SHORT" => "TV short".to_string(),
        _ => {
            let lower = raw.to_lowercase().replace('_', " ");
            let mut chars = lower.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// AniList's page for an anime.
fn anilist_anime(id: AnimeId) -> String {
    format!("https://anilist.co/anime/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("Steins;Gate 0 — 日本"), "Steins;Gate 0 — 日本");
    }

    #[test]
    fn durations_and_labels_read_like_text() {
        assert_eq!(human_secs(0.4), "0 s");
        assert_eq!(human_secs(12.4), "12 s");
        assert_eq!(human_secs(59.6), "1 min");
        assert_eq!(human_secs(725.0), "12 min");
        assert_eq!(human_secs(7500.0), "2 h 5 min");
        assert_eq!(human_secs(f64::NAN), "0 s");
        assert_eq!(eta_text(12.0, Some(4.0)), "~12 s (at least 4 s)");
        // A floor within a second of the guess, or under one second, says nothing more.
        assert_eq!(eta_text(12.0, Some(11.5)), "~12 s");
        assert_eq!(eta_text(12.0, Some(0.5)), "~12 s");
        assert_eq!(eta_text(12.0, None), "~12 s");
        assert_eq!(eta_text(0.2, Some(0.2)), "estimating…");
        assert_eq!(eta_text(0.2, None), "almost done");
        assert_eq!(ago(1_000, 4_000), "3 s ago");
        assert_eq!(label("NOT_YET_RELEASED"), "Not yet released");
        assert_eq!(label("TV_SHORT"), "TV short");
        assert_eq!(label("OVA"), "OVA");
        assert_eq!(label("MOVIE"), "Movie");
        assert_eq!(label(""), "");
    }

    #[test]
    fn the_login_page_escapes_the_path_and_stores_the_cookie() {
        assert_eq!(login("/").status(), StatusCode::UNAUTHORIZED);
        let html = login_html("/franchise/<script>");
        assert!(html.contains("/franchise/&lt;script&gt;"), "{html}");
        assert!(!html.contains("/franchise/<script>"));
        assert!(html.contains("document.cookie = 'franchise_token=' + encodeURIComponent(v)"));
    }
}
