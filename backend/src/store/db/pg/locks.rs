//! The advisory locks of a PostgreSQL write ([`PgTx::begin_write`]): the writers' lock
//! (shared by every write, exclusive for one that kept losing) and the per-account locks
//! (tried all or nothing, never waited for on a pooled connection). ADR 0012 §8.

use super::{PgPool, PgTx};
use crate::error::StoreError;

/// The writers' advisory lock: every write holds it shared (for its transaction), a write
/// that lost conflicts several times holds it exclusive ([`PgTx::begin_write`]).
pub(in crate::store::db) const WRITERS_LOCK: i64 = 0x6d61_6e63_6172_6402;

/// The first key of the per-account advisory locks ([`PgTx::begin_write`]); the second is
/// the account id (its low 31 bits).
pub(in crate::store::db) const ACCOUNT_LOCKS: i32 = 0x6d63_0001;

/// The fewest account locks a write may take whatever the server says (PostgreSQL's
/// default `max_locks_per_transaction`).
pub(in crate::store::db) const MIN_ACCOUNT_LOCKS: usize = 64;

impl<'p> PgTx<'p> {
    /// Takes a connection and begins a write (`begin`, a `BEGIN ISOLATION LEVEL …`) holding
    /// the writers' advisory lock. An ordinary write holds it **shared** for its
    /// transaction, taken in BEGIN's round trip, which costs nothing while no write holds it
    /// exclusive. A write that keeps losing conflicts holds it **exclusive**, as a session
    /// lock taken before `BEGIN`: it waits until the writes running now have ended, holds
    /// new ones back, and runs alone among writers with a snapshot from after the wait, so
    /// nothing can conflict with it (reads run at REPEATABLE READ and take no part in
    /// serialization conflicts); only a bounded wait running out stops it. A write held back
    /// meanwhile waits outside any transaction, so it too gets a snapshot from after.
    ///
    /// A write that names `accounts` (at most [`PgPool::max_account_locks`]; more, and it
    /// relies on the database's guards alone) first takes a session lock per account
    /// ([`Self::lock_accounts`]), so writes sharing an account take turns instead of aborting
    /// each other. The locks only spare retries: the database's account and challenge guards
    /// (schema version 14) and SERIALIZABLE for the other writes decide. [`Self::commit`] /
    /// [`Self::rollback`] let go of every session lock.
    pub fn begin_write(
        pool: &'p PgPool,
        begin: &str,
        exclusive: bool,
        accounts: &std::collections::BTreeSet<i64>,
    ) -> Result<Self, StoreError> {
        let mut tx = Self::lock_accounts(pool, accounts)?;
        if !accounts.is_empty() {
            // the turn after the locks: a write that waits for a busy account holds none,
            // and turn holders wait for no account lock (no cycle); before BEGIN, so the
            // snapshot is not taken while waiting
            tx.turn = Some(pool.money_write_turn()?);
        }
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
            let got = tx
                .simple_first(&sql)?
                .and_then(|r| r.into_iter().next().flatten())
                .map(|v| v == "t");
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
    /// [`PgPool::max_account_locks`]). First tried without waiting; when one is held
    /// elsewhere they are waited for in one statement, in key order (two writes never wait
    /// for each other crosswise; `statement_timeout` bounds the whole wait), and at most half
    /// the pool waits at once: the others wait in process for a turn, holding no connection,
    /// so writes queued on one busy account cannot take every connection from the requests
    /// that need none of its locks, and writes on free accounts never queue behind them.
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
        // integers only: nothing from a client is spliced into the SQL; a SELECT list is
        // evaluated left to right
        let list = |f: &str, sep: &str| {
            keys.iter()
                .map(|k| format!("{f}({ACCOUNT_LOCKS}, {k})"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let sql = format!("SELECT {}", list("pg_advisory_lock", ", "));
        let try_sql = format!("SELECT {} AS got", list("pg_try_advisory_lock", " AND "));
        // First without waiting, on the connection checked out anyway: a write whose
        // accounts are free (the usual case) takes no turn, so writes queued on a busy
        // account hold up only other writes that must wait too.
        {
            let tx = Self::checkout(pool)?;
            tx.dirty.set(true);
            tx.locked.set(true);
            let got = tx.with(|c| {
                c.client
                    .query_one(try_sql.as_str(), &[])?
                    .try_get::<_, Option<bool>>("got")
            })?;
            if got == Some(true) {
                return Ok(tx);
            }
            // one is held elsewhere: let go of the ones got and wait for a turn
            tx.batch("SELECT pg_advisory_unlock_all()")?;
            tx.locked.set(false);
            tx.dirty.set(false);
        }
        let _turn = pool.lock_wait_turn()?;
        let tx = Self::checkout(pool)?;
        tx.dirty.set(true);
        tx.locked.set(true);
        tx.batch(&sql)?;
        Ok(tx)
    }

    pub(super) fn unlock(&self) -> Result<(), StoreError> {
        if self.locked.replace(false) {
            self.batch("SELECT pg_advisory_unlock_all()")?;
        }
        Ok(())
    }
}
