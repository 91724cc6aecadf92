//! The workers: apalis jobs hand their anime id to a batcher that coalesces up to 50 ids into
//! one request under the shared budget; a flusher writes each answer in one transaction and
//! only then lets the jobs return, so a job is acknowledged after its data is committed.
//!
//! The rule they keep: a job that ends in the queue ends its item in SQL (done, or failed with
//! a reason), and a job let go at shutdown hands its item to a new job first. So an item
//! still queued in SQL is always live in the queue, or pushed again at the next start.

mod batcher;
mod eta;
mod fetch_count;
mod flusher;
mod handler;
mod parts;
mod pipeline;
mod release;
mod request;
#[cfg(test)]
mod rig;

pub(crate) use eta::estimate_with;
pub(crate) use parts::{CommitBackoff, PipelineParts};
pub(crate) use pipeline::{Pipeline, supervised};
pub(crate) use request::{Notice, NoticeOutcome};
