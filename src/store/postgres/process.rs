//! Heartbeat rows of live franchise processes in PostgreSQL, so `status` in any process can say
//! who runs the workers, and read the queue depth only the embedded queue's owner can see.

use sqlx::Row;

use super::PgStore;
use super::tx::to_u32;
use crate::store::StoreError;
use crate::store::records::{ProcessInfo, ProcessRole};

pub(crate) fn role_str(role: ProcessRole) -> &'static str {
    match role {
        ProcessRole::Worker => "worker",
        ProcessRole::Server => "server",
    }
}

pub(crate) fn parse_role(raw: &str) -> ProcessRole {
    match raw {
        "server" => ProcessRole::Server,
        _ => ProcessRole::Worker,
    }
}

impl PgStore {
    pub(super) async fn write_heartbeat(&self, p: &ProcessInfo) -> Result<(), StoreError> {
        let queue = p.queue.as_ref().and_then(|q| serde_json::to_string(q).ok());
        sqlx::query(
            "INSERT INTO worker_process (id, host, pid, role, started_at, heartbeat_at, api_url, \
             queue) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
             api_url = excluded.api_url, queue = excluded.queue, role = excluded.role",
        )
        .bind(&p.id)
        .bind(&p.host)
        .bind(i64::from(p.pid))
        .bind(role_str(p.role))
        .bind(p.started_at_ms)
        .bind(p.heartbeat_at_ms)
        .bind(&p.api_url)
        .bind(queue)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn delete_process(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM worker_process WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn read_processes(
        &self,
        fresh_since_ms: i64,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, host, pid, role, started_at, heartbeat_at, api_url, queue \
             FROM worker_process WHERE heartbeat_at >= $1 ORDER BY started_at, id",
        )
        .bind(fresh_since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get(3)?;
                let queue: Option<String> = row.try_get(7)?;
                Ok(ProcessInfo {
                    id: row.try_get(0)?,
                    host: row.try_get(1)?,
                    pid: to_u32(row.try_get(2)?),
                    role: parse_role(&role),
                    started_at_ms: row.try_get(4)?,
                    heartbeat_at_ms: row.try_get(5)?,
                    api_url: row.try_get(6)?,
                    queue: queue.and_then(|q| serde_json::from_str(&q).ok()),
                })
            })
            .collect()
    }
}
