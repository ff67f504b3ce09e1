//! `events`: refusals and top-ups, placed in the history by the tap-log position they
//! followed; and the history query, which merges them with the tap log.

use super::sync::{StoredTapStatus, StoredVerdictStatus};
use super::{Read, Write};
use crate::error::WalletError;
use mancard_api::{TapStatus, VerdictStatus};
use rusqlite::params;

/// Refusals the history keeps (the newest); older ones are deleted as new ones arrive.
pub(crate) const MAX_REFUSALS_KEPT: i64 = 500;

/// An event to record.
pub(crate) struct EventRow<'a> {
    pub(crate) after_seq: i64,
    pub(crate) time: i64,
    /// `refusal` or `top_up`.
    pub(crate) kind: &'static str,
    pub(crate) amount: i64,
    pub(crate) line_id: Option<u32>,
    pub(crate) validator_id: Option<u32>,
    pub(crate) status_word: Option<u16>,
    pub(crate) detail: &'a str,
}

/// Where a history page starts. Log entry s sits at (s + 1, 0, s); an event at
/// (after_seq, 1, id); a page holds the items strictly below the cursor's position.
pub(crate) struct HistoryBounds {
    pub(crate) major: i64,
    pub(crate) minor: i64,
    /// Exact bound for the log stream: entries with seq below this.
    pub(crate) log_below: i64,
    /// Exact bound for the event stream: (after_seq, id) below (major, this).
    pub(crate) event_id_below: i64,
    /// Rows to read (one more than the page, to know whether there are more).
    pub(crate) limit: i64,
}

/// One history row: for a tap or pass, what the phone authorized and everything the backend
/// said about it (`crate::views` decides what the rider sees).
pub(crate) struct HistoryRow {
    pub(crate) major: i64,
    pub(crate) minor: i64,
    pub(crate) id: i64,
    pub(crate) time: i64,
    pub(crate) kind: String,
    /// Rials: authorized (taps), reserved (passes), the event's amount (events).
    pub(crate) amount: i64,
    pub(crate) counter: Option<i64>,
    pub(crate) line_id: Option<i64>,
    pub(crate) validator_id: Option<i64>,
    pub(crate) status_word: Option<i64>,
    pub(crate) detail: String,
    /// The entry was learned back from the backend.
    pub(crate) recovered: bool,
    /// The newest verdict of the feed: (status, charged, reason).
    pub(crate) verdict: Option<(VerdictStatus, i64, Option<String>)>,
    /// The answer to the entry's upload.
    pub(crate) settled: Option<SettledRow>,
    /// A pass's encoded log entry (its expiry).
    pub(crate) entry: Option<Vec<u8>>,
}

/// The answer to an uploaded entry, as the history reads it.
pub(crate) struct SettledRow {
    pub(crate) status: TapStatus,
    pub(crate) fare: Option<i64>,
    pub(crate) reason: Option<String>,
    /// `crate::sync_store::RERATED` once a `fare_adjustment` changed the fare.
    pub(crate) detail: Option<String>,
}

