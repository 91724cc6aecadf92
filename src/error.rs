//! The library's error: every failure a caller of `Importer` can see, each saying what went
//! wrong with which value and what to do about it.

use crate::anime::AnimeId;
use crate::config::ConfigError;
use crate::queue::QueueError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    InvalidOption(String),
    #[error("anime {0} is not on AniList (unknown, deleted or adult id)")]
    NotFound(AnimeId),
    #[error("fetching anime {id} failed: {reason}")]
    FetchFailed { id: AnimeId, reason: String },
    #[error("the workers are not running in this process; call start() first")]
    NotRunning,
    #[error("the pipeline stopped while waiting for anime {0}")]
    Stopped(AnimeId),
}
