//! Torn taps in the journal: an AUTHORIZE TAP that got no valid answer (no answer, a transport
//! error, garbage, a signature that does not verify, or an answer after which the gate stayed
//! closed) is journaled durably with the challenge it sent. While it is younger than the torn
//! window the reader repeats that challenge to the next card ([`Journal::torn_within`]); a
//! recovered tap is journaled as a normal tap and its torn entry deleted in one transaction
//! ([`Journal::record_recovered`]). Older entries go, exactly once, into the next sealed batch
//! as `TornRecord`s (the sealing and the recovery both see only entries not yet in a batch, and
//! split them by age at the same instant), and are deleted when the batch is acknowledged.
//!
//! **Write-ahead.** Before a fresh challenge is sent it is journaled durably as a *pending*
//! entry ([`Journal::record_pending`]). The tap's outcome resolves it: a tap record journaled
//! (the gate opens) deletes it in the same transaction ([`Journal::record_answered`]); a
//! refusal status word or a re-quote (the phone signed nothing) deletes it
//! ([`Journal::discard_pending`]); anything else makes it an ordinary torn entry
//! ([`Journal::tear_pending`]). A pending entry found at open (the validator stopped mid-tap)
//! becomes an ordinary torn entry too: so the validator keeps a trace of every challenge a
//! phone may have signed. Pending entries are never repeated nor sealed.

use super::{Journal, JournalError, Sync};
use crate::decision::Medium;
use mancard_protocol::{TapChallenge, TapRecord, TornRecord};
use rusqlite::{params, Transaction};

/// The schema step from version 1 to 2: the torn taps, and how many a sealed batch carries.
/// A fresh journal runs it too (after version 1), so both give the very same schema.
pub(super) const STEP_V2: &str = "
CREATE TABLE torn (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    challenge_id BLOB NOT NULL UNIQUE,
    challenge BLOB NOT NULL,
    batch_id BLOB
);
CREATE INDEX torn_batch ON torn(batch_id);
ALTER TABLE batches ADD COLUMN torn INTEGER NOT NULL DEFAULT 0;
";

/// The schema step from version 2 to 3: a torn entry may be a challenge journaled before it
/// was sent, whose tap has not ended yet (`pending = 1`). A fresh journal runs it too.
pub(super) const STEP_V3: &str = "
ALTER TABLE torn ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
";

/// How long (seconds) a torn tap waits for its card to come back, by default.
pub const DEFAULT_TORN_WINDOW_SECS: i64 = 120;
/// Most torn records in one upload batch.
pub const MAX_BATCH_TORN: usize = 500;

/// A torn tap waiting for its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTap {
    /// Its row in the journal.
    pub seq: i64,
    /// The validator's clock when it gave up on the answer.
    pub time: i64,
    /// The challenge the validator sent.
    pub challenge: TapChallenge,
}

/// The torn taps a batch seals: their rows and their records.
pub(super) struct SealedTorn {
    pub(super) seqs: Vec<i64>,
    pub(super) records: Vec<TornRecord>,
}

