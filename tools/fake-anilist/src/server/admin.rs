//! Runtime control over HTTP for the standalone binary: stats as JSON, forced 429s,
//! outages and resets, mirroring the in-process handle's methods.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::App;
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

/// Clears stats, the rate limiter (window and ban) and outages: a clean slate between runs.
pub async fn reset(State(app): State<Arc<App>>) -> StatusCode {
    app.stats.reset();
    app.rate.reset();
    app.end_outages();
    StatusCode::NO_CONTENT
}
