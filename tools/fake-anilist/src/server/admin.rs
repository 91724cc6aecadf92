//! Runtime control over HTTP for the standalone binary: stats as JSON, forced 429s,
//! outages, bad-day modes and resets, mirroring the in-process handle's methods.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use crate::mode::Mode;
use crate::stats::Stats;

pub async fn stats(State(app): State<Arc<App>>) -> Json<Stats> {
    Json(app.stats.snapshot())
}

pub async fn force_rate_limit(State(app): State<Arc<App>>) -> StatusCode {
    app.rate.force();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
pub struct OutageParams {
    secs: f64,
}

pub async fn outage(State(app): State<Arc<App>>, Query(p): Query<OutageParams>) -> StatusCode {
    match Duration::try_from_secs_f64(p.secs) {
        Ok(length) => {
            app.start_outage(length);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[derive(Deserialize)]
pub struct ModeParams {
    /// A mode's name, or `ok` to clear it.
    kind: String,
    /// How long it lasts; without it, until cleared.
    secs: Option<f64>,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// `POST /admin/mode?kind=KIND[&secs=N]`. Answers once the mode is in force: for `offline`,
/// once the port no longer accepts (this request's own connection then closes).
pub async fn mode(State(app): State<Arc<App>>, Query(p): Query<ModeParams>) -> Response {
    let mode = match p.kind.as_str() {
        "ok" => None,
        kind => match kind.parse::<Mode>() {
            Ok(mode) => Some(mode),
            Err(e) => return bad_request(e.to_string()),
        },
    };
    let length = match p.secs.map(Duration::try_from_secs_f64).transpose() {
        Ok(length) => length,
        Err(_) => return bad_request("secs must be a number ≥ 0".to_string()),
    };
    if mode == Some(Mode::Offline) && length.is_none() {
        return bad_request(
            "offline over HTTP needs secs: once the port is closed, no request can end it"
                .to_string(),
        );
    }
    app.set_mode(mode, length);
    match app.port_settled(false).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Clears stats, the rate limiter (window and ban), outages and the bad-day mode: a clean
/// slate between runs.
pub async fn reset(State(app): State<Arc<App>>) -> StatusCode {
    app.stats.reset();
    app.rate.reset();
    app.end_outages();
    app.set_mode(None, None);
    StatusCode::NO_CONTENT
}
