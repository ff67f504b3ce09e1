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
//! One connection, behind a mutex, serializes every transaction (SQLite has one writer
//! anyway); callers run on blocking threads, never on the async runtime. The ledger is
//! append-only, enforced by triggers.

mod accounts;
mod audit;
mod batches;
mod bundles;
mod certificates;
pub(crate) mod db;
mod devices;
mod fraud;
mod ids;
mod leases;
mod ledger;
mod log;
mod operators;
mod schema;
mod sessions;
mod taps;
mod topups;
mod validators;
mod verdicts;

pub use accounts::{Account, OtpRow, SandboxCode};
pub use batches::StoredBatch;
pub use bundles::Bundle;
pub use certificates::{CertRow, NewCertificate};
pub use devices::{Device, Revocation};
pub use fraud::NewFraudCase;
pub use leases::Lease;
pub use ledger::NewEntry;
pub use log::LogRow;
pub use operators::{row_hash, Decision, NewAdjustment, NewLogRow, StoredLogRow, GENESIS};
pub use schema::{BackendSchema, SCHEMA_V1, SCHEMA_VERSION};
pub use sessions::{Purged, SessionRow};
pub use taps::{LastRide, NewTap, Ride, TapRow, TapSource, TapState};
pub use topups::{GatewayPayment, GatewayStatus, Intent, VerifiedRecord};
pub use validators::{NewValidator, ValidatorRow};
pub use verdicts::{NewAbuse, NewVerdict};

use crate::error::StoreError;
use db::Conn;
use rusqlite::{Connection, TransactionBehavior};
use std::ops::Deref;
use std::path::Path;
use std::sync::Mutex;

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
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
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in an immediate (write) transaction; commits if it returns `Ok`.
    ///
    /// `f` is `FnMut`: a database that detects conflicts at commit (PostgreSQL at
    /// SERIALIZABLE, issue #16) runs it again on a fresh transaction, so it must not consume
    /// what it captures. SQLite runs it once (this mutex serializes every transaction).
    pub fn write<R, E: From<StoreError>>(
        &self,
        mut f: impl FnMut(&Writer<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut guard = self.lock();
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = {
            let w = Writer {
                tx: Conn::Sqlite(&tx),
                reader: Reader {
                    conn: Conn::Sqlite(&tx),
                },
            };
            f(&w)?
        };
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Reader<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut guard = self.lock();
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&Reader {
            conn: Conn::Sqlite(&tx),
        })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Checkpoints the WAL into the main file (at shutdown). dialect: SQLite only.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the transaction rolled back (dropped), so the
        // connection is still consistent: recover it.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
