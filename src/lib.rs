//! `franchise` imports an anime's whole franchise from AniList through a durable job queue,
//! under the upstream's rate limit. See README.md for the architecture.

pub mod anime;
pub mod config;
pub mod producer;
pub mod queue;
pub mod store;
pub mod upstream;
