//! The answers of the bad-day modes: AniList's outage 403, Cloudflare's HTML 5xx, HTML and
//! bare 404s, and a 200 whose body stalls after its first bytes until the mode ends.

use std::sync::Arc;

use async_graphql::futures_util::stream::{self, StreamExt};
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::modes::ModeState;
use super::reply::{HTML, JSON, reply};
use crate::mode::Mode;
use crate::shape;
use crate::stats::Ticket;

/// Answers a request in `state`'s mode and records it; `None` for `Offline`, whose requests
/// (on a connection still open while the socket closes) are served as usual.
pub fn answer(app: &Arc<App>, ticket: Ticket, state: ModeState) -> Option<Response> {
    let (status, response) = match state.mode {
        Mode::Disabled => (403, reply(403, JSON, shape::API_DISABLED)),
        Mode::Html5xx => (520, reply(520, HTML, shape::CLOUDFLARE_520)),
        Mode::Html404 => (404, reply(404, HTML, shape::NOT_FOUND_HTML)),
        Mode::Bare404 => (404, StatusCode::NOT_FOUND.into_response()),
        Mode::Stall => (200, stalled(app.clone(), state)),
        Mode::Offline => return None,
    };
    app.stats.answer_in_mode(ticket, state.mode, status);
    Some(response)
}

/// Headers and the first bytes go out at once; the body then waits, and when the stall ends
/// the stream fails, so the connection is cut mid-body rather than finished.
fn stalled(app: Arc<App>, began: ModeState) -> Response {
    let head = stream::once(async { Ok(Bytes::from_static(shape::STALL_PREFIX.as_bytes())) });
    let tail = stream::once(async move {
        app.stall_over(began).await;
        Err(std::io::Error::other("stall ended: connection cut"))
    });
    let mut response = Body::from_stream(head.chain(tail)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}
