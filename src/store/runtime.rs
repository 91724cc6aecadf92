//! The worker process's published snapshot (budget and queue depth) and the hand-off of
//! imports recorded by other processes, which cannot open the queue file it owns.

use sqlx::Row;

use super::imports::{QueuedItem, queued_items_after};
use super::{Store, StoreError};

/// The worker process's last word about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSnapshot {
    pub pid: u32,
    pub updated_at_ms: i64,
    /// JSON written by the worker process.
    pub snapshot: String,
}

impl Store {
    pub async fn publish_runtime(
        &self,
        pid: u32,
        now_ms: i64,
        snapshot: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO runtime_status (id, pid, updated_at, snapshot) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, updated_at = excluded.updated_at, \
             snapshot = excluded.snapshot",
        )
        .bind(i64::from(pid))
        .bind(now_ms)
        .bind(snapshot)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes our snapshot on a clean stop, so nobody reads a stale one as live.
    pub async fn retract_runtime(&self, pid: u32) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM runtime_status WHERE pid = $1")
            .bind(i64::from(pid))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn runtime(&self) -> Result<Option<RuntimeSnapshot>, StoreError> {
        let row = sqlx::query("SELECT pid, updated_at, snapshot FROM runtime_status WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RuntimeSnapshot {
            pid: u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            updated_at_ms: row.try_get(1)?,
            snapshot: row.try_get(2)?,
        }))
    }

    /// The newest import's id (0 if none).
    pub async fn latest_import_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM import")
            .fetch_one(self.pool())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Queued items of imports newer than `import_id`: work another process recorded.
    pub async fn queued_items_after(&self, import_id: i64) -> Result<Vec<QueuedItem>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(queued_items_after(&mut conn, import_id).await?)
    }
}
