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

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;

pub(crate) use driver::{ImportRules, ItemOutcome, ItemResult, ItemTriage, QueuedItem, StoreTx};
pub(crate) use error::Failure;
pub use error::StoreError;
pub use records::{
    AnimeSummary, ImportFilter, ImportProgress, ImportState, ProcessInfo, ProcessRole, StoredAnime,
    StoredRelation,
};
pub(crate) use records::{ItemState, fresh_since, unix_ms_now};

use crate::upstream::budget::BudgetLedger;
use crate::upstream::ledger::{LedgerOp, LedgerOutcome, LedgerRules};
use driver::StoreDriver;

/// A handle to the store, whichever backend holds it. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    driver: Arc<dyn StoreDriver>,
}

impl Store {
    pub(crate) fn new(driver: Arc<dyn StoreDriver>) -> Self {
        Self { driver }
    }

    /// The store as the budget's ledger: every process sharing it shares one budget.
    pub(crate) fn ledger(&self) -> Arc<dyn BudgetLedger> {
        Arc::new(StoreLedger(self.clone()))
    }
}

impl Deref for Store {
    type Target = dyn StoreDriver;
    fn deref(&self) -> &Self::Target {
        &*self.driver
    }
}

struct StoreLedger(Store);

#[async_trait]
impl BudgetLedger for StoreLedger {
    async fn apply(
        &self,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        self.0.budget(op, rules, now_ms).await
    }
}