impl Journal {
    /// Journals a torn tap durably (`synchronous=FULL`): `challenge` was sent at the validator
    /// time in it and no valid answer came back; `time` is when the validator gave up. The
    /// same challenge journaled again is one entry.
    pub fn record_torn(&mut self, challenge: &TapChallenge, time: i64) -> Result<(), JournalError> {
        self.set_sync(Sync::Full)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO torn(time, challenge_id, challenge) VALUES (?1, ?2, ?3)",
            params![time, &challenge.id()[..], challenge.encode()],
        )?;
        Ok(())
    }

    /// Journals `challenge` durably (`synchronous=FULL`) as pending, before it is sent, at the
    /// validator time `time`; its row, for [`Journal::record_answered`],
    /// [`Journal::discard_pending`] or [`Journal::tear_pending`].
    pub fn record_pending(
        &mut self,
        challenge: &TapChallenge,
        time: i64,
    ) -> Result<i64, JournalError> {
        self.set_sync(Sync::Full)?;
        self.conn.execute(
            "INSERT INTO torn(time, challenge_id, challenge, pending) VALUES (?1, ?2, ?3, 1)",
            params![time, &challenge.id()[..], challenge.encode()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Deletes the pending challenge `seq`: the phone refused it by a status word or asked
    /// for a re-quote, so it signed nothing. Not fsynced: were the deletion lost, the entry
    /// would only become a torn tap nobody recovers (the gate did not open, which is true).
    pub fn discard_pending(&mut self, seq: i64) -> Result<(), JournalError> {
        self.set_sync(Sync::Normal)?;
        self.conn
            .execute("DELETE FROM torn WHERE seq = ?1 AND pending = 1", [seq])?;
        Ok(())
    }

    /// Makes the pending challenge `seq` an ordinary torn tap (durably): no valid answer came
    /// back, or the gate stayed closed after it; `time` is when the validator gave up.
    pub fn tear_pending(&mut self, seq: i64, time: i64) -> Result<(), JournalError> {
        self.set_sync(Sync::Full)?;
        self.conn.execute(
            "UPDATE torn SET pending = 0, time = ?2 WHERE seq = ?1 AND pending = 1",
            params![seq, time],
        )?;
        Ok(())
    }

    /// At open: every challenge left pending (the validator stopped mid-tap) becomes an
    /// ordinary torn tap, keeping the time it was journaled at; how many.
    pub(super) fn tear_left_pending(&mut self) -> Result<usize, JournalError> {
        self.set_sync(Sync::Full)?;
        Ok(self
            .conn
            .execute("UPDATE torn SET pending = 0 WHERE pending = 1", [])?)
    }

    /// Journals the tap a fresh challenge was answered with (the gate opens) and deletes that
    /// challenge's pending entry `pending_seq`, in one durable transaction; its sequence
    /// number. Refused (nothing written) if the entry is no longer pending.
    pub fn record_answered(
        &mut self,
        medium: Medium,
        rec: &TapRecord,
        pending_seq: i64,
    ) -> Result<i64, JournalError> {
        self.record_resolving(medium, rec, pending_seq, true)
    }

    /// The torn taps not yet sealed whose time is at or after `since`, newest first, at most
    /// `limit` (what the reader repeats before a fresh challenge).
    pub fn torn_within(&self, since: i64, limit: usize) -> Result<Vec<TornTap>, JournalError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, time, challenge FROM torn
             WHERE batch_id IS NULL AND pending = 0 AND time >= ?1
             ORDER BY time DESC, seq DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(params![since, limit], |r| {
            Ok((
                r.get::<_, i64>("seq")?,
                r.get::<_, i64>("time")?,
                r.get::<_, Vec<u8>>("challenge")?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, bytes) = row?;
            let challenge = TapChallenge::decode(&bytes)
                .map_err(|e| JournalError::Corrupt(format!("torn tap {seq}: {e}")))?;
            out.push(TornTap {
                seq,
                time,
                challenge,
            });
        }
        Ok(out)
    }

    /// Journals a recovered torn tap as an accepted tap and deletes its torn entry, in one
    /// durable transaction; its sequence number. Refused (nothing written) if the torn entry
    /// is gone or already sealed into a batch: it is then evidence the gate stayed closed.
    pub fn record_recovered(
        &mut self,
        medium: Medium,
        rec: &TapRecord,
        torn_seq: i64,
    ) -> Result<i64, JournalError> {
        self.record_resolving(medium, rec, torn_seq, false)
    }

    /// Inserts the tap `rec` and deletes the torn entry `seq` (pending or not, as `pending`
    /// says, never sealed) in one durable transaction.
    fn record_resolving(
        &mut self,
        medium: Medium,
        rec: &TapRecord,
        seq: i64,
        pending: bool,
    ) -> Result<i64, JournalError> {
        self.set_sync(Sync::Full)?;
        let tx = self.conn.transaction()?;
        let deleted = tx.execute(
            "DELETE FROM torn WHERE seq = ?1 AND batch_id IS NULL AND pending = ?2",
            params![seq, i64::from(pending)],
        )?;
        if deleted != 1 {
            let what = if pending {
                "pending challenge"
            } else {
                "torn tap"
            };
            return Err(JournalError::Corrupt(format!(
                "{what} {seq} is no longer waiting for its answer"
            )));
        }
        let seq = super::insert_tap(&tx, medium, rec)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Torn taps waiting for their card (not yet sealed).
    pub(super) fn torn_waiting(&self) -> Result<i64, JournalError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM torn WHERE batch_id IS NULL AND pending = 0",
            [],
            |r| r.get(0),
        )?)
    }
}

/// The torn taps older than `before` and not yet sealed, oldest first, at most
/// [`MAX_BATCH_TORN`].
pub(super) fn unsealed_torn(tx: &Transaction<'_>, before: i64) -> Result<SealedTorn, JournalError> {
    let mut st = tx.prepare(
        "SELECT seq, time, challenge FROM torn WHERE batch_id IS NULL AND pending = 0 AND time < ?1
         ORDER BY seq LIMIT ?2",
    )?;
    let limit = i64::try_from(MAX_BATCH_TORN).unwrap_or(i64::MAX);
    let rows = st.query_map(params![before, limit], |r| {
        Ok((
            r.get::<_, i64>("seq")?,
            r.get::<_, i64>("time")?,
            r.get::<_, Vec<u8>>("challenge")?,
        ))
    })?;
    let mut sealed = SealedTorn {
        seqs: Vec::new(),
        records: Vec::new(),
    };
    for row in rows {
        let (seq, time, bytes) = row?;
        let challenge = TapChallenge::decode(&bytes)
            .map_err(|e| JournalError::Corrupt(format!("torn tap {seq}: {e}")))?;
        sealed.seqs.push(seq);
        sealed.records.push(TornRecord { time, challenge });
    }
    Ok(sealed)
}

/// Marks the torn taps `seqs` as sealed into `batch_id`.
pub(super) fn mark_torn_sealed(
    tx: &Transaction<'_>,
    batch_id: &[u8; 16],
    seqs: &[i64],
) -> Result<(), JournalError> {
    let mut up = tx.prepare("UPDATE torn SET batch_id = ?1 WHERE seq = ?2")?;
    for seq in seqs {
        up.execute(params![&batch_id[..], seq])?;
    }
    Ok(())
}

/// Deletes the torn taps of an acknowledged batch; how many.
pub(super) fn delete_acked_torn(
    tx: &Transaction<'_>,
    batch_id: &[u8; 16],
) -> Result<usize, JournalError> {
    Ok(tx.execute(
        "DELETE FROM torn WHERE batch_id = ?1",
        params![&batch_id[..]],
    )?)
}
