//! The validator's local journal (SQLite, WAL): every decision, the upload batches, and the
//! settings and config bundle. Accepted taps are committed with `synchronous=FULL` (an opened
//! gate is an acknowledged money movement); refusals with `NORMAL`.
//!
//! This is the validator's only module that speaks SQL. It opens through `mancard-sql`
//! (precheck, pragmas, schema version in `PRAGMA user_version`, a newer schema refused).
//! Schema version 1 is exactly the schema journals had before they carried a version, so
//! such a journal (`user_version = 0` holding exactly those tables) is adopted as version 1.
//! Version 2 adds the torn taps (`torn.rs`); version 3 the write-ahead flag on them (a challenge
//! journaled before it is sent, `pending` until its tap ends).

use crate::decision::{Medium, Refusal};
use mancard_protocol::{BatchBody, Pseudonym, SigningKey, TapBatch, TapRecord};
use mancard_sql::{holds_schema, ConnectionInitializer, OpenError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use thiserror::Error;
pub use torn::{TornTap, DEFAULT_TORN_WINDOW_SECS, MAX_BATCH_TORN};

/// Default number of refusal rows kept (older ones are deleted, their count kept).
pub const DEFAULT_REFUSALS_KEPT: i64 = 10_000;
/// Uploaded taps younger than this keep a small row for the replay cache and ride states.
pub const DEFAULT_RETENTION_SECS: i64 = 2 * 86_400;
/// Most records in one upload batch.
pub const MAX_BATCH_RECORDS: usize = 500;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file is not a journal, is damaged, or was written by a newer validator.
    #[error("journal: {0}")]
    Open(#[from] OpenError),
    #[error("journal is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot sign the batch: {0}")]
    Key(#[from] mancard_protocol::KeyError),
    #[error("random generator failed")]
    Rng,
}

/// A journaled accepted tap, as read back at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaledRide {
    pub time: i64,
    pub line_id: u32,
    pub pseudonym: Pseudonym,
    pub counter: u32,
    pub fare: i64,
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalCounts {
    /// Accepted taps ever journaled.
    pub accepted_total: i64,
    /// Accepted taps not yet in a batch.
    pub unsealed: i64,
    /// Accepted taps in a sealed batch not yet acknowledged.
    pub in_pending_batches: i64,
    /// Batches sealed and not yet acknowledged.
    pub pending_batches: i64,
    /// Accepted taps acknowledged by the backend.
    pub uploaded: i64,
    /// Refusals ever journaled (kept rows plus pruned).
    pub refusals_total: i64,
    /// Torn taps waiting for their card or for the next batch (not yet sealed).
    pub torn_waiting: i64,
    /// Torn taps acknowledged by the backend (the gate stayed closed for them).
    pub torn_uploaded: i64,
}

/// One line of [`Journal::recent`]: a decision as the status screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentDecision {
    /// When it was decided, UTC seconds.
    pub time: i64,
    /// `nfc` or `qr`.
    pub medium: String,
    /// `accepted`, or the refusal's code.
    pub code: String,
    /// The fare and counter, or the refusal's text.
    pub text: String,
}

/// A sealed batch, ready to (re)send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBatch {
    pub batch_id: [u8; 16],
    pub bytes: Vec<u8>,
    pub records: usize,
    /// Torn records in it.
    pub torn: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Normal,
    Full,
}

pub struct Journal {
    conn: Connection,
    sync: Sync,
    refusals_kept: i64,
    retention_secs: i64,
    torn_window_secs: i64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

/// The journal's schema, version 1. Also, exactly, the schema of the journals written before
/// the version existed (their `CREATE TABLE IF NOT EXISTS` is stored without the
/// `IF NOT EXISTS`), which is how [`JournalSchema::adopt_unversioned`] recognises them.
const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE taps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    line_id INTEGER NOT NULL,
    pseudonym BLOB NOT NULL,
    counter INTEGER NOT NULL,
    fare INTEGER NOT NULL,
    record BLOB,
    batch_id BLOB,
    uploaded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX taps_batch ON taps(batch_id);
CREATE TABLE refusals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    code TEXT NOT NULL,
    text TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    records INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    acked_at INTEGER
);
";

/// How a journal connection is opened and its schema created or upgraded.
#[derive(Debug, Clone, Copy)]
pub struct JournalSchema;

impl ConnectionInitializer for JournalSchema {
    type Error = JournalError;
    const NAME: &'static str = "validator journal";
    const END_VERSION: u32 = 3;

