//! Storage: the only code of the backend that speaks SQL.
//!
//! [`Store`] opens the database (through `mancard_sql::open_database` with [`BackendSchema`])
//! and runs closures in a transaction. A read gets a [`Reader`] over the connection, which
//! offers only reads; a write gets a [`Writer`] over the transaction, which adds the writes and
//! derefs to a `Reader`. The operations are split by aggregate, one file each, every one an
//! `impl` over `Reader` and/or `Writer`; rows are read by column name into named structs.
//! Every statement goes through the SQL adapter in `db/` (named parameters, rows by column
//! name, driver errors mapped to [`StoreError`]), never through the driver directly.
//!
//! Two databases (issue #16):
//! * SQLite (a file): one connection, behind a mutex, serializes every transaction (SQLite
//!   has one writer anyway); a write runs once.
//! * PostgreSQL (`postgres://…`, [`Store::open_url`]): a pool; a write that moves money on
//!   named accounts ([`Store::write_for`]) runs at REPEATABLE READ, every other write at
//!   SERIALIZABLE, and either is retried (jittered backoff) when PostgreSQL aborts it for a
//!   conflict; from the [`PG_SERIALIZE_AFTER`]th retry it runs alone among writers, so it
//!   commits unless a bounded wait runs out (then busy: 503, never 500); a read runs at
//!   REPEATABLE READ READ ONLY (a snapshot that never conflicts). The database itself makes
//!   every write of an account's rows a write of the account's row, and every write of a
//!   challenge's taps a write of the challenge's guard row (schema version 14), so two writes
//!   of one account or one challenge that overlap never both commit, at REPEATABLE READ or
//!   SERIALIZABLE, this build's or an older one's, locked or not (a session at READ COMMITTED,
//!   such as a hand fix in `psql`, is not held to it: ADR 0012 §8). Several backend
//!   instances may share the database: no process lock is needed.
//!
//! Callers run on blocking threads, never on the async runtime (the PostgreSQL facade
//! `block_on`s, which panics inside an async task). The ledger is append-only, enforced by
//! triggers.

mod accounts;
mod ahead;
mod audit;
mod batches;
mod bundles;
mod certificates;
pub(crate) mod db;
mod devices;
mod fare_days;
mod fraud;
mod ids;
mod leases;
mod ledger;
mod log;
mod operators;
mod schema;
pub mod schema_pg;
mod sessions;
mod taps;
mod topups;
mod validators;
mod verdicts;

pub use accounts::{Account, OtpRow, SandboxCode};
pub use batches::StoredBatch;
pub use bundles::{Bundle, BundleState};
pub use certificates::{CertRow, NewCertificate};
pub use devices::{Device, Revocation};
pub use fare_days::{DayState, RideKey};
pub use fraud::NewFraudCase;
pub use leases::Lease;
pub use ledger::{FareEntry, NewEntry};
pub use log::{LogRow, NewLogEntry};
pub use operators::{row_hash, Decision, NewAdjustment, NewLogRow, StoredLogRow, GENESIS};
pub use schema::{BackendSchema, SCHEMA_V1, SCHEMA_VERSION};
pub use sessions::{Purged, SessionRow};
pub use taps::{DayRides, LastRide, NewTap, OriginWindow, Ride, TapRow, TapSource, TapState};
pub use topups::{GatewayPayment, GatewayStatus, Intent, VerifiedRecord};
pub use validators::{NewValidator, ValidatorRow};
pub use verdicts::{NewAbuse, NewVerdict, VerdictBasis};

use crate::error::StoreError;
use db::pg::{PgPool, PgTx};
use db::Conn;
use rusqlite::{Connection, TransactionBehavior};
use std::ops::Deref;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How many times a PostgreSQL write runs before it fails busy.
pub const PG_WRITE_ATTEMPTS: u32 = 8;

/// After this many lost attempts a PostgreSQL write runs alone among writers (it takes the
/// writers' advisory lock exclusive, every other write holds it shared), so it commits: hot
/// rows still make progress however many writers collide on them.
pub const PG_SERIALIZE_AFTER: u32 = 3;

