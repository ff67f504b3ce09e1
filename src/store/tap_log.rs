//! `tap_log`: the signed chain of taps and passes (one row per authorization, written on the
//! tap path; `hash` is the proof id, the next proof's `prev` under the same certificate), and
//! `recovered_taps`: entries learned back from the backend.

use super::{Read, Write, Writer};
use crate::error::WalletError;
use rusqlite::{params, OptionalExtension, ToSql};

/// The newest tap-log entry: its position, proof id, counter and certificate id.
pub(crate) struct LogHeadRow {
    pub(crate) seq: i64,
    pub(crate) hash: Vec<u8>,
    pub(crate) counter: i64,
    pub(crate) cert_hash: Vec<u8>,
}

/// One tap-log entry to append.
pub(crate) struct LogRow<'a> {
    pub(crate) seq: i64,
    pub(crate) credential_id: i64,
    pub(crate) counter: u32,
    pub(crate) kind: u8,
    pub(crate) amount: i64,
    pub(crate) time: i64,
    pub(crate) line_id: Option<u32>,
    pub(crate) validator_id: Option<u32>,
    pub(crate) entry: &'a [u8],
    pub(crate) hash: &'a [u8; 32],
}

/// A stored entry as the chain check reads it.
pub(crate) struct StoredEntry {
    pub(crate) counter: i64,
    pub(crate) entry: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

impl Read<'_> {
    pub(crate) fn log_head(&self) -> Result<Option<LogHeadRow>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT t.seq, t.hash, t.counter, c.cert_hash FROM tap_log t
                 JOIN credentials c ON c.id = t.credential_id ORDER BY t.seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(LogHeadRow {
                        seq: r.get("seq")?,
                        hash: r.get("hash")?,
                        counter: r.get("counter")?,
                        cert_hash: r.get("cert_hash")?,
                    })
                },
            )
            .optional()?)
    }

    /// Tap-log entries plus credentials: zero only for a wallet that never held anything.
    pub(crate) fn rows_ever_used(&self) -> Result<i64, WalletError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM tap_log) + (SELECT count(*) FROM credentials) AS n",
            [],
            |r| r.get("n"),
        )?)
    }

    /// Encoded entries from `from` on, at most `limit`.
    pub(crate) fn entries_from(&self, from: i64, limit: u32) -> Result<Vec<Vec<u8>>, WalletError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT entry FROM tap_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![from, i64::from(limit)], |row| row.get("entry"))?;
        Ok(rows.collect::<Result<Vec<Vec<u8>>, _>>()?)
    }

    /// Calls `f` on every entry in log order; stops at its first error.
    pub(crate) fn each_entry(
        &self,
        mut f: impl FnMut(StoredEntry) -> Result<(), WalletError>,
    ) -> Result<(), WalletError> {
        let mut st = self
            .conn
            .prepare("SELECT counter, entry, hash FROM tap_log ORDER BY seq")?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            f(StoredEntry {
                counter: row.get("counter")?,
                entry: row.get("entry")?,
                hash: row.get("hash")?,
            })?;
        }
        Ok(())
    }

    /// Count and sum of the entries after `through` (not yet confirmed by the backend).
    pub(crate) fn pending_after(&self, through: i64) -> Result<(i64, i64), WalletError> {
        Ok(self.conn.query_row(
            "SELECT count(*) AS n, COALESCE(SUM(amount), 0) AS total FROM tap_log WHERE seq > ?1",
            params![through],
            |row| Ok((row.get("n")?, row.get("total")?)),
        )?)
    }

    /// The amount authorized by entry `seq`.
    pub(crate) fn tap_amount(&self, seq: i64) -> Result<Option<i64>, WalletError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT amount FROM tap_log WHERE seq = ?1")?;
        Ok(st.query_row(params![seq], |r| r.get("amount")).optional()?)
    }

    /// The entry with `counter` and its credential's certificate.
    pub(crate) fn tap_with_counter(
        &self,
        counter: u32,
    ) -> Result<Option<(i64, Vec<u8>)>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT t.seq, c.certificate FROM tap_log t
                 JOIN credentials c ON c.id = t.credential_id WHERE t.counter = ?1",
                params![counter],
                |r| Ok((r.get("seq")?, r.get("certificate")?)),
            )
            .optional()?)
    }
}

impl LogRow<'_> {
    /// The row's values in the column order of `into_tap_log!`.
    fn values(&self) -> [&dyn ToSql; 10] {
        [
            &self.seq,
            &self.credential_id,
            &self.counter,
            &self.kind,
            &self.amount,
            &self.time,
            &self.line_id,
            &self.validator_id,
            &self.entry,
            self.hash,
        ]
    }
}

/// The columns and placeholders both appends write (a macro, so that each statement stays a
/// `&'static str` and the tap path formats nothing).
macro_rules! into_tap_log {
    () => {
        "INTO tap_log (seq, credential_id, counter, kind, amount, time, line_id, validator_id, \
         entry, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    };
}

impl Writer {
    /// Appends an entry as a transaction of its own: the one cached INSERT, in autocommit
    /// mode (no BEGIN or COMMIT statement around it, no statement journal). The tap path's
    /// write: the entry, or nothing, is in the WAL when it returns.
    pub(crate) fn append_tap(&mut self, e: &LogRow<'_>) -> Result<(), WalletError> {
        let mut ins = self
            .conn
            .prepare_cached(concat!("INSERT ", into_tap_log!()))?;
        ins.execute(e.values().as_slice())?;
        Ok(())
    }
}

impl Write<'_> {
    /// Appends an entry learned back from the backend and marks it recovered at `at`.
    /// False (and nothing written) when its counter is already in the log.
    pub(crate) fn append_recovered(&self, e: &LogRow<'_>, at: i64) -> Result<bool, WalletError> {
        let n = self.tx.execute(
            concat!("INSERT OR IGNORE ", into_tap_log!()),
            e.values().as_slice(),
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO recovered_taps (seq, recovered_at) VALUES (?1, ?2)",
            params![e.seq, at],
        )?;
        Ok(true)
    }
}
