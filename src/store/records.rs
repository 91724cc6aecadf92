//! What the store hands back: stored anime with their relations, franchise members, import
//! progress and the live processes, shaped for the CLI's JSON and a desktop app's views.

use serde::{Deserialize, Serialize};

use crate::anime::{AnimeId, Title};
use crate::queue::QueueDepth;

/// An anime as stored, with its relations and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredAnime {
    pub id: AnimeId,
    pub id_mal: Option<i64>,
    pub title: Title,
    pub format: Option<String>,
    pub status: Option<String>,
    pub episodes: Option<i32>,
    pub season: Option<String>,
    pub season_year: Option<i32>,
    /// When it was fetched from AniList (Unix ms).
    pub fetched_at_ms: i64,
    pub relations: Vec<StoredRelation>,
    /// Set only on a copy answered from the store because AniList is down (a click while
    /// offline): why it could not be refreshed. Absent from JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<crate::ledger::UpstreamStatus>,
}

/// One piece of a stored franchise, as it streams (`Importer::franchise_items`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FranchiseItem {
    /// A member, in id order. Every member comes before the first relation.
    Member(AnimeSummary),
    /// A relation that starts at a member, in (from, to) order.
    Relation(StoredRelation),
}

/// One stored relation row, from `from`'s point of view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredRelation {
    pub from: AnimeId,
    pub to: AnimeId,
    /// AniList's `MediaRelation` (SEQUEL, SIDE_STORY, …), kept verbatim when unknown.
    #[serde(rename = "type")]
    pub relation_type: String,
    /// Computed from the other side's edge rather than observed on this anime.
    pub derived: bool,
    /// ANIME or MANGA (AniList's `MediaType`).
    pub to_kind: String,
    pub to_format: Option<String>,
    pub to_title: Option<String>,
}

/// A member of a franchise, as `show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnimeSummary {
    pub id: AnimeId,
    pub title: Option<String>,
    pub format: Option<String>,
    pub status: Option<String>,
    /// AniList's season (WINTER, SPRING, SUMMER, FALL) and its year.
    #[serde(default)]
    pub season: Option<String>,
    #[serde(default)]
    pub season_year: Option<i32>,
    /// When it started airing, as far as AniList knows.
    #[serde(default)]
    pub start_date: crate::anime::FuzzyDate,
}

/// Where one import item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemState {
    Queued,
    Done,
    Failed,
    Cancelled,
}

impl ItemState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "queued" => Some(Self::Queued),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Where an import stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImportState {
    /// Items are still waiting for a fetch.
    Running,
    /// Every item reached was stored.
    Done,
    /// Finished, but some items failed (their reasons are in the progress).
    DoneWithFailures,
    /// Finished, but a depth or size cap left followed relations unwalked.
    Capped,
    /// Cancelled: its queued items were dropped.
    Cancelled,
}

impl ImportState {
    pub const ALL: [ImportState; 5] = [
        Self::Running,
        Self::Done,
        Self::DoneWithFailures,
        Self::Capped,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::DoneWithFailures => "done_with_failures",
            Self::Capped => "capped",
            Self::Cancelled => "cancelled",
        }
    }

    /// Finished, one way or another: nothing more will happen without a retry.
    pub fn is_finished(self) -> bool {
        self != Self::Running
    }
}

impl std::fmt::Display for ImportState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an import state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown import state {0:?}: expected one of running, done, done_with_failures, capped, \
     cancelled"
)]
pub struct UnknownImportState(pub String);

impl std::str::FromStr for ImportState {
    type Err = UnknownImportState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownImportState(s.to_string()))
    }
}

/// The progress of one import: "Importing 3/10 related anime…".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProgress {
    pub import_id: i64,
    pub root: AnimeId,
    pub state: ImportState,
    /// Anime the walk has reached so far (the root included).
    pub discovered: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub queued: u64,
    /// Followed relations a depth or size cap left unwalked (0 if no cap was hit).
    pub unwalked_edges: u64,
    /// How many walk levels the queued items span: at least this many round trips remain.
    pub queued_levels: u32,
    /// The deepest walk level a queued item sits on (the root is level 0): the walk has
    /// shown this many levels plus one so far. 0 when nothing is queued.
    #[serde(default)]
    pub frontier_depth: u32,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Why items failed, most common first: (reason, count).
    pub failures: Vec<(String, u64)>,
}

impl ImportProgress {
    /// Settled items (done or failed) out of those discovered.
    pub fn settled(&self) -> u64 {
        self.done + self.failed + self.cancelled
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    /// The state the counters imply (the store derives it this way too).
    pub(crate) fn derive_state(
        queued: u64,
        failed: u64,
        unwalked: u64,
        cancelled: bool,
    ) -> ImportState {
        if cancelled {
            ImportState::Cancelled
        } else if queued > 0 {
            ImportState::Running
        } else if failed > 0 {
            ImportState::DoneWithFailures
        } else if unwalked > 0 {
            ImportState::Capped
        } else {
            ImportState::Done
        }
    }
}

/// Which imports `Importer::imports` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportFilter {
    /// Only this import.
    pub import_id: Option<i64>,
    /// Only imports in this state.
    pub state: Option<ImportState>,
    /// At most this many, newest first (None: all).
    pub limit: Option<u32>,
}

impl ImportFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn one(import_id: i64) -> Self {
        Self {
            import_id: Some(import_id),
            ..Self::default()
        }
    }

    pub fn in_state(state: ImportState) -> Self {
        Self {
            state: Some(state),
            ..Self::default()
        }
    }
}

/// What a process does with the data: runs the workers (and maybe the local API), or only
/// reads and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessRole {
    /// Runs fetch workers.
    Worker,
    /// Runs fetch workers and the local HTTP API (`franchise serve`).
    Server,
}

/// A live `franchise` process, as its heartbeat row says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Unique per run: host, pid and a random suffix.
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub role: ProcessRole,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    /// Where its local API listens, if it serves one.
    pub api_url: Option<String>,
    /// Its queue as it last saw it (the embedded queue can only be read by its owner).
    pub queue: Option<QueueDepth>,
}