/// Taps and passes from the tap log (with the backend's verdict and its answer to the
/// upload), refusals and top-ups from `events`, newest first.
const HISTORY_SQL: &str = "SELECT major, minor, id, time, kind, amount, counter, line_id,
        validator_id, status_word, detail, recovered, v_status, v_charged, v_reason, s_status,
        s_fare, s_reason, s_detail, entry
 FROM (
   SELECT * FROM (
     SELECT t.seq + 1 AS major, 0 AS minor, t.seq AS id, t.time,
            CASE t.kind WHEN 1 THEN 'tap' ELSE 'pass' END AS kind, t.amount,
            t.counter, t.line_id, t.validator_id,
            CASE t.kind WHEN 1 THEN 36864 ELSE NULL END AS status_word,
            '' AS detail, r.seq IS NOT NULL AS recovered,
            v.status AS v_status, v.charged AS v_charged, v.reason AS v_reason,
            s.status AS s_status, s.fare AS s_fare, s.reason AS s_reason, s.detail AS s_detail,
            CASE t.kind WHEN 2 THEN t.entry ELSE NULL END AS entry
     FROM tap_log t JOIN credentials c ON c.id = t.credential_id
          LEFT JOIN tap_verdicts v ON v.pseudonym = c.pseudonym AND v.counter = t.counter
          LEFT JOIN tap_settlements s ON s.seq = t.seq
          LEFT JOIN recovered_taps r ON r.seq = t.seq
     WHERE t.seq < ?1 ORDER BY t.seq DESC LIMIT ?5)
   UNION ALL
   SELECT * FROM (
     SELECT after_seq AS major, 1 AS minor, id, time, kind, amount, NULL AS counter,
            line_id, validator_id, status_word, detail, 0 AS recovered,
            NULL AS v_status, NULL AS v_charged, NULL AS v_reason, NULL AS s_status,
            NULL AS s_fare, NULL AS s_reason, NULL AS s_detail, NULL AS entry
     FROM events WHERE (after_seq, id) < (?2, ?3)
     ORDER BY after_seq DESC, id DESC LIMIT ?5)
 )
 WHERE (major, minor, id) < (?2, ?4, ?3)
 ORDER BY major DESC, minor DESC, id DESC LIMIT ?5";

/// A history row from a result row.
fn history_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRow> {
    let verdict = match row.get::<_, Option<StoredVerdictStatus>>("v_status")? {
        Some(s) => Some((s.0, row.get("v_charged")?, row.get("v_reason")?)),
        None => None,
    };
    let settled = match row.get::<_, Option<StoredTapStatus>>("s_status")? {
        Some(s) => Some(SettledRow {
            status: s.0,
            fare: row.get("s_fare")?,
            reason: row.get("s_reason")?,
            detail: row.get("s_detail")?,
        }),
        None => None,
    };
    Ok(HistoryRow {
        major: row.get("major")?,
        minor: row.get("minor")?,
        id: row.get("id")?,
        time: row.get("time")?,
        kind: row.get("kind")?,
        amount: row.get("amount")?,
        counter: row.get("counter")?,
        line_id: row.get("line_id")?,
        validator_id: row.get("validator_id")?,
        status_word: row.get("status_word")?,
        detail: row.get("detail")?,
        recovered: row.get("recovered")?,
        verdict,
        settled,
        entry: row.get("entry")?,
    })
}

impl Read<'_> {
    /// At most `b.limit` history rows below `b`, newest first.
    pub(crate) fn history_rows(&self, b: &HistoryBounds) -> Result<Vec<HistoryRow>, WalletError> {
        let mut st = self.conn.prepare_cached(HISTORY_SQL)?;
        let rows = st.query_map(
            params![b.log_below, b.major, b.event_id_below, b.minor, b.limit],
            history_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Write<'_> {
    /// Records an event (the tap path's refusals use one cached statement).
    pub(crate) fn insert_event(&self, e: &EventRow<'_>) -> Result<(), WalletError> {
        self.insert_event_row(e)?;
        if e.kind == "refusal" {
            // A rogue reader held near the phone can be refused thousands of times a minute:
            // the history keeps the newest refusals only, so it neither buries the rider's
            // rides nor grows the database without bound (rides and top-ups are never pruned).
            self.tx
                .prepare_cached(
                    "DELETE FROM events WHERE kind = 'refusal' AND id <= (
                         SELECT id FROM events WHERE kind = 'refusal'
                         ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                )?
                .execute(params![MAX_REFUSALS_KEPT])?;
        }
        Ok(())
    }

    fn insert_event_row(&self, e: &EventRow<'_>) -> Result<(), WalletError> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO events (after_seq, time, kind, amount, line_id, validator_id, status_word,
                                 detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        st.execute(params![
            e.after_seq,
            e.time,
            e.kind,
            e.amount,
            e.line_id,
            e.validator_id,
            e.status_word,
            e.detail
        ])?;
        Ok(())
    }
}