/// How many times a PostgreSQL write at REPEATABLE READ is run again for a unique violation
/// (a key a concurrent write committed after its snapshot: the next attempt sees it) before
/// such violations count as lost attempts, which make the write run alone among writers. A
/// unique violation while it runs alone is the write's own fault, reported as it is; keys
/// that keep colliding with concurrent writes end busy (503) when the attempts run out.
pub const PG_UNIQUE_RETRIES: u32 = 2;

/// The database.
#[derive(Debug)]
pub struct Store {
    db: Db,
}

#[derive(Debug)]
enum Db {
    Sqlite(Mutex<Connection>),
    Postgres(PgPool),
}

/// True when `target` names a PostgreSQL database rather than a SQLite file: a
/// `postgres://` or `postgresql://` URL (any case), or a `key=value` conninfo
/// (`host=… dbname=…`). Anything else with a `://` is no SQLite file either: see
/// [`database_target_problem`].
pub fn is_postgres_url(target: &str) -> bool {
    let t = target.trim().to_ascii_lowercase();
    // a conninfo (`host=… dbname=…`) may hold paths (a socket directory, sslrootcert)
    t.starts_with("postgres://")
        || t.starts_with("postgresql://")
        || t.split_whitespace().any(|kv| kv.contains('='))
}

/// Why `target` can be neither a PostgreSQL database nor a SQLite file: an unknown URL scheme,
/// a mistyped `postgres:` one, or user info (`user:password@host`) would otherwise become a
/// file named after the URL, password and all. The message never repeats the target.
pub fn database_target_problem(target: &str) -> Option<&'static str> {
    if is_postgres_url(target) {
        return None;
    }
    let t = target.trim().to_ascii_lowercase();
    (t.contains("://")
        || t.contains('@')
        || t.starts_with("postgres:")
        || t.starts_with("postgresql:"))
    .then_some(
        "the database is a SQLite file path or a postgres:// URL; this looks like neither \
             (a mistyped or unsupported URL)",
    )
}

/// Read access, inside a transaction (a consistent snapshot).
pub struct Reader<'a> {
    conn: Conn<'a>,
}

/// Write access, inside an immediate transaction; derefs to the [`Reader`] of the same
/// transaction.
pub struct Writer<'a> {
    tx: Conn<'a>,
    reader: Reader<'a>,
    /// Accounts whose `feed_seq` this transaction has bumped ([`Writer::bump_feed`]): their
    /// row is locked until it ends, so a second bump would only cost a round trip.
    bumped: std::cell::RefCell<std::collections::BTreeSet<i64>>,
    /// What this transaction read ahead and keeps to write ([`ahead`]).
    ahead: std::cell::RefCell<ahead::Ahead>,
    /// What to do once this transaction has committed ([`Writer::after_commit`]).
    committed: std::cell::RefCell<Vec<AfterCommit>>,
}

/// Something to do once a write has committed.
type AfterCommit = Box<dyn FnOnce()>;

impl Writer<'_> {
    /// Runs `f` once this transaction has committed: the log line that says what it did. A
    /// write that fails never runs it, and an attempt run again (PostgreSQL, on a conflict)
    /// drops its own with it, so each committed effect is logged once and only then.
    pub fn after_commit(&self, f: impl FnOnce() + 'static) {
        self.committed.borrow_mut().push(Box::new(f));
    }

    /// What [`Self::after_commit`] asked for, taken before the transaction ends.
    fn take_after_commit(&self) -> Vec<AfterCommit> {
        std::mem::take(&mut *self.committed.borrow_mut())
    }
}

/// Runs what a committed write asked for.
fn run_after_commit(hooks: Vec<AfterCommit>) {
    for hook in hooks {
        hook();
    }
}

