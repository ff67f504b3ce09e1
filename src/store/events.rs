//! `events`: refusals and top-ups, placed in the history by the tap-log position they
//! followed; and the history query, which merges them with the tap log.

use super::sync::{StoredTapStatus, StoredVerdictStatus};
use super::{Read, Write};
use crate::error::WalletError;
use mancard_api::{TapStatus, VerdictStatus};
use rusqlite::params;

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
    /// Records a top-up. A refusal is refused here: it goes through
    /// [`Self::insert_refusal`], with the wallet's limit, so that no path keeps another count.
    pub(crate) fn insert_event(&self, e: &EventRow<'_>) -> Result<(), WalletError> {
        if e.kind == "refusal" {
            return Err(WalletError::internal(
                "a refusal is recorded with the refusal log's limit (insert_refusal)",
            ));
        }
        self.insert_event_row(e)
    }

    /// Records a refusal and drops the oldest refusals beyond the newest `keep` (this one
    /// included; `keep` 0 keeps none). A rogue reader held near the phone can be refused
    /// thousands of times a minute: the history keeps the newest refusals only, so it neither
    /// buries the rider's rides nor grows the database without bound (rides and top-ups are
    /// never dropped). Both statements walk `events_refusals` (the refusals' own index):
    /// `keep` + 1 index entries to find the newest refusal to drop, then the dropped ones.
    pub(crate) fn insert_refusal(&self, e: &EventRow<'_>, keep: u32) -> Result<(), WalletError> {
        self.insert_event_row(&EventRow {
            kind: "refusal",
            ..*e
        })?;
        self.tx
            .prepare_cached(
                "DELETE FROM events INDEXED BY events_refusals
                 WHERE kind = 'refusal' AND id <= (
                     SELECT id FROM events INDEXED BY events_refusals
                     WHERE kind = 'refusal' ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            )?
            .execute(params![i64::from(keep)])?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Writer;

    fn event<'a>(kind: &'static str, after_seq: i64, detail: &'a str) -> EventRow<'a> {
        EventRow {
            after_seq,
            time: 1_700_000_000,
            kind,
            amount: 0,
            line_id: None,
            validator_id: None,
            status_word: Some(0x6986),
            detail,
        }
    }

    fn details(w: &Writer, kind: &str) -> Vec<String> {
        let r = w.read();
        let mut st = r
            .conn
            .prepare("SELECT detail FROM events WHERE kind = ?1 ORDER BY id")
            .unwrap();
        let rows = st.query_map([kind], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// 1,500 refusals kept to 1,000 leave the newest 1,000 and every top-up among them; a
    /// smaller `keep` trims at the next refusal, and both statements use the refusals' index.
    #[test]
    fn insert_refusal_keeps_the_newest_refusals_and_every_top_up() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(&d.path().join("w.sqlite3")).unwrap();
        for i in 0..1_500i64 {
            if i % 100 == 0 {
                let t = format!("top-up {i}");
                w.write(|tx| tx.insert_event(&event("top_up", i, &t)))
                    .unwrap();
            }
            let r = format!("refusal {i}");
            w.write(|tx| tx.insert_refusal(&event("refusal", i, &r), 1_000))
                .unwrap();
        }
        let refusals = details(&w, "refusal");
        let newest: Vec<String> = (500..1_500).map(|i| format!("refusal {i}")).collect();
        assert_eq!(refusals, newest);
        assert_eq!(details(&w, "top_up").len(), 15);

        w.write(|tx| tx.insert_refusal(&event("refusal", 1_500, "last"), 3))
            .unwrap();
        assert_eq!(
            details(&w, "refusal"),
            ["refusal 1498", "refusal 1499", "last"]
        );
        w.write(|tx| tx.insert_refusal(&event("refusal", 1_501, "none"), 0))
            .unwrap();
        assert!(details(&w, "refusal").is_empty());
        // no other path records a refusal (it would keep another count)
        assert!(w
            .write(|tx| tx.insert_event(&event("refusal", 1_502, "elsewhere")))
            .is_err());
        assert!(details(&w, "refusal").is_empty());
        assert_eq!(details(&w, "top_up").len(), 15);
    }
}
