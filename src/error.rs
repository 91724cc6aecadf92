//! The library's error: every failure a caller of `Importer` can see, each saying what went
//! wrong with which value and what to do about it.

use crate::anime::AnimeId;
use crate::config::ConfigError;
use crate::halt::Halt;
use crate::producer::InvalidImportOption;
use crate::queue::QueueError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    InvalidId(#[from] crate::anime::InvalidAnimeId),
    #[error("invalid {name} {value}: expected {expected}")]
    InvalidOption {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("anime {0} is not on AniList (unknown, deleted or adult id)")]
    NotFound(AnimeId),
    #[error("there is no import {0}; `franchise status` lists the imports")]
    UnknownImport(i64),
    /// A cancel of an import that has already finished: nothing of it is queued any more.
    #[error(
        "import {import_id} already finished ({state}): there is nothing to cancel; retry it to \
         fetch its failed or cancelled anime again"
    )]
    AlreadyFinished {
        import_id: i64,
        state: crate::store::ImportState,
    },
    /// A retry of an import with no failed or cancelled anime: there is nothing to queue again.
    #[error(
        "import {import_id} has no failed or cancelled anime to retry ({state}, {done} done, \
         {queued} queued); a new import with a forced refresh fetches the franchise again"
    )]
    NothingToRetry {
        import_id: i64,
        state: crate::store::ImportState,
        done: u64,
        queued: u64,
    },
    #[error("fetching anime {id} failed: {reason}")]
    FetchFailed { id: AnimeId, reason: String },
    #[error("the workers are not running in this process; call start() first")]
    NotRunning,
    #[error("{}", not_owner_text(*pid))]
    NotOwner { pid: Option<u32> },
    #[error("this importer was opened read-only; open it read-write to change imports")]
    ReadOnly,
    #[error("the pipeline stopped while waiting for anime {0}")]
    Stopped(AnimeId),
    #[error("{0}")]
    Halted(Halt),
    /// AniList is down (unreachable, refused, or not AniList) and nothing stored can answer.
    #[error("{}", upstream_down_text(.0))]
    UpstreamDown(crate::upstream::UpstreamStatus),
    /// The address could not be bound or read (in use, not this machine's, no permission).
    #[error("cannot serve the API on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback address without `serve.token`: the API can start imports and spend the
    /// AniList budget, so it is not offered to the network unguarded.
    #[error(
        "cannot serve the API on {addr} without a token: only a loopback address (127.0.0.1 or \
         [::1]) may be served without one; set serve.token (FRANCHISE_SERVE__TOKEN) to at least \
         16 characters, or listen on 127.0.0.1"
    )]
    NeedsToken { addr: std::net::SocketAddr },
}

impl Error {
    /// The database is unreachable or out of connections for now: the same call may work
    /// once it is back, and nothing stored was lost. A waiting command waits on through it.
    pub fn is_temporary(&self) -> bool {
        use crate::store::Failure;
        match self {
            Self::Store(e) => e.failure().passes(),
            Self::Queue(e) => Failure::of_queue(e).passes(),
            _ => false,
        }
    }
}

fn upstream_down_text(upstream: &crate::upstream::UpstreamStatus) -> String {
    use crate::upstream::UpstreamState;
    let message = upstream.message.as_deref().unwrap_or("no details");
    let what = match upstream.state {
        // AniList's own sentence, word for word.
        UpstreamState::Refused => format!("AniList refuses requests (HTTP 403): {message}"),
        // The cause already says what and where, with a hint.
        _ => message.trim_end_matches('.').to_string(),
    };
    format!(
        "{what}. The work waits and goes on by itself once AniList answers; stored \
         franchises stay readable, and `franchise doctor` checks the connection"
    )
}

fn not_owner_text(pid: Option<u32>) -> String {
    let who = pid.map_or("another franchise process".to_string(), |pid| {
        format!("another franchise process (pid {pid})")
    });
    format!(
        "the job queue is owned by {who}, which runs the workers but serves no local API to \
         ask: imports recorded here run there, but this needs the workers. `franchise serve`, \
         `work`, `import --wait` and `retry --wait` answer other terminals; an app that embeds \
         the library serves them with `ApiServer::bind_local`. `franchise status` works meanwhile"
    )
}

impl From<InvalidImportOption> for Error {
    fn from(e: InvalidImportOption) -> Self {
        Error::InvalidOption {
            name: e.name,
            value: e.value,
            expected: e.expected,
        }
    }
}
