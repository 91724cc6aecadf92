//! The producer plans what to fetch: it starts imports and, as fetched anime land, walks their
//! followed relations to the next level, skipping anime stored within their freshness TTL and
//! anime the import already has. Its writes share the flush's transaction.

mod advance;
mod planner;

pub use advance::commit_batch;
pub use planner::{ImportOptions, NOT_FOUND, create_import};
