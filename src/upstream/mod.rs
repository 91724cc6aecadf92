//! Talking to AniList correctly and politely: the batch query, response parsing into typed
//! records and errors, the shared rate budget (its rules in `ledger.rs`, its state in the
//! store), and the retrying client that ties them together.

pub(crate) mod budget;
mod client;
mod doctor;
mod error;
pub(crate) mod ledger;
mod query;
mod response;

pub(crate) use budget::{BudgetChange, BudgetConfig, RateBudget, Slot};
pub use budget::{BudgetState, UpstreamStatus};
pub use client::FirstContact;
pub(crate) use client::{AniListClient, BatchAnswer, ClientConfig};
pub(crate) use doctor::checkup;
pub use doctor::{Check, Checkup, Verdict};
pub use error::UpstreamError;
pub use ledger::{ParkReason, UpstreamState};
pub(crate) use query::MAX_BATCH;
#[cfg(test)]
pub(crate) use response::{parse_media, parse_media_relations, parse_page};

#[cfg(test)]
mod tests;
