//! Talking to AniList correctly and politely: the batch query, response parsing into typed
//! records and errors, the shared rate budget (its rules in `crate::ledger`, its state in
//! the store), and the retrying client that ties them together.

pub(crate) mod budget;
mod client;
mod depth;
mod doctor;
mod error;
mod query;
mod response;

pub use crate::ledger::{ParkReason, UpstreamState, UpstreamStatus};
pub use budget::BudgetState;
pub(crate) use budget::{BudgetChange, BudgetConfig, RateBudget, Slot, StoreLedger};
pub use client::FirstContact;
pub(crate) use client::{AniListClient, BatchAnswer, ClientConfig};
pub(crate) use depth::WalkDepth;
pub(crate) use doctor::checkup;
pub use doctor::{Check, Checkup, Verdict};
pub use error::UpstreamError;
pub(crate) use query::{MAX_BATCH, MAX_WALK_LEVELS};
#[cfg(test)]
pub(crate) use response::{parse_media, parse_media_relations, parse_page};

#[cfg(test)]
mod tests;
