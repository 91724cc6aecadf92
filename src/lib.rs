//! `franchise` imports an anime's whole franchise from AniList through a durable job queue,
//! under the upstream's rate limit. See README.md for the architecture.

pub mod anime;
pub mod config;
pub mod error;
pub mod importer;
pub mod producer;
pub mod queue;
pub mod store;
pub mod upstream;
pub mod workers;

pub use error::Error;
pub use importer::Importer;
pub use producer::ImportOptions;
