//! The status page (`/`) and franchise pages (`/franchise/{root}`): HTML rendered here, kept
//! live by a small script (`assets/app.js`) over the event stream; assets live in the binary.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::input;
use crate::store::ImportFilter;

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

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body>{body}<script src=\"/assets/app.js\"></script></body></html>",
        escape(title)
    ))
}

pub(crate) async fn status_page(State(state): State<ApiState>) -> Result<Html<String>, ApiError> {
    let fragment = render_status(&state).await?;
    Ok(layout(
        "franchise",
        &format!(
            "<main data-page=\"status\"><h1>franchise</h1><div id=\"live\">{fragment}</div></main>"
        ),
    ))
}

pub(crate) async fn status_fragment(
    State(state): State<ApiState>,
) -> Result<Html<String>, ApiError> {
    Ok(Html(render_status(&state).await?))
}

async fn render_status(state: &ApiState) -> Result<String, ApiError> {
    let status = state.importer.status(&ImportFilter::all()).await?;
    let mut out = String::from("<section id=\"imports\"><h2>Imports</h2><ul>");
    for i in &status.imports {
        let p = &i.progress;
        out.push_str(&format!(
            "<li data-import-id=\"{}\">import {} of {}: <span class=\"figure\">Importing {}/{}</span> ({})</li>",
            p.import_id,
            p.import_id,
            p.root,
            p.settled(),
            p.discovered,
            p.state
        ));
    }
    out.push_str("</ul></section>");
    Ok(out)
}

pub(crate) async fn franchise_page(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Html<String>, ApiError> {
    let fragment = render_franchise(&state, &raw).await?;
    Ok(layout(
        "franchise",
        &format!("<main data-page=\"franchise\"><div id=\"live\">{fragment}</div></main>"),
    ))
}

pub(crate) async fn franchise_fragment(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Html<String>, ApiError> {
    Ok(Html(render_franchise(&state, &raw).await?))
}

async fn render_franchise(state: &ApiState, raw: &str) -> Result<String, ApiError> {
    let root = input::anime_id(raw)?;
    let Some(f) = state.importer.franchise(root).await? else {
        return Err(ApiError::not_found(format!(
            "anime {root} is not in the store"
        )));
    };
    let mut out = format!("<h1>Franchise of {root}</h1><ul>");
    for a in &f.anime {
        out.push_str(&format!(
            "<li>{} {}</li>",
            a.id,
            escape(a.title.as_deref().unwrap_or("(untitled)"))
        ));
    }
    out.push_str("</ul>");
    Ok(out)
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (
            include_str!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        _ => return not_found_text(&format!("/assets/{file}")),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The page a browser gets when the server needs a token: a form that stores it in the
/// page's cookie and reloads.
pub(crate) fn login(path: &str) -> Response {
    let body = format!(
        "<main class=\"login\"><h1>franchise</h1><p>This server needs its token \
         (<code>serve.token</code>).</p><form id=\"login\" data-next=\"{}\">\
         <input name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         placeholder=\"token\" required><button>Open</button></form></main>",
        escape(path)
    );
    (StatusCode::UNAUTHORIZED, layout("franchise: token", &body)).into_response()
}

fn not_found_text(path: &str) -> Response {
    ApiError::not_found(format!(
        "there is no page {path:?}; the status page is at /"
    ))
    .into_response()
}

pub(crate) async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    not_found_text(uri.path())
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
