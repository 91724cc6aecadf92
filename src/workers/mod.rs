//! The workers: apalis jobs hand their anime id to a batcher that coalesces up to 50 ids into
//! one request under the shared budget; a flusher writes each answer in one transaction and
//! only then lets the jobs return, so a job is acknowledged after its data is committed.

mod batcher;
mod flusher;
mod handler;
mod request;

pub(crate) use batcher::Batcher;
pub(crate) use flusher::Flusher;
pub(crate) use handler::job_handler;
pub use request::{Notice, NoticeOutcome};
