//! `franchise` imports an anime's whole franchise (sequels, prequels, side stories, movies,
//! spin-offs) from AniList through a durable job queue, under AniList's rate limit, and
//! answers the anime a user clicks at once.
//!
//! An app holds one [`Importer`]: it opens the embedded store (SQLite plus a redb queue file
//! under a data dir) or a PostgreSQL database, runs the workers, and hands back typed records
//! and a stream of [`Event`]s.
//!
//! ```no_run
//! use franchise::{AnimeId, Event, ImportOptions, Importer, Settings};
//!
//! # async fn demo() -> Result<(), franchise::Error> {
//! let settings = Settings::builder().data_dir("/tmp/franchise-demo").build()?;
//! let importer = Importer::open(settings).await?; // store, queue, unfinished work queued again
//! importer.start().await?; // the workers, in this process
//! let mut events = importer.subscribe();
//! let root = AnimeId::new(16498)?;
//! let import_id = importer.import(root, &ImportOptions::default()).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Progress { import_id: id, done, discovered, .. } if id == import_id => {
//!             println!("Importing {done}/{discovered} related anime…")
//!         }
//!         Event::Finished { import_id: id, state, .. } if id == import_id => {
//!             println!("{state}");
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! let clicked = importer.open_anime(AnimeId::new(21)?).await?; // ahead of any import
//! println!("{:?} has {} relations", clicked.title.display(), clicked.relations.len());
//! importer.close().await; // stop the workers, fold the WAL into the store
//! # Ok(()) }
//! ```
//!
//! `examples/embed.rs` runs the same against a local fake AniList; the README explains the
//! architecture.

mod anime;
mod api;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
mod cache;
mod clock;
mod config;
mod error;
mod events;
mod failpoint;
mod fs_lock;
mod halt;
mod importer;
mod ledger;
mod order;
mod outage;
mod producer;
mod queue;
mod store;
#[cfg(test)]
mod test_support;
mod upstream;
mod workers;

pub use anime::{
    Anime, AnimeId, FuzzyDate, InvalidAnimeId, MediaKind, RelatedMedia, RelationEdge, RelationType,
    Title,
};
pub use api::ApiServer;
pub use cache::{CacheStats, Franchise, TierStats};
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, DEFAULT_TOML, Settings, SettingsBuilder};
pub use error::Error;
pub use events::{Eta, Event, EventStream};
pub use failpoint::FailPointSpecError;
pub use halt::{Halt, HaltKind};
pub use importer::{
    Fetched, FranchiseItem, ImportStatus, Importer, ImporterBuilder, QueueOwner, Status,
};
pub use order::{
    FranchiseJson, FranchiseView, InvalidOrder, Order, OrderedAnime, aired, aired_text,
};
pub use producer::ImportOptions;
pub use queue::{Lane, LaneDepth, QueueDepth, QueueError};
pub use store::{
    AnimeSummary, ImportFilter, ImportProgress, ImportState, ProcessInfo, ProcessRole, StoreError,
    StoredAnime, StoredRelation,
};
pub use upstream::{
    BudgetState, Check, Checkup, FirstContact, ParkReason, UpstreamError, UpstreamState,
    UpstreamStatus, Verdict,
};

/// The README's Rust snippets, compiled (not run) by `cargo test` as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeSnippets;

/// For an app's own tests: failure points a test arms to make a commit fail or a task panic
/// at a named place ([`ImporterBuilder::failpoints`]), and a clock it moves by hand
/// ([`ImporterBuilder::clock`]). Nothing here is needed to run an import.
pub mod testing {
    pub use crate::clock::ManualClock;
    pub use crate::failpoint::{FailAction, FailPoints};
}
