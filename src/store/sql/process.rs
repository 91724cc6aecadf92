//! Heartbeat rows of live franchise processes, so `status` in any process can say who runs
//! the workers, and read the queue depth only the embedded queue's owner can see.

use sqlx::{Pool, Row};

use super::{Sql, shared, to_u32};
use crate::store::StoreError;
use crate::store::records::{ProcessInfo, ProcessRole};

fn role_str(role: ProcessRole) -> &'static str {
    match role {
        ProcessRole::Worker => "worker",
        ProcessRole::Server => "server",
    }
}

fn parse_role(raw: &str) -> ProcessRole {
    match raw {
        "server" => ProcessRole::Server,
        _ => ProcessRole::Worker,
    }
}

shared! {
impl<DB> Sql<DB> {
    pub(super) async fn write_heartbeat(
        pool: &Pool<DB>,
        p: &ProcessInfo,
    ) -> Result<(), StoreError> {
        let queue = p.queue.as_ref().and_then(|q| serde_json::to_string(q).ok());
        sqlx::query::<DB>(
            "INSERT INTO worker_process (id, host, pid, role, started_at, heartbeat_at, api_url, \
             queue) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
             api_url = excluded.api_url, queue = excluded.queue, role = excluded.role",
        )
        .bind(p.id.as_str())
        .bind(p.host.as_str())
        .bind(i64::from(p.pid))
        .bind(role_str(p.role))
        .bind(p.started_at_ms)
        .bind(p.heartbeat_at_ms)
        .bind(p.api_url.as_deref())
        .bind(queue)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub(super) async fn read_processes(
        pool: &Pool<DB>,
        fresh_since_ms: i64,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT id, host, pid, role, started_at, heartbeat_at, api_url, queue \
             FROM worker_process WHERE heartbeat_at >= $1 ORDER BY started_at, id",
        )
        .bind(fresh_since_ms)
        .fetch_all(pool)
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
}
