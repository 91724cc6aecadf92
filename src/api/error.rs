//! The API's errors as JSON: a status that says whose fault it is (4xx the client's, 5xx
//! ours or upstream's) and a message that names the bad value and what would be right.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable kind: `bad_request`, `not_found`, `unauthorized`, …
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs a token: send `Authorization: Bearer TOKEN` (serve.token)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            Error::InvalidId(_) | Error::InvalidOption { .. } | Error::Config(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            Error::NotFound(_) | Error::UnknownImport(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::NotOwner { .. }
            | Error::ReadOnly
            | Error::AlreadyFinished { .. }
            | Error::NothingToRetry { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Upstream(_) | Error::FetchFailed { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_failed")
            }
            Error::UpstreamDown(_) => (StatusCode::SERVICE_UNAVAILABLE, "upstream_down"),
            Error::Store(_)
            | Error::Queue(_)
            | Error::Halted(_)
            | Error::Stopped(_)
            | Error::NotRunning => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "API request failed");
        }
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&Body {
            error: self.code,
            message: &self.message,
        })
        .unwrap_or_else(|_| format!("{{\"error\":\"{}\"}}", self.code));
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"franchise\""),
            );
        }
        response
    }
}
