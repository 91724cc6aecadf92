//! Helpers shared by the integration tests: running the pipeline in-process against the fake
//! AniList, and driving the `franchise` binary as a child process.
#![allow(dead_code)]

pub mod api;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod run;
