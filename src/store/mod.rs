//! The SQL store: anime, their relations (observed and derived), imports with their items,
//! the shared AniList budget and the live processes, behind one seam (`driver.rs`) with a
//! SQLite backend (embedded default) and a PostgreSQL backend (scale-out).

pub(crate) mod driver;
mod error;
pub(crate) mod postgres;
mod records;
pub(crate) mod relations;
mod sql;
pub(crate) mod sqlite;

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) mod testing;

use std::ops::Deref;
use std::sync::Arc;

pub(crate) use driver::{
    ImportRules, ItemOutcome, ItemResult, ItemTriage, QueuedItem, RewriteFeed, StoreTx,
};
pub(crate) use error::Failure;
pub use error::StoreError;
pub(crate) use postgres::redact_url;
pub(crate) use records::ItemState;
pub use records::{
    AnimeSummary, FranchiseItem, ImportFilter, ImportProgress, ImportState, ProcessInfo,
    ProcessRole, StoredAnime, StoredRelation,
};

use crate::outage::DatabaseOutage;
use driver::StoreDriver;

/// A handle to the store, whichever backend holds it. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    driver: Arc<dyn StoreDriver>,
    outage: DatabaseOutage,
}

impl Store {
    pub(crate) fn new(driver: Arc<dyn StoreDriver>) -> Self {
        Self {
            driver,
            outage: DatabaseOutage::default(),
        }
    }

    /// Whether this process has lost the database, said once each way.
    pub(crate) fn outage(&self) -> &DatabaseOutage {
        &self.outage
    }
}

impl Deref for Store {
    type Target = dyn StoreDriver;
    fn deref(&self) -> &Self::Target {
        &*self.driver
    }
}
