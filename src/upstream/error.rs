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

    /// HTTP 403: AniList refused, with its own sentence in `message` ("The AniList API has
    /// been temporarily disabled…"). An outage (or, for a request without a `Referer`, its
    /// edge's gate), so every caller backs off together.
    #[error("AniList refused the request (HTTP 403): {message}")]
    Disabled { message: String },

    /// Something answered that is not AniList's GraphQL JSON: an HTML page, a bare 404, a
    /// wrong content type (a wrong URL, a proxy, a captive portal). Not a verdict on any id.
    #[error(
        "what answered at {endpoint} is not AniList (HTTP {status}, {what}; body starts: \
         {excerpt:?}). Check --anilist-url (FRANCHISE_ANILIST__URL) and any proxy in between"
    )]
    NotAnilist {
        endpoint: String,
        status: u16,
        what: String,
        excerpt: String,
    },

    /// No connection could be made at all (DNS failure, connection refused, TLS failure).
    #[error(
        "cannot reach AniList at {host}: {reason}. Check the network connection, or point \
         --anilist-url (FRANCHISE_ANILIST__URL) at a reachable endpoint such as a local \
         fake-anilist"
    )]
    Unreachable { host: String, reason: String },

    /// A request was sent and no answer came within the timeout. AniList may be down, or
    /// this request too heavy: it counts against its items, so one that never finishes
    /// fails them in the end, while the state says `unreachable` for everyone.
    #[error("no answer from AniList at {host} {reason}")]
    NoAnswer { host: String, reason: String },

    /// AniList kept answering 5xx through every retry: its side is down, not this request.
    /// Waited out like an outage.
    #[error("AniList keeps failing: {reason}")]
    Failing { reason: String },

    /// 5xx, a timeout, a reset connection: worth retrying after a backoff.
    #[error("transient AniList failure: {reason}")]
    Transient { reason: String },

    /// The body is not what AniList sends (truncated, not JSON, wrong shape). Retried, since a
    /// cut-off body is usually a network fault; `excerpt` shows the start of what came.
    #[error("malformed AniList response: {reason} (body starts: {excerpt:?})")]
    Malformed { reason: String, excerpt: String },

    /// The answer's body grew past the cap (counted after decompression) and was not read
    /// further: a broken proxy, a hostile answer, or a walk asking too many levels at once.
    /// Retried like a transient failure; a walk of several levels goes one shallower.
    #[error(
        "AniList's answer was larger than {limit_bytes} bytes (after decompression) and was \
         not read to its end"
    )]
    TooLarge { limit_bytes: usize },
}

impl UpstreamError {
    /// Permanent errors are tried exactly once: repeating them cannot change the answer.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::QueryRejected { .. })
    }

    /// AniList is down for everyone (unreachable, refusing, or not AniList at all): no id is
    /// to blame, so no item fails for it; the work waits for AniList.
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            Self::Disabled { .. }
                | Self::Unreachable { .. }
                | Self::NotAnilist { .. }
                | Self::Failing { .. }
                | Self::NoAnswer { .. }
        )
    }

    /// Down in a way that says nothing about the ids asked for (no connection, a refusal, not
    /// AniList answering): the request is not counted against its items. 5xx through every
    /// retry and timeouts may be the batch's own doing, so they count, and a batch that
    /// never gets through fails its items in the end instead of waiting forever.
    pub(crate) fn blames_no_id(&self) -> bool {
        matches!(
            self,
            Self::Disabled { .. } | Self::Unreachable { .. } | Self::NotAnilist { .. }
        )
    }

    /// The upstream state this error puts every process in, if it is one of the down ones.
    pub(crate) fn down_state(&self) -> Option<super::UpstreamState> {
        use super::UpstreamState;
        match self {
            Self::Disabled { .. } => Some(UpstreamState::Refused),
            Self::Unreachable { .. } | Self::Failing { .. } | Self::NoAnswer { .. } => {
                Some(UpstreamState::Unreachable)
            }
            Self::NotAnilist { .. } => Some(UpstreamState::NotAnilist),
            _ => None,
        }
    }

    /// What a person is told of a down AniList: its own sentence for a refusal, else the
    /// cause.
    pub(crate) fn down_message(&self) -> String {
        match self {
            Self::Disabled { message } => message.clone(),
            other => other.to_string(),
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
            Self::NotAnilist { .. } => "not_anilist",
            Self::Failing { .. } => "upstream_failing",
            Self::NoAnswer { .. } => "no_answer",
            Self::TooLarge { .. } => "too_large",
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
