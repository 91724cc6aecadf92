//! The GraphQL endpoint's pipeline, in AniList's order: (404 modes) → Referer gate → other
//! bad-day modes → outage → rate limit → latency → fault → execute; every request is logged.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};

use super::reply::{HTML, JSON, reply};
use super::{App, admin, bad_day, gate};
use crate::faults::FaultKind;
use crate::graphql::{Viewer, ids::requested_ids};
use crate::rate::Decision;
use crate::shape;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(graphql))
        .route("/graphql", post(graphql))
        .route("/stats", get(admin::stats))
        .route("/admin/rate-limit", post(admin::force_rate_limit))
        .route("/admin/outage", post(admin::outage))
        .route("/admin/mode", post(admin::mode))
        .route("/admin/reset", post(admin::reset))
        .with_state(app)
}

async fn graphql(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = Instant::now();
    let caller = gate::caller(&headers);
    let anonymous = caller.anonymous;
    let request = serde_json::from_slice::<async_graphql::Request>(&body);
    let ids = match &request {
        Ok(r) => requested_ids(&r.query, &r.variables),
        Err(_) => Vec::new(),
    };
    let ticket = app.stats.arrive(now, ids, caller);
    let mode = app.mode_at(now);

    // A wrong host or a captive portal answers before AniList's edge sees anything.
    if let Some(state) = mode.filter(|s| s.mode.before_gate())
        && let Some(response) = bad_day::answer(&app, ticket, state)
    {
        return response;
    }
    // The edge's rule stands before everything of AniList's own, the rate limiter included.
    if app.referer_gate && gate::refuses(&headers) {
        app.stats.refuse(ticket);
        return reply(403, JSON, shape::API_DISABLED);
    }
    if let Some(state) = mode
        && let Some(response) = bad_day::answer(&app, ticket, state)
    {
        return response;
    }

    if app.in_outage(now) {
        app.stats.finish(ticket, 403, None, false);
        return reply(403, JSON, shape::API_DISABLED);
    }

    let rate_headers = match app.rate.check(now) {
        Decision::Limited {
            retry_after,
            during_ban,
        } => {
            app.stats.finish(ticket, 429, None, during_ban);
            let mut response = reply(429, JSON, shape::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        Decision::Allow { limit, remaining } => Some((limit, remaining)),
        Decision::Unlimited => None,
    };

    let (delay, fault) = app.dice.roll();
    app.pause(delay).await;

    let (status, content_type, mut body) = match fault {
        Some(FaultKind::Status500) => (500, JSON, shape::INTERNAL_ERROR.to_string()),
        Some(FaultKind::Status502) => (502, HTML, shape::BAD_GATEWAY.to_string()),
        Some(FaultKind::Malformed) => (200, JSON, shape::MALFORMED.to_string()),
        Some(FaultKind::Rejected) => (
            400,
            JSON,
            shape::bad_request("Validation error: injected rejection"),
        ),
        Some(FaultKind::Timeout) => {
            app.stats.finish(ticket, 504, fault, false);
            app.pause(app.dice.faults().timeout_hold).await;
            return with_rate_headers(reply(504, HTML, shape::GATEWAY_TIMEOUT), rate_headers);
        }
        Some(FaultKind::Truncated) | None => match request {
            Ok(req) => {
                let (status, body) =
                    shape::render(app.schema.execute(req.data(Viewer { anonymous })).await);
                (status, JSON, crate::poison::spoil(&app.poison, body))
            }
            Err(e) => (400, JSON, shape::bad_request(&e.to_string())),
        },
    };
    if fault == Some(FaultKind::Truncated) {
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    app.stats.finish(ticket, status, fault, false);
    if matches!(fault, None | Some(FaultKind::Truncated)) {
        app.stats.sent(ticket, body.len());
    }
    with_rate_headers(reply(status, content_type, body), rate_headers)
}

fn with_rate_headers(mut response: Response, rate: Option<(u32, u32)>) -> Response {
    if let Some((limit, remaining)) = rate {
        let h = response.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
    response
}
