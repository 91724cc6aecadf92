//! The shared AniList budget: the window's send times and one state row, changed in one
//! locked transaction per operation so every process (on every machine, on PostgreSQL) sees
//! one budget. The caller sleeps until its slot outside any transaction.

use sqlx::{Pool, Row};

use super::{Sql, shared, to_u32};
use crate::ledger::{
    LedgerOp, LedgerOutcome, LedgerRow, LedgerRules, ParkReason, UpstreamState, UpstreamView,
    WalkCap, WindowView, apply, window_start,
};
use crate::store::StoreError;

shared! {
impl<DB> Sql<DB> {
    /// One operation in its own transaction, under the budget's lock, on the dialect's clock.
    pub(super) async fn apply_budget(
        pool: &Pool<DB>,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        if matches!(op, LedgerOp::Observe { .. }) {
            // An answer that changes nothing (AniList up, no rate-limit headers to record, as
            // from an unlimited fake or a proxy that strips them) is decided from a plain read:
            // the write transaction it would take queues the next slot's take behind it. Had
            // another process changed the state since, this answer is ordered before that
            // change, as the lock would have ordered it.
            let mut conn = pool.acquire().await?;
            let now_ms = DB::budget_now(&mut conn, now_ms).await?;
            if let Some(outcome) = Self::unchanged_by(&mut conn, op.clone(), rules, now_ms).await?
            {
                return Ok(outcome);
            }
        }
        let mut tx = DB::begin_write(pool).await?;
        // The lock first: two processes never decide from the same state.
        DB::lock_budget(&mut tx).await?;
        let now_ms = DB::budget_now(&mut tx, now_ms).await?;
        let outcome = Self::apply_in(&mut tx, op, rules, now_ms).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Reads the budget's state without a lock.
    pub(super) async fn read_budget(
        conn: &mut DB::Connection,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        let now_ms = DB::budget_now(conn, now_ms).await?;
        Self::apply_in(conn, LedgerOp::Read, rules, now_ms).await
    }

    /// The outcome of `op` on the state as read now, if it changes nothing (no send, no
    /// field of the state row); `None` if it must be applied under the lock.
    async fn unchanged_by(
        conn: &mut DB::Connection,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<Option<LedgerOutcome>, StoreError> {
        let state = Self::state(conn, rules, now_ms).await?;
        let mut row = state.row;
        let before = row.clone();
        let outcome = apply(op, rules, now_ms, &mut row, state.window);
        Ok((!outcome.granted && row == before).then_some(outcome))
    }

    /// The sends inside the window at `now_ms` and the state row, in one statement: a take
    /// is a round trip per statement, and it sits in a request's path.
    async fn state(
        conn: &mut DB::Connection,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<StoredState, StoreError> {
        let state = sqlx::query::<DB>(
            "SELECT w.n, w.oldest, w.newest, (SELECT MIN(sent_at) FROM budget_send), \
             s.parked_until, s.parked_reason, s.consecutive_outages, s.server_limit, \
             s.server_remaining, s.server_at, s.server_sent_since, s.last_sent_at, \
             s.requests_made, s.rate_limited_seen, s.outages_seen, s.urgent_claim_until, \
             s.upstream_state, s.upstream_since, s.upstream_message, s.walk_cap_levels, \
             s.walk_cap_until \
             FROM (SELECT COUNT(*) AS n, MIN(sent_at) AS oldest, MAX(sent_at) AS newest \
             FROM budget_send WHERE sent_at >= $1) w LEFT JOIN budget_state s ON s.id = 1",
        )
        .bind(window_start(rules, now_ms))
        .fetch_one(&mut *conn)
        .await?;
        // No state row yet (a fresh budget): its NOT NULL upstream state reads as NULL.
        let row = match state.try_get::<Option<String>, _>(16)? {
            Some(_) => Self::ledger_row(&state, 4)?,
            None => LedgerRow::default(),
        };
        Ok(StoredState {
            window: WindowView {
                in_window: to_u32(state.try_get(0)?),
                oldest_ms: state.try_get(1)?,
            },
            newest_ms: state.try_get(2)?,
            earliest_ms: state.try_get(3)?,
            row,
        })
    }

    async fn apply_in(
        conn: &mut DB::Connection,
        op: LedgerOp,
        rules: &LedgerRules,
        now_ms: i64,
    ) -> Result<LedgerOutcome, StoreError> {
        let start = window_start(rules, now_ms);
        if let LedgerOp::Unsent { sent_at_ms } = op {
            // The request never reached AniList: its send is forgotten before the window
            // counts.
            let forget = format!(
                "DELETE FROM budget_send WHERE {id} IN \
                 (SELECT {id} FROM budget_send WHERE sent_at = $1 LIMIT 1)",
                id = DB::ROW_ID
            );
            sqlx::query::<DB>(sqlx::AssertSqlSafe(forget))
                .bind(sent_at_ms)
                .execute(&mut *conn)
                .await?;
        }
        let state = Self::state(conn, rules, now_ms).await?;
        let read = op == LedgerOp::Read;
        if !read {
            // Sends older than the window are not counted (the statement above reads from
            // `start` on); they are swept once the oldest is a window past it, so a take
            // does not pay a DELETE every time one more send leaves the window.
            if state
                .earliest_ms
                .is_some_and(|at| at < start.saturating_sub(rules.window_ms))
            {
                sqlx::query::<DB>("DELETE FROM budget_send WHERE sent_at < $1")
                    .bind(start)
                    .execute(&mut *conn)
                    .await?;
            }
            // Sends stamped by a clock ahead of this one count as sent now, so they leave the
            // window one window from now rather than one window after that clock's time
            // (`apply` counts them as sent now already).
            if state.newest_ms.is_some_and(|at| at > now_ms) {
                sqlx::query::<DB>("UPDATE budget_send SET sent_at = $1 WHERE sent_at > $1")
                    .bind(now_ms)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let mut row = state.row;
        let before = row.clone();
        let outcome = apply(op, rules, now_ms, &mut row, state.window);
        if outcome.granted {
            // One row per slot: a block's extra slots are sends like any other.
            let mut insert = sqlx::QueryBuilder::<DB>::new("INSERT INTO budget_send (sent_at) ");
            insert.push_values(0..=outcome.extra, |mut row, _| {
                row.push_bind(now_ms);
            });
            insert.build().execute(&mut *conn).await?;
        }
        if row != before && !read {
            Self::write_row(conn, &row).await?;
        }
        Ok(outcome)
    }


    async fn write_row(conn: &mut DB::Connection, row: &LedgerRow) -> Result<(), StoreError> {
        let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query::<DB>(
            "INSERT INTO budget_state (id, parked_until, parked_reason, consecutive_outages, \
             server_limit, server_remaining, server_at, server_sent_since, last_sent_at, \
             requests_made, rate_limited_seen, outages_seen, urgent_claim_until, upstream_state, \
             upstream_since, upstream_message, walk_cap_levels, walk_cap_until) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17) \
             ON CONFLICT (id) DO UPDATE SET parked_until = excluded.parked_until, \
             parked_reason = excluded.parked_reason, \
             consecutive_outages = excluded.consecutive_outages, \
             server_limit = excluded.server_limit, server_remaining = excluded.server_remaining, \
             server_at = excluded.server_at, server_sent_since = excluded.server_sent_since, \
             last_sent_at = excluded.last_sent_at, requests_made = excluded.requests_made, \
             rate_limited_seen = excluded.rate_limited_seen, outages_seen = excluded.outages_seen, \
             urgent_claim_until = excluded.urgent_claim_until, \
             upstream_state = excluded.upstream_state, upstream_since = excluded.upstream_since, \
             upstream_message = excluded.upstream_message, \
             walk_cap_levels = excluded.walk_cap_levels, walk_cap_until = excluded.walk_cap_until",
        )
        .bind(row.parked_until_ms)
        .bind(row.parked_reason.map(ParkReason::as_str))
        .bind(i64::from(row.consecutive_outages))
        .bind(row.server_limit.map(i64::from))
        .bind(row.server_remaining.map(i64::from))
        .bind(row.server_at_ms)
        .bind(i64::from(row.server_sent_since))
        .bind(row.last_sent_ms)
        .bind(big(row.requests_made))
        .bind(big(row.rate_limited_seen))
        .bind(big(row.outages_seen))
        .bind(row.urgent_claim_until_ms)
        .bind(row.upstream.state.as_str())
        .bind(row.upstream.since_ms)
        .bind(row.upstream.message.as_deref())
        .bind(row.walk_cap.map(|cap| i64::from(cap.levels)))
        .bind(row.walk_cap.map(|cap| cap.until_ms))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The state row from `budget_state`'s columns, starting at column `at` of `row`.
    fn ledger_row(row: &DB::Row, at: usize) -> Result<LedgerRow, StoreError> {
        let reason: Option<String> = row.try_get(at + 1)?;
        let opt_u32 = |v: Option<i64>| v.map(to_u32);
        Ok(LedgerRow {
            parked_until_ms: row.try_get(at)?,
            parked_reason: reason.as_deref().and_then(ParkReason::parse),
            consecutive_outages: to_u32(row.try_get(at + 2)?),
            server_limit: opt_u32(row.try_get(at + 3)?),
            server_remaining: opt_u32(row.try_get(at + 4)?),
            server_at_ms: row.try_get(at + 5)?,
            server_sent_since: to_u32(row.try_get(at + 6)?),
            last_sent_ms: row.try_get(at + 7)?,
            requests_made: row.try_get::<i64, _>(at + 8)?.max(0) as u64,
            rate_limited_seen: row.try_get::<i64, _>(at + 9)?.max(0) as u64,
            outages_seen: row.try_get::<i64, _>(at + 10)?.max(0) as u64,
            urgent_claim_until_ms: row.try_get(at + 11)?,
            upstream: UpstreamView {
                state: UpstreamState::parse(&row.try_get::<String, _>(at + 12)?).unwrap_or_default(),
                since_ms: row.try_get(at + 13)?,
                message: row.try_get(at + 14)?,
            },
            walk_cap: match (row.try_get::<Option<i64>, _>(at + 15)?, row.try_get(at + 16)?) {
                (Some(levels), Some(until_ms)) => Some(WalkCap {
                    levels: to_u32(levels).max(1),
                    until_ms,
                }),
                _ => None,
            },
        })
    }
}
}

/// The budget's stored state as one statement read it.
struct StoredState {
    window: WindowView,
    /// The latest send stamped, in the window (ahead of now if another clock is ahead).
    newest_ms: Option<i64>,
    /// The oldest send kept, in the window or not.
    earliest_ms: Option<i64>,
    row: LedgerRow,
}
