//! What settlement v2 decides beyond a tap's charge: the verdict feed a wallet reads (every
//! change of a tap's status or charge), the challenges validators report as torn (sent, no
//! valid answer, the gate stayed closed), and abuse events (one pass at several validators).

use super::db::{col, col_as, named_params, ColType, ToValue, Value};
use super::taps::{tap_columns, tap_row, TapRow};
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, DeviceId, PseudonymBytes, TapRef};
use mancard_api::{TapVerdict, VerdictStatus};
use std::collections::HashMap;

/// What a tap's next verdict is decided from: the stored tap, what the ledger has charged
/// for it, and its newest verdict (status, charge, reason) if any.
pub type VerdictBasis = (TapRow, i64, Option<(String, i64, Option<String>)>);

/// A verdict to append to the feed.
#[derive(Debug, Clone)]
pub struct NewVerdict<'a> {
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
    pub status: VerdictStatus,
    pub charged: i64,
    pub reason: Option<&'a str>,
    pub time: i64,
    pub line_id: Option<u32>,
    pub created_at: i64,
}

/// An abuse event to record.
#[derive(Debug, Clone)]
pub struct NewAbuse<'a> {
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
    pub kind: &'a str,
    /// The validator whose report made it abuse.
    pub validator_id: u32,
    /// The validator that reported the tap first.
    pub first_validator_id: u32,
    pub fare_day: i64,
    pub time: i64,
    pub created_at: i64,
}

impl Reader<'_> {
    /// The device's verdicts after `cursor`, oldest first, at most `limit`.
    pub fn verdicts_since(
        &self,
        device_id: DeviceId,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<TapVerdict>, StoreError> {
        self.conn.query_vec(
            "SELECT id, pseudonym, counter, status, charged, reason, time, line_id, created_at
             FROM tap_verdicts WHERE device_id = :device AND id > :cursor ORDER BY id LIMIT :n",
            named_params! {":device": device_id, ":cursor": cursor, ":n": limit},
            |r| {
                let p: PseudonymBytes = r.get("pseudonym")?;
                let status: String = r.get("status")?;
                Ok(TapVerdict {
                    id: r.get("id")?,
                    pseudonym: p.to_hex(),
                    counter: r.get("counter")?,
                    status: VerdictStatus::parse(&status)
                        .ok_or(StoreError::Corrupt("verdict status"))?,
                    charged: r.get("charged")?,
                    reason: r.get("reason")?,
                    time: r.get("time")?,
                    line_id: r.get("line_id")?,
                    created_at: r.get("created_at")?,
                })
            },
        )
    }

    /// What each tap's next verdict is decided from, in one statement on PostgreSQL or a few
    /// ([`super::db::chunks`]) on SQLite ([`Self::by_tap`]): the stored tap, what the ledger has charged
    /// for it, and its newest verdict (status, charge, reason) if any. A tap not stored is
    /// missing from the map.
    pub fn verdict_bases(
        &self,
        taps: &[TapRef],
    ) -> Result<HashMap<TapRef, VerdictBasis>, StoreError> {
        self.by_tap(
            taps,
            ("t.pseudonym", "t.counter"),
            |cond| {
                format!(
                    concat!(
                        "SELECT t.pseudonym AS pseudonym, t.counter AS counter, ",
                        tap_columns!("t"),
                        ", CAST(COALESCE((SELECT -SUM(l.amount) FROM ledger l
                                  WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter), 0)
                        AS BIGINT) AS charged_now,
                   v.status AS v_status, v.charged AS v_charged, v.reason AS v_reason
                 FROM taps t
                 LEFT JOIN tap_verdicts v
                   ON v.pseudonym = t.pseudonym AND v.counter = t.counter
                  AND v.id = (SELECT MAX(w.id) FROM tap_verdicts w
                               WHERE w.pseudonym = t.pseudonym AND w.counter = t.counter)
                 WHERE {}"
                    ),
                    cond
                )
            },
            |r| {
                let last = match r.get::<Option<String>>("v_status")? {
                    Some(status) => Some((status, r.get("v_charged")?, r.get("v_reason")?)),
                    None => None,
                };
                Ok((tap_row(r)?, r.get("charged_now")?, last))
            },
        )
    }

    /// The newest verdict of a tap: its status, charge and reason.
    pub fn last_verdict(
        &self,
        p: &PseudonymBytes,
        counter: u32,
    ) -> Result<Option<(String, i64, Option<String>)>, StoreError> {
        self.conn.query_opt(
            "SELECT status, charged, reason FROM tap_verdicts
             WHERE pseudonym = :p AND counter = :counter ORDER BY id DESC LIMIT 1",
            named_params! {":p": p, ":counter": counter},
            |r| Ok((r.get("status")?, r.get("charged")?, r.get("reason")?)),
        )
    }

    /// Whether a validator reported `challenge_id` as torn.
    pub fn is_torn(&self, challenge_id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 AS one FROM torn_challenges WHERE challenge_id = :c",
                named_params! {":c": &challenge_id[..]},
                |_| Ok(()),
            )?
            .is_some())
    }

    /// How many different validators reported an abuse event of an account on one fare day
    /// (one validator key alone cannot deny-list a rider by replaying photographed passes).
    pub fn abuse_count(&self, account_id: AccountId, fare_day: i64) -> Result<i64, StoreError> {
        self.conn.query_one(
            "SELECT COUNT(DISTINCT validator_id) AS n FROM abuse_events
             WHERE account_id = :a AND fare_day = :d",
            named_params! {":a": account_id, ":d": fare_day},
            |r| r.get("n"),
        )
    }
}

