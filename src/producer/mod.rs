//! The producer plans what to fetch: it starts imports and, as fetched anime land, walks their
//! followed relations to the next level, skipping anime stored within their freshness TTL and
//! anime the import already has. Its writes share the flush's transaction, whatever the backend.

mod flush;
mod options;
mod plan;
mod walk;

#[cfg(test)]
mod memory;

pub(crate) use flush::{FlushBatch, FlushCommitted, commit_flush};
pub use options::ImportOptions;
pub(crate) use options::{InvalidImportOption, MAX_DEPTH_LIMIT};
pub(crate) use plan::{Push, cancel_import, create_import, requeue, retry_import};
pub(crate) use walk::NOT_FOUND;
