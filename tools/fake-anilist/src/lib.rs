//! A faithful fake of the AniList GraphQL API, served over loopback HTTP for franchise's
//! tests and benchmarks: real schema subset, rate limits, faults, latency, stats.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fake_anilist::{FakeAniList, FakeConfig, RateModel, world::WorldSpec};
//! let world = WorldSpec::default().seed(7).franchises(200).giant(300, 12).fan_out(65).build();
//! let fake = FakeAniList::start(FakeConfig { world, rate: RateModel::degraded(), ..Default::default() }).await?;
//! println!("{}", fake.url());
//! # Ok(()) }
//! ```

pub mod faults;
pub mod graphql;
pub mod mode;
pub mod poison;
pub mod rate;
mod server;
pub mod shape;
pub mod stats;
pub mod world;

pub use faults::{FaultKind, Faults, Latency};
pub use mode::Mode;
pub use poison::Poison;
pub use rate::{Decision, RateModel};
pub use server::{FakeAniList, FakeConfig, StartError};
pub use stats::{Caller, LogEntry, Stats};
pub use world::{Entry, Franchise, FranchiseKind, World, WorldSpec};