impl<'a> Deref for Writer<'a> {
    type Target = Reader<'a>;
    fn deref(&self) -> &Reader<'a> {
        &self.reader
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings the schema up to date; a schema
    /// newer than this build is refused.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // The database holds phone numbers and session digests: create it owner-only (SQLite
        // gives its -wal and -shm files the database file's permissions).
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::File(format!("create {}: {e}", path.display())))?;
        }
        let conn = mancard_sql::open_database(path, &BackendSchema)?;
        // every statement goes through the cache (`db::sqlite`): room for all of them
        conn.set_prepared_statement_cache_capacity(256);
        Ok(Self {
            db: Db::Sqlite(Mutex::new(conn)),
        })
    }

    /// Opens the PostgreSQL database at `url` (a pool of `pool_max` connections) and brings
    /// its schema up to date; a schema newer than this build is refused. Not from inside an
    /// async task (see the module).
    pub fn open_url(url: &str, pool_max: usize) -> Result<Self, StoreError> {
        Self::open_url_with(url, pool_max, None)
    }

    /// [`Self::open_url`], with at most `money_writes` writes that move money at once
    /// ([`PgPool::with_money_writes`]; `None`: the cores this process may run on).
    pub fn open_url_with(
        url: &str,
        pool_max: usize,
        money_writes: Option<usize>,
    ) -> Result<Self, StoreError> {
        let mut pool = PgPool::connect(url, pool_max)?;
        if let Some(n) = money_writes {
            pool = pool.with_money_writes(n);
        }
        schema_pg::migrate(&pool)?;
        Ok(Self {
            db: Db::Postgres(pool),
        })
    }

    /// Which dialect the database speaks.
    pub fn dialect(&self) -> db::Dialect {
        match self.db {
            Db::Sqlite(_) => db::Dialect::Sqlite,
            Db::Postgres(_) => db::Dialect::Postgres,
        }
    }

    /// Runs `f` in an immediate (write) transaction; commits if it returns `Ok`.
    ///
    /// `f` is `FnMut`: a database that detects conflicts (PostgreSQL, issue #16) runs it
    /// again on a fresh transaction, so it must not consume what it captures. SQLite runs it
    /// once (this mutex serializes every transaction).
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnMut(&Writer<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.write_for(std::iter::empty(), f)
    }

    /// [`Self::write`] for a write that moves money on `accounts`. On PostgreSQL it runs at
    /// REPEATABLE READ, and first takes a lock per account (session advisory locks, in
    /// account order, before `BEGIN`, so its snapshot is taken after the wait): two writes on
    /// a shared account take turns instead of aborting each other, while writes on different
    /// accounts still run side by side. The locks only spare retries: the guarantee is the
    /// database's (schema version 14): a write of an account's rows writes the account's
    /// row, so of two overlapping writes of one account (locked or not, this build's or
    /// another's) only one commits, and the other runs again on a fresh snapshot. A unique
    /// violation is retried too: at REPEATABLE READ it is how a key committed meanwhile shows.
    /// SQLite's single writer needs nothing.
    pub fn write_for<R, E: From<StoreError>>(
        &self,
        accounts: impl IntoIterator<Item = crate::ids::AccountId>,
        mut f: impl FnMut(&Writer<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let conn = match &self.db {
            Db::Sqlite(c) => c,
            Db::Postgres(pool) => {
                let keys: std::collections::BTreeSet<i64> =
                    accounts.into_iter().map(|a| a.0).collect();
                return pg_write(pool, &keys, f);
            }
        };
        let mut guard = lock(conn);
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = {
            let w = Writer {
                tx: Conn::Sqlite(&tx),
                reader: Reader {
                    conn: Conn::Sqlite(&tx),
                },
                bumped: Default::default(),
                ahead: Default::default(),
                committed: Default::default(),
            };
            let out = f(&w)?;
            w.flush()?;
            (out, w.take_after_commit())
        };
        tx.commit().map_err(StoreError::from)?;
        // the next writer need not wait for the log
        drop(guard);
        run_after_commit(out.1);
        Ok(out.0)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Reader<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let conn = match &self.db {
            Db::Sqlite(c) => c,
            Db::Postgres(pool) => return pg_read(pool, f),
        };
        let mut guard = lock(conn);
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&Reader {
            conn: Conn::Sqlite(&tx),
        })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Checkpoints the WAL into the main file (at shutdown). dialect: SQLite only; nothing
    /// to do on PostgreSQL.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(c) = &self.db {
            lock(c).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves the transaction rolled back (dropped), so the
    // connection is still consistent: recover it.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// A PostgreSQL write: REPEATABLE READ when it names accounts, SERIALIZABLE otherwise; run
/// again on a serialization failure or deadlock (in a statement or at COMMIT; at REPEATABLE
/// READ also a unique violation) after a jittered backoff; busy after [`PG_WRITE_ATTEMPTS`].
fn pg_write<R, E: From<StoreError>>(
    pool: &PgPool,
    accounts: &std::collections::BTreeSet<i64>,
    mut f: impl FnMut(&Writer<'_>) -> Result<R, E>,
) -> Result<R, E> {
    let mut unique_retries = 0;
    // attempts lost to conflicts other than unique violations: they alone make a write run
    // alone among writers
    let mut lost = 0;
    for attempt in 0..PG_WRITE_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(backoff(attempt));
        }
        // no sequential scans where an index will do: a young table (a fresh database, a
        // new month's partition) has no statistics yet, and the planner's default guesses
        // then scan a whole table for a few keys, which at SERIALIZABLE also takes a
        // predicate lock on the whole relation and aborts every concurrent writer to it. Where
        // no index serves, the planner still scans, and that scan's cost (raised by 10^10)
        // must not buy it a JIT compilation on every run.
        // a write that moves money on named accounts runs at REPEATABLE READ: the database
        // makes every write of an account's rows (and of a challenge's taps) a write of one
        // row, so two such writes that overlap cannot both commit (schema version 14; ADR 0012
        // §8); every other write runs at SERIALIZABLE
        let rr = !accounts.is_empty();
        let begin = if rr {
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL enable_seqscan = off; SET LOCAL jit = off"
        } else {
            "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL enable_seqscan = off; SET LOCAL jit = off"
        };
        // after losing PG_SERIALIZE_AFTER times, run alone among writers
        // a conflict while taking the locks (a deadlock the server broke) is a lost attempt
        let alone = lost >= PG_SERIALIZE_AFTER;
        let tx = match PgTx::begin_write(pool, begin, alone, accounts) {
            Ok(tx) => tx,
            Err(StoreError::Retryable(why)) => {
                tracing::debug!(attempt, %why, "write conflicted while beginning; retrying");
                lost += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if rr {
            tx.unique_violations_conflict();
        }
        let w = Writer {
            tx: Conn::Pg(&tx),
            reader: Reader {
                conn: Conn::Pg(&tx),
            },
            bumped: Default::default(),
            ahead: Default::default(),
            committed: Default::default(),
        };
        // what the write kept is written before it commits
        let out = f(&w).and_then(|r| w.flush().map(|()| r).map_err(E::from));
        let hooks = w.take_after_commit();
        drop(w);
        match out {
            Ok(r) => match tx.commit() {
                Ok(()) => {
                    run_after_commit(hooks);
                    return Ok(r);
                }
                Err(StoreError::Retryable(why)) => {
                    tracing::debug!(attempt, %why, "write conflicted at commit; retrying");
                    lost += 1;
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => {
                let retry = tx.hit_retryable();
                let unique = tx.hit_unique();
                // the transaction is over either way; its error is the one to report
                let _ = tx.rollback();
                // a unique violation while running alone is the write's own fault
                if !retry || (unique && alone) {
                    return Err(e);
                }
                if unique && unique_retries < PG_UNIQUE_RETRIES {
                    unique_retries += 1;
                    tracing::info!(attempt, "a key met a concurrent write's; retrying");
                } else {
                    lost += 1;
                    tracing::debug!(attempt, "write conflicted; retrying");
                }
            }
        }
    }
    Err(StoreError::Busy(format!(
        "the write conflicted with concurrent ones {PG_WRITE_ATTEMPTS} times"
    ))
    .into())
}

/// 5 ms doubling up to 1 s, full jitter (anywhere from 0 to the cap): transactions that
/// collided spread out instead of colliding again.
fn backoff(attempt: u32) -> Duration {
    let cap_us = 5_000u64
        .saturating_mul(1u64 << attempt.min(16))
        .min(1_000_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    // mix the thread in, so threads woken together do not draw the same delay
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&std::thread::current().id(), &mut h);
    let seed = std::hash::Hasher::finish(&h) ^ nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Duration::from_micros(seed % cap_us.max(1))
}

/// A PostgreSQL read: a REPEATABLE READ READ ONLY snapshot.
fn pg_read<R, E: From<StoreError>>(
    pool: &PgPool,
    f: impl FnOnce(&Reader<'_>) -> Result<R, E>,
) -> Result<R, E> {
    let tx = PgTx::begin(pool, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let out = f(&Reader {
        conn: Conn::Pg(&tx),
    });
    match out {
        Ok(r) => {
            tx.commit()?;
            Ok(r)
        }
        Err(e) => {
            let _ = tx.rollback();
            Err(e)
        }
    }
}

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod tests;
