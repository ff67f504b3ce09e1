//! The advisory locks of a PostgreSQL write ([`PgTx::begin_write`]): the writers' lock
//! (shared by every write, exclusive for one that kept losing) and the per-account locks
//! (tried all or nothing, never waited for on a pooled connection). ADR 0012 §8.

use super::{PgPool, PgTx};
use crate::error::StoreError;
use std::time::Duration;

/// The writers' advisory lock: every write holds it shared (for its transaction), a write
/// that lost conflicts several times holds it exclusive ([`PgTx::begin_write`]).
pub(in crate::store::db) const WRITERS_LOCK: i64 = 0x6d61_6e63_6172_6402;

/// The first key of the per-account advisory locks ([`PgTx::begin_write`]); the second is
/// the account id (its low 31 bits).
pub(in crate::store::db) const ACCOUNT_LOCKS: i32 = 0x6d63_0001;

/// The fewest account locks a write may take whatever the server says (PostgreSQL's
/// default `max_locks_per_transaction`).
pub(in crate::store::db) const MIN_ACCOUNT_LOCKS: usize = 64;

/// How long a write keeps trying for its account locks before it goes on without them.
pub(super) const ACCOUNT_LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// 1 ms doubling up to 50 ms, with jitter from the clock: writes that met on an account
/// spread out.
fn lock_backoff(round: u32) -> Duration {
    let cap_us = 1_000u64.saturating_mul(1u64 << round.min(6)).min(50_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_micros(cap_us / 2 + nanos % (cap_us / 2).max(1))
}

impl<'p> PgTx<'p> {
    /// Takes a connection and begins a write (`begin`, a `BEGIN … SERIALIZABLE`) holding
    /// the writers' advisory lock. An ordinary write holds it **shared** for its
    /// transaction, taken in BEGIN's round trip, which costs nothing while no write holds it
    /// exclusive. A write that keeps losing conflicts holds it **exclusive**, as a session
    /// lock taken before `BEGIN`: it waits until the writes running now have ended, holds
    /// new ones back, and runs alone among writers with a snapshot from after the wait, so
    /// nothing can conflict with it (reads run at REPEATABLE READ and take no part in
    /// serialization conflicts); only a bounded wait running out stops it. A write held back
    /// meanwhile waits outside any transaction, so it too gets a snapshot from after.
    ///
    /// A write that names `accounts` (at most [`PgPool::max_account_locks`]; more, and it relies on
    /// SERIALIZABLE alone) first takes a session lock per account, all or nothing and
    /// without waiting: when one is held elsewhere it lets go of the ones it got, gives the
    /// connection back, sleeps a little and tries again, for at most
    /// [`ACCOUNT_LOCK_PATIENCE`], then goes on without them. So a write never waits for an
    /// account while holding a pooled connection (a burst on one account cannot fill the
    /// pool), two writes can never wait for each other's accounts, and at most
    /// [`PgPool::max_account_locks`] lock-table entries are held per connection. The locks only
    /// spare retries: SERIALIZABLE decides. [`Self::commit`] / [`Self::rollback`] let go
    /// of every session lock.
    pub fn begin_write(
        pool: &'p PgPool,
        begin: &str,
        exclusive: bool,
        accounts: &std::collections::BTreeSet<i64>,
    ) -> Result<Self, StoreError> {
        let tx = Self::lock_accounts(pool, accounts)?;
        tx.dirty.set(true);
        if exclusive {
            // the isolation level can only be set before a transaction's first query, and a
            // COMMIT of the lock's own implicit transaction would log a warning: two round
            // trips, on this rare path only
            tx.locked.set(true);
            tx.batch(&format!("SELECT pg_advisory_lock({WRITERS_LOCK})"))?;
            tx.batch(begin)?;
            return Ok(tx);
        }
        // The shared lock as a transaction lock in BEGIN's round trip, tried without
        // waiting: the snapshot is taken by that query, so a write must not wait there for
        // an exclusive holder (it would run on a snapshot from before that write). When a
        // write holds or waits for it exclusive, this one rolls back, waits its turn outside
        // any transaction, and begins again.
        let sql = format!("{begin}; SELECT pg_try_advisory_xact_lock_shared({WRITERS_LOCK})");
        for _ in 0..8 {
            let got = pool
                .block_on(tx.client()?.simple_query(sql.as_str()))
                .map_err(|e| tx.note(&e))?
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "t"),
                    _ => None,
                });
            if got == Some(true) {
                return Ok(tx);
            }
            tx.batch(&format!(
                "ROLLBACK; SELECT pg_advisory_lock_shared({WRITERS_LOCK}); \
                 SELECT pg_advisory_unlock_shared({WRITERS_LOCK})"
            ))?;
        }
        // exclusive writers kept coming: wait in the transaction (the write may then lose a
        // conflict, and is retried)
        tx.batch(&format!(
            "{begin}; SELECT pg_advisory_xact_lock_shared({WRITERS_LOCK})"
        ))?;
        Ok(tx)
    }

    /// A connection holding the session locks of `accounts` (none when there are more than
    /// [`PgPool::max_account_locks`], or when they stayed taken for [`ACCOUNT_LOCK_PATIENCE`]).
    fn lock_accounts(
        pool: &'p PgPool,
        accounts: &std::collections::BTreeSet<i64>,
    ) -> Result<Self, StoreError> {
        let keys: std::collections::BTreeSet<i32> = accounts
            .iter()
            .map(|a| i32::try_from(a & 0x7fff_ffff).unwrap_or(0))
            .collect();
        if keys.is_empty() || keys.len() > pool.max_account_locks() {
            return Self::checkout(pool);
        }
        // integers only: nothing from a client is spliced into the SQL
        let sql = format!(
            "SELECT {} AS got",
            keys.iter()
                .map(|k| format!("pg_try_advisory_lock({ACCOUNT_LOCKS}, {k})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let started = std::time::Instant::now();
        for round in 0u32.. {
            let tx = Self::checkout(pool)?;
            tx.dirty.set(true);
            tx.locked.set(true);
            let got = pool
                .block_on(tx.client()?.query_one(sql.as_str(), &[]))
                .map_err(|e| tx.note(&e))?
                .try_get::<_, Option<bool>>("got")
                .map_err(|e| tx.note(&e))?;
            if got == Some(true) {
                return Ok(tx);
            }
            // some other write has one of them: let go of the rest, give the connection
            // back (clean), and try again a little later
            tx.batch("SELECT pg_advisory_unlock_all()")?;
            tx.locked.set(false);
            tx.dirty.set(false);
            drop(tx);
            if started.elapsed() >= ACCOUNT_LOCK_PATIENCE {
                break;
            }
            std::thread::sleep(lock_backoff(round));
        }
        tracing::debug!(
            accounts = keys.len(),
            "account locks stayed taken; going on without"
        );
        Self::checkout(pool)
    }

    pub(super) fn unlock(&self) -> Result<(), StoreError> {
        if self.locked.replace(false) {
            self.batch("SELECT pg_advisory_unlock_all()")?;
        }
        Ok(())
    }
}