    fn prepare(&self, conn: &Connection) -> Result<(), JournalError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        Ok(())
    }

    fn init(&self, tx: &Transaction<'_>) -> Result<(), JournalError> {
        tx.execute_batch(SCHEMA_V1)?;
        tx.execute_batch(torn::STEP_V2)?;
        tx.execute_batch(torn::STEP_V3)?;
        Ok(())
    }

    fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), JournalError> {
        match version {
            1 => Ok(tx.execute_batch(torn::STEP_V2)?),
            2 => Ok(tx.execute_batch(torn::STEP_V3)?),
            _ => Err(JournalError::Corrupt(format!(
                "no upgrade from journal schema version {version}"
            ))),
        }
    }

    /// A journal written before the schema had a version is version 1 if it holds exactly
    /// the version 1 tables; anything else is someone else's file.
    fn adopt_unversioned(&self, tx: &Transaction<'_>) -> Result<Option<u32>, JournalError> {
        Ok(holds_schema(tx, SCHEMA_V1)?.then_some(1))
    }
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`. A file that is not a journal, is
    /// damaged, or has a newer schema is refused and left as it is. A challenge still pending
    /// (the validator stopped mid-tap, after journaling it and maybe sending it) becomes an
    /// ordinary torn tap, its window counted from when it was journaled.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let mut journal = Self::with_connection(mancard_sql::open_database(path, &JournalSchema)?);
        journal.tear_left_pending()?;
        Ok(journal)
    }

    /// An in-memory journal (benchmarks and unit tests).
    pub fn in_memory() -> Result<Self, JournalError> {
        let mut conn = Connection::open_in_memory()?;
        JournalSchema.prepare(&conn)?;
        mancard_sql::migrate(&mut conn, &JournalSchema)?;
        Ok(Self::with_connection(conn))
    }

    fn with_connection(conn: Connection) -> Self {
        Self {
            conn,
            sync: Sync::Full,
            refusals_kept: DEFAULT_REFUSALS_KEPT,
            retention_secs: DEFAULT_RETENTION_SECS,
            torn_window_secs: DEFAULT_TORN_WINDOW_SECS,
        }
    }

    pub fn set_limits(&mut self, refusals_kept: i64, retention_secs: i64) {
        self.refusals_kept = refusals_kept.max(0);
        self.retention_secs = retention_secs.max(0);
    }

    /// How long a torn tap waits for its card before the next batch carries it (seconds).
    pub fn set_torn_window_secs(&mut self, secs: i64) {
        self.torn_window_secs = secs.max(0);
    }

    pub fn torn_window_secs(&self) -> i64 {
        self.torn_window_secs
    }

    fn set_sync(&mut self, s: Sync) -> Result<(), JournalError> {
        if self.sync != s {
            let sql = match s {
                Sync::Full => "PRAGMA synchronous=FULL",
                Sync::Normal => "PRAGMA synchronous=NORMAL",
            };
            self.conn.execute_batch(sql)?;
            self.sync = s;
        }
        Ok(())
    }

    // ---- settings ----

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), JournalError> {
        self.set_sync(Sync::Full)?;
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn get_meta_i64(&self, key: &str) -> Result<Option<i64>, JournalError> {
        match self.get_meta(key)? {
            None => Ok(None),
            Some(v) => {
                let arr: [u8; 8] = v
                    .try_into()
                    .map_err(|_| JournalError::Corrupt(format!("meta {key} is not an i64")))?;
                Ok(Some(i64::from_be_bytes(arr)))
            }
        }
    }

    pub fn set_meta_i64(&mut self, key: &str, v: i64) -> Result<(), JournalError> {
        self.set_meta(key, &v.to_be_bytes())
    }

    // ---- decisions ----

    /// Journals an accepted tap durably (`synchronous=FULL`); returns its sequence number.
    pub fn record_accepted(
        &mut self,
        medium: Medium,
        rec: &TapRecord,
    ) -> Result<i64, JournalError> {
        self.set_sync(Sync::Full)?;
        let tx = self.conn.transaction()?;
        let seq = insert_tap(&tx, medium, rec)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Journals a refusal (`synchronous=NORMAL`: written to the WAL, not fsynced).
    pub fn record_refusal(
        &mut self,
        medium: Medium,
        time: i64,
        refusal: &Refusal,
    ) -> Result<i64, JournalError> {
        self.set_sync(Sync::Normal)?;
        self.conn.execute(
            "INSERT INTO refusals(time, medium, code, text, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                time,
                medium.name(),
                refusal.code(),
                refusal.display_text(),
                format!("{refusal:?}")
            ],
        )?;
        let seq = self.conn.last_insert_rowid();
        if self.refusals_kept > 0 && seq % 1000 == 0 {
            self.prune_refusals()?;
        }
        Ok(seq)
    }

    fn prune_refusals(&mut self) -> Result<(), JournalError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM refusals", [], |r| r.get(0))?;
        let excess = n - self.refusals_kept;
        if excess > 0 {
            let tx = self.conn.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM refusals WHERE seq IN (SELECT seq FROM refusals ORDER BY seq LIMIT ?1)",
                [excess],
            )?;
            let pruned: i64 = tx
                .query_row(
                    "SELECT value FROM meta WHERE key='refusals_pruned'",
                    [],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional()?
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map(i64::from_be_bytes)
                .unwrap_or(0);
            let total = pruned.saturating_add(i64::try_from(deleted).unwrap_or(0));
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('refusals_pruned', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [&total.to_be_bytes()[..]],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Accepted taps still in the journal, oldest first (to rebuild replay cache and ride states).
    pub fn rides(&self) -> Result<Vec<JournaledRide>, JournalError> {
        let mut st = self
            .conn
            .prepare("SELECT time, line_id, pseudonym, counter, fare FROM taps ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>("time")?,
                r.get::<_, u32>("line_id")?,
                r.get::<_, Vec<u8>>("pseudonym")?,
                r.get::<_, u32>("counter")?,
                r.get::<_, i64>("fare")?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (time, line_id, p, counter, fare) = row?;
            let pseudonym = Pseudonym(
                p.try_into()
                    .map_err(|_| JournalError::Corrupt("pseudonym is not 16 bytes".into()))?,
            );
            out.push(JournaledRide {
                time,
                line_id,
                pseudonym,
                counter,
                fare,
            });
        }
        Ok(out)
    }

    // ---- upload ----

    /// The oldest sealed batch not yet acknowledged, if any (resent with the same id).
    pub fn pending_batch(&self) -> Result<Option<SealedBatch>, JournalError> {
        let row = self
            .conn
            .query_row(
                "SELECT batch_id, bytes, records, torn FROM batches WHERE acked_at IS NULL
                 ORDER BY created_at, rowid LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>("batch_id")?,
                        r.get::<_, Vec<u8>>("bytes")?,
                        r.get::<_, i64>("records")?,
                        r.get::<_, i64>("torn")?,
                    ))
                },
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((id, bytes, n, torn)) => Ok(Some(SealedBatch {
                batch_id: id
                    .try_into()
                    .map_err(|_| JournalError::Corrupt("batch id is not 16 bytes".into()))?,
                bytes,
                records: usize::try_from(n).unwrap_or(0),
                torn: usize::try_from(torn).unwrap_or(0),
            })),
        }
    }

    /// Seals up to [`MAX_BATCH_RECORDS`] unbatched taps and up to [`MAX_BATCH_TORN`] torn taps
    /// older than the torn window (at `now`) into a new signed batch with a random id, durably,
    /// before anything is sent. None if there is nothing to seal.
    pub fn seal_batch(
        &mut self,
        validator_id: u32,
        key: &SigningKey,
        now: i64,
    ) -> Result<Option<SealedBatch>, JournalError> {
        use ring::rand::SecureRandom;
        self.set_sync(Sync::Full)?;
        let tx = self.conn.transaction()?;
        let mut seqs = Vec::new();
        let mut records = Vec::new();
        {
            let mut st = tx.prepare(
                "SELECT seq, record FROM taps WHERE batch_id IS NULL AND record IS NOT NULL
                 ORDER BY seq LIMIT ?1",
            )?;
            let rows = st.query_map([MAX_BATCH_RECORDS as i64], |r| {
                Ok((r.get::<_, i64>("seq")?, r.get::<_, Vec<u8>>("record")?))
            })?;
            for row in rows {
                let (seq, bytes) = row?;
                let rec = TapRecord::decode(&bytes)
                    .map_err(|e| JournalError::Corrupt(format!("tap {seq}: {e}")))?;
                seqs.push(seq);
                records.push(rec);
            }
        }
        let torn = torn::unsealed_torn(&tx, now.saturating_sub(self.torn_window_secs))?;
        if records.is_empty() && torn.records.is_empty() {
            return Ok(None);
        }
        let mut batch_id = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut batch_id)
            .map_err(|_| JournalError::Rng)?;
        let (n, n_torn) = (records.len(), torn.records.len());
        let batch: TapBatch = BatchBody {
            validator_id,
            batch_id,
            created_at: now,
            records,
            torn: torn.records,
        }
        .sign(key)?;
        let bytes = batch.encode();
        tx.execute(
            "INSERT INTO batches(batch_id, created_at, records, bytes, torn)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&batch_id[..], now, n as i64, &bytes, n_torn as i64],
        )?;
        torn::mark_torn_sealed(&tx, &batch_id, &torn.seqs)?;
        {
            let mut up = tx.prepare("UPDATE taps SET batch_id = ?1 WHERE seq = ?2")?;
            for seq in seqs {
                up.execute(params![&batch_id[..], seq])?;
            }
        }
        tx.commit()?;
        Ok(Some(SealedBatch {
            batch_id,
            bytes,
            records: n,
            torn: n_torn,
        }))
    }

    /// Marks a batch acknowledged and prunes: the proofs of its taps are dropped at once, the
    /// small rows (replay cache, ride states) once older than the retention.
    pub fn ack_batch(&mut self, batch_id: &[u8; 16], now: i64) -> Result<(), JournalError> {
        self.set_sync(Sync::Full)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE batches SET acked_at = ?2, bytes = X'' WHERE batch_id = ?1 AND acked_at IS NULL",
            params![&batch_id[..], now],
        )?;
        tx.execute(
            "UPDATE taps SET uploaded = 1, record = NULL WHERE batch_id = ?1",
            params![&batch_id[..]],
        )?;
        let torn = torn::delete_acked_torn(&tx, batch_id)?;
        add_to_meta(&tx, "torn_uploaded", torn)?;
        let cutoff = now.saturating_sub(self.retention_secs);
        let pruned = tx.execute(
            "DELETE FROM taps WHERE uploaded = 1 AND time < ?1",
            [cutoff],
        )?;
        add_to_meta(&tx, "uploaded_pruned", pruned)?;
        tx.execute(
            "DELETE FROM batches WHERE acked_at IS NOT NULL AND acked_at < ?1",
            [cutoff],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn counts(&self) -> Result<JournalCounts, JournalError> {
        let q = |sql: &str| -> Result<i64, JournalError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))?)
        };
        let uploaded_pruned = self.get_meta_i64("uploaded_pruned")?.unwrap_or(0);
        let refusals_pruned = self.get_meta_i64("refusals_pruned")?.unwrap_or(0);
        let kept = q("SELECT COUNT(*) FROM taps")?;
        Ok(JournalCounts {
            accepted_total: kept + uploaded_pruned,
            unsealed: q("SELECT COUNT(*) FROM taps WHERE batch_id IS NULL")?,
            in_pending_batches: q(
                "SELECT COUNT(*) FROM taps WHERE batch_id IS NOT NULL AND uploaded = 0",
            )?,
            pending_batches: q("SELECT COUNT(*) FROM batches WHERE acked_at IS NULL")?,
            uploaded: q("SELECT COUNT(*) FROM taps WHERE uploaded = 1")? + uploaded_pruned,
            refusals_total: q("SELECT COUNT(*) FROM refusals")? + refusals_pruned,
            torn_waiting: self.torn_waiting()?,
            torn_uploaded: self.get_meta_i64("torn_uploaded")?.unwrap_or(0),
        })
    }

    /// The last `n` decisions (accepted and refused), newest first.
    pub fn recent(&self, n: usize) -> Result<Vec<RecentDecision>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT time, medium, 'accepted' AS code,
                    'fare ' || fare || ' rials, counter ' || counter AS text, seq
               FROM taps
             UNION ALL
             SELECT time, medium, code, text, seq FROM refusals
             ORDER BY 1 DESC, 5 DESC LIMIT ?1",
        )?;
        let rows = st.query_map([n as i64], |r| {
            Ok(RecentDecision {
                time: r.get("time")?,
                medium: r.get("medium")?,
                code: r.get("code")?,
                text: r.get("text")?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

/// Inserts an accepted tap in `tx`; its sequence number.
fn insert_tap(tx: &Transaction<'_>, medium: Medium, rec: &TapRecord) -> Result<i64, JournalError> {
    tx.execute(
        "INSERT INTO taps(time, medium, line_id, pseudonym, counter, fare, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            rec.time,
            medium.name(),
            rec.line_id,
            &rec.pseudonym.0[..],
            rec.counter,
            rec.fare,
            rec.encode()
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Adds `n` to the i64 counter `key` in the meta table (nothing if `n` is 0).
fn add_to_meta(tx: &Transaction<'_>, key: &str, n: usize) -> Result<(), JournalError> {
    if n == 0 {
        return Ok(());
    }
    let prev: i64 = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()?
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0);
    let total = prev.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, &total.to_be_bytes()[..]],
    )?;
    Ok(())
}

mod torn;

#[cfg(test)]
mod tests;
