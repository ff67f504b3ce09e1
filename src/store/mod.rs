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
use rusqlite::Connection;
use schema::WalletSchema;
use std::path::Path;
use std::time::Duration;

/// A borrowed connection: the reads.
#[derive(Clone, Copy)]
pub(crate) struct Read<'a> {
    conn: &'a Connection,
}

/// A borrowed connection inside an open transaction: the writes (and, through `Deref`, the
/// reads).
pub(crate) struct Write<'a> {
    tx: &'a Connection,
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

/// Rolls back the transaction still open on its connection when dropped: `f` failed (or
/// panicked), or COMMIT did.
struct RollbackUnlessCommitted<'a>(&'a Connection);

impl Drop for RollbackUnlessCommitted<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            if let Err(e) = self.0.execute_batch("ROLLBACK") {
                tracing::warn!("could not roll back a failed transaction: {e}");
            }
        }
    }
}

/// Runs `f` in one transaction on `conn`: committed if `f` succeeds, rolled back otherwise.
/// BEGIN and COMMIT are cached statements, compiled once per connection (rusqlite's
/// `Transaction` parses both again at every call).
fn in_transaction<T>(
    conn: &mut Connection,
    lock: Lock,
    f: impl FnOnce(&Write<'_>) -> Result<T, WalletError>,
) -> Result<T, WalletError> {
    let conn: &Connection = conn;
    let begin = match lock {
        Lock::Deferred => "BEGIN DEFERRED",
        Lock::Immediate => "BEGIN IMMEDIATE",
    };
    conn.prepare_cached(begin)?.execute([])?;
    let _guard = RollbackUnlessCommitted(conn);
    let out = f(&Write {
        tx: conn,
        read: Read { conn },
    })?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(out)
}

/// Statements each connection keeps compiled (the tap path's, the history's and the sync's
/// together; rusqlite's default is 16).
const STATEMENT_CACHE: usize = 64;

/// How the writer waits for the write lock that another connection holds (only the
/// maintenance connection ever writes besides it, for a moment after a checkpoint): in short
/// sleeps first, so a tap that meets that write waits for it and not for a millisecond tick,
/// then in milliseconds, for about as long as the other connections' `busy_timeout` (5 s).
fn writer_busy(attempt: i32) -> bool {
    const SHORT: i32 = 40;
    let pause = if attempt < SHORT {
        Duration::from_micros(25)
    } else {
        Duration::from_millis(1)
    };
    std::thread::sleep(pause);
    attempt < SHORT + 5_000
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_handler(Some(writer_busy))?;
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpointed {
    /// Frames in the WAL when it began.
    pub(crate) frames: i64,
    /// Of those, frames copied into the database (all of them when the WAL can start over).
    pub(crate) copied: i64,
    /// The maintenance connection made the first write after the complete checkpoint, so
    /// the WAL started over with it (unless a reader was still reading the old frames).
    pub(crate) restarted: bool,
}

impl Spare {
    pub(crate) fn open(path: &Path) -> Result<Self, WalletError> {
        Ok(Self {
            conn: mancard_sql::open_secondary(path, &WalletSchema)?,
        })
    }

    /// A passive WAL checkpoint (never waits for readers or the writer), then, if it copied
    /// every frame, a one-row write here that starts the WAL over. The first write after a
    /// complete checkpoint rewrites the WAL header and fsyncs it (SQLite's guard against a
    /// torn restart): made here, that fsync is the maintenance thread's, never the next tap's.
    /// A tap that comes during that write waits for it (`writer_busy`); one that came during
    /// the checkpoint leaves frames behind it, and the WAL starts over at a later checkpoint.
    pub(crate) fn checkpoint(&self) -> Result<Checkpointed, WalletError> {
        let (busy, frames, copied): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        let restarted = busy == 0 && frames > 0 && copied == frames;
        if restarted {
            self.conn
                .prepare_cached(
                    "INSERT INTO wal_restarts (id, restarts) VALUES (1, 1)
                     ON CONFLICT (id) DO UPDATE SET restarts = restarts + 1",
                )?
                .execute([])?;
        }
        Ok(Checkpointed {
            frames,
            copied,
            restarted,
        })
    }
}

/// A sequence number or count as SQLite stores it.
pub(crate) fn to_sql_i64(v: u64) -> Result<i64, WalletError> {
    i64::try_from(v).map_err(|_| WalletError::invalid("log sequence out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_in_wal(spare: &Spare) -> i64 {
        spare
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    fn add_event(w: &mut Writer, detail: &str) -> Result<(), WalletError> {
        w.write(|tx| {
            tx.tx.execute(
                "INSERT INTO events (after_seq, time, kind, detail) VALUES (0, 0, 'top_up', ?1)",
                [detail],
            )?;
            Ok(())
        })
    }

    fn events(w: &Writer) -> i64 {
        w.read()
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    }

    /// The tap connection: WAL, commits without fsync (`synchronous = NORMAL`), and never a
    /// checkpoint of its own (`wal_autocheckpoint = 0`: checkpoints are the spare's).
    #[test]
    fn the_writer_commits_to_the_wal_and_never_checkpoints_itself() {
        let d = tempfile::tempdir().unwrap();
        let w = Writer::open(&d.path().join("w.sqlite3")).unwrap();
        let pragma = |p: &str| -> String {
            w.read()
                .conn
                .query_row(&format!("PRAGMA {p}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
        assert_eq!(pragma("synchronous"), "Integer(1)");
        assert_eq!(pragma("wal_autocheckpoint"), "Integer(0)");
    }

    /// A transaction whose work fails leaves nothing behind and the connection ready for the
    /// next one (BEGIN and COMMIT are cached statements, not rusqlite's `Transaction`).
    #[test]
    fn a_failed_transaction_rolls_back_and_the_next_one_commits() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(&d.path().join("w.sqlite3")).unwrap();
        add_event(&mut w, "kept").unwrap();
        let failed = w.write_now(|tx| {
            tx.tx.execute(
                "INSERT INTO events (after_seq, time, kind) VALUES (0, 0, 'top_up')",
                [],
            )?;
            Err::<(), _>(WalletError::internal("the work failed"))
        });
        assert!(failed.is_err());
        assert!(w.conn.is_autocommit(), "the transaction is still open");
        assert_eq!(events(&w), 1);
        // a statement error inside (a CHECK) rolls back too
        let bad = w.write(|tx| {
            tx.tx.execute(
                "INSERT INTO events (after_seq, time, kind) VALUES (-1, 0, 'top_up')",
                [],
            )?;
            Ok(())
        });
        assert!(bad.is_err());
        add_event(&mut w, "also kept").unwrap();
        assert_eq!(events(&w), 2);
    }

    /// A checkpoint that copies the whole WAL starts it over with the spare's own write, so the
    /// writer's next commit appends to a WAL whose header (and its fsync) is already written;
    /// a checkpoint that finds the writer's frames still to copy does not.
    #[test]
    fn a_complete_checkpoint_starts_the_wal_over_on_the_spare() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("w.sqlite3");
        let mut w = Writer::open(&path).unwrap();
        let spare = Spare::open(&path).unwrap();
        for i in 0..50 {
            add_event(&mut w, &format!("event {i}")).unwrap();
        }
        let before = frames_in_wal(&spare);
        assert!(before >= 50, "{before} frames");
        let c = spare.checkpoint().unwrap();
        assert!(c.restarted, "{c:?}");
        assert_eq!(c.copied, c.frames);
        // only the spare's restart write is in the WAL now
        assert!(
            frames_in_wal(&spare) <= 2,
            "{} frames",
            frames_in_wal(&spare)
        );
        add_event(&mut w, "after").unwrap();
        assert!(frames_in_wal(&spare) <= 4);
        assert_eq!(events(&w), 51);
        // a reader in the middle of a read keeps the old frames: copied, not started over
        let reader = Reader::open(&path).unwrap();
        let mut st = reader.conn.prepare("SELECT id FROM events").unwrap();
        let mut rows = st.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        add_event(&mut w, "while reading").unwrap();
        let c = spare.checkpoint().unwrap();
        assert!(!c.restarted && c.copied < c.frames, "{c:?}");
        drop(rows);
        drop(st);
        let restarts: i64 = w
            .read()
            .conn
            .query_row("SELECT restarts FROM wal_restarts", [], |r| r.get(0))
            .unwrap();
        assert!(restarts >= 1);
    }

    /// The writer waits for a write the spare holds (the restart write, or any other) and
    /// then commits, rather than failing with SQLITE_BUSY.
    #[test]
    fn the_writer_waits_out_another_connections_write() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("w.sqlite3");
        let mut w = Writer::open(&path).unwrap();
        let spare = Spare::open(&path).unwrap();
        spare.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            spare.conn.execute_batch("COMMIT").unwrap();
        });
        let t = std::time::Instant::now();
        add_event(&mut w, "waited").unwrap();
        assert!(t.elapsed() >= Duration::from_millis(25));
        released.join().unwrap();
        assert_eq!(events(&w), 1);
    }
}