impl Writer<'_> {
    /// Appends one verdict (the statement [`Self::insert_verdicts`] writes a last row with).
    pub fn insert_verdict(&self, v: &NewVerdict<'_>) -> Result<(), StoreError> {
        self.insert_verdicts(std::slice::from_ref(v))
    }

    /// Appends several verdicts in one statement (a few on SQLite,
    /// [`super::db::Conn::insert_rows`]), in order: their ids follow the slice (the test
    /// checks it on both databases).
    pub fn insert_verdicts(&self, vs: &[NewVerdict<'_>]) -> Result<(), StoreError> {
        use ColType::{Blob, Int, Text};
        self.bump_feeds(vs.iter().map(|v| v.account_id))?;
        // The nullable columns are bound never null (NULLIF of a value no row has): one
        // parameter type list per statement text, whatever mix of rows a batch brings.
        let cols = [
            col(Int),
            col(Int),
            col(Blob),
            col(Int),
            col(Text),
            col(Int),
            col_as(Text, "NULLIF(?, '')"),
            col(Int),
            col_as(Int, "NULLIF(?, -1)"),
            col(Int),
        ];
        let rows: Vec<[Value<'_>; 10]> = vs
            .iter()
            .map(|v| {
                [
                    v.account_id.to_value(),
                    v.device_id.to_value(),
                    v.pseudonym.to_value(),
                    v.counter.to_value(),
                    v.status.as_str().to_value(),
                    v.charged.to_value(),
                    v.reason.unwrap_or_default().to_value(),
                    v.time.to_value(),
                    Value::Int(v.line_id.map_or(-1, i64::from)),
                    v.created_at.to_value(),
                ]
            })
            .collect();
        self.tx.insert_rows(
            (
                "INSERT INTO tap_verdicts (account_id, device_id, pseudonym, counter, status,
                    charged, reason, time, line_id, created_at)",
                "",
            ),
            &cols,
            &rows,
        )?;
        Ok(())
    }

    /// Records a torn challenge; `false` if it was recorded before.
    pub fn insert_torn(
        &self,
        challenge_id: &[u8; 32],
        validator_id: u32,
        time: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "INSERT INTO torn_challenges (challenge_id, validator_id, time, received_at)
             VALUES (:c, :v, :t, :now) ON CONFLICT DO NOTHING",
            named_params! {
                ":c": &challenge_id[..], ":v": validator_id, ":t": time, ":now": now,
            },
        )?;
        Ok(n > 0)
    }

    /// Records an abuse event; `false` if this validator's report of the tap was recorded
    /// before.
    pub fn insert_abuse(&self, e: &NewAbuse<'_>) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "INSERT INTO abuse_events (account_id, device_id, pseudonym, counter,
                kind, validator_id, first_validator_id, fare_day, time, created_at)
             VALUES (:a, :d, :p, :counter, :kind, :v, :first, :day, :time, :at)
             ON CONFLICT DO NOTHING",
            named_params! {
                ":a": e.account_id,
                ":d": e.device_id,
                ":p": e.pseudonym,
                ":counter": e.counter,
                ":kind": e.kind,
                ":v": e.validator_id,
                ":first": e.first_validator_id,
                ":day": e.fare_day,
                ":time": e.time,
                ":at": e.created_at,
            },
        )?;
        Ok(n > 0)
    }
}
