//! The wallet's storage: the only module that speaks SQL.
//!
//! Three connections to `wallet.sqlite3`, each a type: the [`Writer`] (tap path, lifecycle,
//! sync; one at a time behind the wallet's writer mutex), the [`Reader`] (`query_only`; status,
//! ledger, history) and the [`Spare`] (WAL checkpoints on the maintenance thread). All are
//! opened through `mancard_sql` with [`schema::WalletSchema`].
//!
//! Reads are methods of [`Read`] (a borrowed connection); writes are methods of [`Write`] (a
//! borrowed transaction, which can also read). Each file holds one concept: `settings`,
//! `tap_keys`, `credentials`, `tap_log`, `events` (refusals, top-ups, the history query),
//! `outbox` (idempotency keys, top-ups) and `sync` (the backend's verdicts and ledger). Rows
//! are read by column name.

mod credentials;
mod events;
mod outbox;
pub(crate) mod schema;
pub(crate) mod settings;
mod sync;
mod tap_keys;
mod tap_log;

pub(crate) use credentials::{NewCredential, PassHold};
pub(crate) use events::{EventRow, HistoryBounds, HistoryRow, SettledRow};
pub(crate) use outbox::TopUpRow;
pub(crate) use sync::{LedgerRow, SettlementRow, VerdictRow};
pub(crate) use tap_log::LogRow;

use crate::error::WalletError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use schema::WalletSchema;
use std::path::Path;

/// A borrowed connection: the reads.
#[derive(Clone, Copy)]
pub(crate) struct Read<'a> {
    conn: &'a Connection,
}

/// A borrowed open transaction: the writes (and, through `Deref`, the reads).
pub(crate) struct Write<'a> {
    tx: &'a Transaction<'a>,
    read: Read<'a>,
}

impl<'a> std::ops::Deref for Write<'a> {
    type Target = Read<'a>;
    fn deref(&self) -> &Read<'a> {
        &self.read
    }
}

/// How a write transaction takes its lock.
#[derive(Clone, Copy)]
pub(crate) enum Lock {
    /// At the first write (the tap path, single-statement writes).
    Deferred,
    /// At once (lifecycle and sync: read-then-write sections).
    Immediate,
}

/// Runs `f` in one transaction on `conn`: committed if `f` succeeds, rolled back otherwise.
fn in_transaction<T>(
    conn: &mut Connection,
    lock: Lock,
    f: impl FnOnce(&Write<'_>) -> Result<T, WalletError>,
) -> Result<T, WalletError> {
    let behavior = match lock {
        Lock::Deferred => TransactionBehavior::Deferred,
        Lock::Immediate => TransactionBehavior::Immediate,
    };
    let tx = conn.transaction_with_behavior(behavior)?;
    let out = f(&Write {
        tx: &tx,
        read: Read { conn: &tx },
    })?;
    tx.commit()?;
    Ok(out)
}

/// The writer connection.
pub(crate) struct Writer {
    conn: Connection,
}

impl Writer {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, WalletError> {
        let conn = mancard_sql::open_database(path, &WalletSchema)?;
        // The writer keeps the right edge of the tap log's B-trees hot even with a long
        // history (8 MiB, allocated only as pages are used).
        conn.execute_batch("PRAGMA cache_size = -8192;")?;
        Ok(Self { conn })
    }

    /// Reads on the writer connection (at open, and where a read must see the writer's own
    /// latest commit).
    pub(crate) fn read(&self) -> Read<'_> {
        Read { conn: &self.conn }
    }

    /// One transaction taking its lock at the first write.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&Write<'_>) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        in_transaction(&mut self.conn, Lock::Deferred, f)
    }

    /// One transaction taking the write lock at once.
    pub(crate) fn write_now<T>(
        &mut self,
        f: impl FnOnce(&Write<'_>) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        in_transaction(&mut self.conn, Lock::Immediate, f)
    }
}

/// The reader connection (`query_only`).
pub(crate) struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens a reader on the already initialised database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, WalletError> {
        let conn = mancard_sql::open_secondary(path, &WalletSchema)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(Self { conn })
    }

    pub(crate) fn read(&self) -> Read<'_> {
        Read { conn: &self.conn }
    }
}

/// The maintenance connection: WAL checkpoints off the tap path.
pub(crate) struct Spare {
    conn: Connection,
}

impl Spare {
    pub(crate) fn open(path: &Path) -> Result<Self, WalletError> {
        Ok(Self {
            conn: mancard_sql::open_secondary(path, &WalletSchema)?,
        })
    }

    /// A passive WAL checkpoint (never waits for readers or the writer).
    pub(crate) fn checkpoint(&self) -> Result<(), WalletError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// A sequence number or count as SQLite stores it.
pub(crate) fn to_sql_i64(v: u64) -> Result<i64, WalletError> {
    i64::try_from(v).map_err(|_| WalletError::invalid("log sequence out of range"))
}
