//! The scale-out store: PostgreSQL (13 or newer) through one `PgPool`, which the queue
//! (apalis-postgres, in schema `apalis`) shares. Any number of processes and machines use it
//! at once; the flush pushes its next jobs inside its own transaction.

mod dialect;
mod write;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::error::StoreError;
use super::sql::{Access, SqlStore};
use crate::failpoint::FailPoints;

use dialect::PgPush;

/// The scale-out store: the shared SQL on a PostgreSQL pool.
pub(crate) type PgStore = SqlStore<Postgres>;

/// Our tables' migrations; apalis-postgres runs its own (`apalis._sqlx_migrations`).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a process waits at start for a server whose connection slots are all taken
/// (SQLSTATE 53300) before it gives up.
const WAIT_FOR_A_SLOT: Duration = Duration::from_secs(120);

/// A database URL with its password replaced, for messages and logs. A URL that does not
/// parse has all its user info hidden: its password cannot be told apart.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://***@{host}")
            }
            _ => url.to_string(),
        },
    }
}

/// The process's first connection. A server whose connection slots are all taken (others'
/// pools are full) frees one soon: that is waited for, said once, not an error.
async fn first_connection(options: &PgConnectOptions) -> Result<sqlx::PgConnection, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut said = false;
    loop {
        match sqlx::PgConnection::connect_with(options).await {
            Err(e) if too_many_connections(&e) && started.elapsed() < WAIT_FOR_A_SLOT => {
                if !said {
                    tracing::warn!(
                        "the database server has no connection free ({e}); waiting for one"
                    );
                    said = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// PostgreSQL's "too many clients" (SQLSTATE 53300).
fn too_many_connections(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("53300"))
}

/// Creates our indexes and finished-job counts on apalis' job table, one process at a time
/// (two concurrent `CREATE INDEX IF NOT EXISTS` of one name can both try, and one fails).
async fn queue_indexes(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('franchise.queue_indexes'))")
        .execute(&mut *tx)
        .await?;
    for statement in crate::queue::PG_INDEXES {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    crate::queue::pg_count_finished_jobs(&mut tx).await?;
    tx.commit().await
}

impl SqlStore<Postgres> {
    /// Connects, creates our tables (and apalis-postgres' schema) if needed, and refuses a
    /// database migrated by a newer franchise. Migrations take PostgreSQL's advisory lock, so
    /// processes starting at once take turns.
    ///
    /// `pool_size` bounds this process's connections: the two lanes' workers and their LISTEN
    /// connections, the rewrite feed's LISTEN (the read cache's), the flusher, the batcher's
    /// triage and budget decisions, housekeeping and reads share them.
    pub(crate) async fn connect(
        url: &str,
        max_attempts: usize,
        pool_size: u32,
    ) -> Result<Self, StoreError> {
        let location = redact_url(url);
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Open {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        let open_error = |e: sqlx::Error| StoreError::Open {
            location: location.clone(),
            reason: e.to_string(),
        };
        // Migrations on a connection of their own: a failed migration leaves its advisory lock
        // on that session, which must not go back to the pool.
        let mut conn = first_connection(&options).await.map_err(open_error)?;
        if let Err(e) = MIGRATOR.run(&mut conn).await {
            let _ = conn.close().await;
            return Err(StoreError::from_migrate(
                &location,
                std::path::Path::new(&location),
                e,
            ));
        }
        if let Err(e) = apalis_postgres::PostgresStorage::migrations()
            .run(&mut conn)
            .await
        {
            let _ = conn.close().await;
            return Err(StoreError::Open {
                location: location.clone(),
                reason: format!("setting up the job queue's tables (schema apalis): {e}"),
            });
        }
        if let Err(e) = queue_indexes(&mut conn).await {
            let _ = conn.close().await;
            return Err(StoreError::Open {
                location: location.clone(),
                reason: format!("indexing the job queue's table (apalis.jobs): {e}"),
            });
        }
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Ok(Self {
            budget_pool: pool.clone(),
            writer: pool.clone(),
            pool,
            location,
            access: Access::ReadWrite,
            push: PgPush {
                max_attempts: max_attempts.max(1),
                failpoints: FailPoints::default(),
            },
        })
    }

    /// Arms this store's failure points from the importer's set.
    pub(crate) fn with_failpoints(mut self, failpoints: FailPoints) -> Self {
        self.push.failpoints = failpoints;
        self
    }
}
