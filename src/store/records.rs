//! What the store hands back: stored anime with their relations, franchise members and
//! import progress, shaped for the CLI's JSON and a desktop app's views.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::anime::{AnimeId, Title};

/// Now, in the store's unit (Unix milliseconds).
pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The oldest fetch time (Unix ms) that is still fresh for `ttl`.
pub fn fresh_since(ttl: std::time::Duration) -> i64 {
    unix_ms_now().saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// An anime as stored, with when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAnime {
    pub id: AnimeId,
    pub id_mal: Option<i64>,
    pub title: Title,
    pub format: Option<String>,
    pub status: Option<String>,
    pub episodes: Option<i32>,
    pub season: Option<String>,
    pub season_year: Option<i32>,
    pub fetched_at_ms: i64,
    pub relations: Vec<StoredRelation>,
}

/// One stored relation row, from `from`'s point of view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StoredRelation {
    pub from: AnimeId,
    pub to: AnimeId,
    #[serde(rename = "type")]
    pub relation_type: String,
    pub derived: bool,
    pub to_kind: String,
    pub to_format: Option<String>,
    pub to_title: Option<String>,
}

/// A member of a franchise, as `show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnimeSummary {
    pub id: AnimeId,
    pub title: Option<String>,
    pub format: Option<String>,
    pub status: Option<String>,
}

/// Where one import item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Queued,
    Done,
    Failed,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "queued" => Some(Self::Queued),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The progress of one import: "Importing 3/10 related anime…".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    pub import_id: i64,
    pub root: AnimeId,
    pub discovered: u64,
    pub done: u64,
    pub failed: u64,
    pub queued: u64,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Why items failed, most common first: (reason, count).
    pub failures: Vec<(String, u64)>,
}

impl ImportProgress {
    pub fn is_finished(&self) -> bool {
        self.queued == 0
    }
}
