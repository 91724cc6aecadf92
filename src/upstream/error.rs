//! Every way a call to AniList can fail, as a type a caller can act on.
//! The split that matters is permanent (never retried) versus transient (retried with backoff).

use std::time::Duration;

/// A failed AniList call. Each variant carries what the caller needs to decide what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// HTTP 429: every caller must wait `retry_after` before the next request.
    #[error("AniList rate limit hit: retry after {}s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },

    /// HTTP 404 for a `Media(id)` lookup: the id does not exist (or is hidden). Permanent.
    #[error("AniList has no such media: {message}")]
    NotFound { message: String },

    /// HTTP 400: AniList refused the query itself (validation, complexity). Permanent, since
    /// the same query would be refused again.
    #[error("AniList rejected the query (HTTP {status}): {message}")]
    QueryRejected { status: u16, message: String },

    /// HTTP 403: the API is disabled. An outage, so every caller backs off together.
    #[error("AniList API is disabled (HTTP 403): {message}")]
    Disabled { message: String },

    /// No connection could be made at all (DNS failure, connection refused, TLS failure).
    #[error(
        "cannot reach AniList at {host}: {reason}. Check the network connection, or point \
         --anilist-url (FRANCHISE_ANILIST__URL) at a reachable endpoint such as a local \
         fake-anilist"
    )]
    Unreachable { host: String, reason: String },

    /// 5xx, a timeout, a reset connection: worth retrying after a backoff.
    #[error("transient AniList failure: {reason}")]
    Transient { reason: String },

    /// The body is not what AniList sends (truncated, not JSON, wrong shape). Retried, since a
    /// cut-off body is usually a network fault; `excerpt` shows the start of what came.
    #[error("malformed AniList response: {reason} (body starts: {excerpt:?})")]
    Malformed { reason: String, excerpt: String },
}

impl UpstreamError {
    /// Permanent errors are tried exactly once: repeating them cannot change the answer.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::QueryRejected { .. })
    }

    /// The same failure as a transient one: AniList answered this process before, so a
    /// lost connection now is a bad moment, not a wrong address.
    pub(crate) fn into_transient(self) -> Self {
        match self {
            Self::Unreachable { host, reason } => Self::Transient {
                reason: format!("{host}: {reason}"),
            },
            other => other,
        }
    }

    /// A short machine-readable name, used as a failure reason in the store and status view.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound { .. } => "not_found",
            Self::QueryRejected { .. } => "query_rejected",
            Self::Disabled { .. } => "upstream_disabled",
            Self::Unreachable { .. } => "unreachable",
            Self::Transient { .. } => "transient",
            Self::Malformed { .. } => "malformed_response",
        }
    }
}

/// At most this many characters of a bad body are kept in an error, enough to recognise an
/// HTML error page or a cut-off JSON document without flooding logs.
pub(crate) const EXCERPT_CHARS: usize = 120;

pub(crate) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}
