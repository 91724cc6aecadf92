//! Talking to AniList correctly and politely: the batch query, response parsing into typed
//! records and errors, the shared rate budget, and the retrying client that ties them together.

mod budget;
mod client;
mod error;
mod query;
mod response;

pub use budget::{BudgetConfig, BudgetState, ParkReason, RateBudget, RateHeaders, Slot};
pub use client::{AniListClient, BatchAnswer, ClientConfig, USER_AGENT};
pub use error::UpstreamError;
pub use query::{BATCH_QUERY, MAX_BATCH};
pub use response::{DEFAULT_RETRY_AFTER, parse_media, parse_media_relations, parse_page};
