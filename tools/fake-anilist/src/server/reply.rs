//! One answer with a status and a content type, as every route and bad-day mode sends it.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(super) fn reply(
    status: u16,
    content_type: &'static str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

pub(super) const JSON: &str = "application/json";
pub(super) const HTML: &str = "text/html";
