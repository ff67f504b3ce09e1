//! What the backend told the wallet at sync: `tap_settlements` (its answer per uploaded
//! tap-log entry), `tap_verdicts` (the newest verdict of the verdict feed per tap, whoever
//! reported it) and `server_ledger` (its ledger entries: top-ups, fares, adjustments).

use super::{Read, Write};
use crate::error::WalletError;
use crate::TapSettlement;
use mancard_api::{LedgerKind, TapStatus, VerdictStatus};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension, ToSql};

/// A stored verdict.
pub(crate) struct SettlementRow {
    pub(crate) status: TapStatus,
    pub(crate) fare: Option<i64>,
    pub(crate) reason: Option<String>,
}

/// A backend ledger entry as stored.
pub(crate) struct LedgerRow<'a> {
    pub(crate) id: i64,
    pub(crate) kind: LedgerKind,
    pub(crate) amount: i64,
    pub(crate) idempotency_key: &'a str,
    pub(crate) counter: Option<u32>,
    pub(crate) intent_id: Option<&'a str>,
    pub(crate) note: Option<&'a str>,
    pub(crate) created_at: i64,
}

/// A verdict of the feed as stored: the newest per (pseudonym, counter).
pub(crate) struct VerdictRow<'a> {
    pub(crate) pseudonym: &'a [u8; 16],
    pub(crate) counter: u32,
    /// The feed's id (the verdict cursor): a higher id is a newer verdict.
    pub(crate) id: i64,
    pub(crate) status: VerdictStatus,
    pub(crate) charged: i64,
    pub(crate) reason: Option<&'a str>,
    pub(crate) time: i64,
    pub(crate) line_id: Option<u32>,
    pub(crate) created_at: i64,
}

/// A feed verdict's status as stored: its wire text.
pub(super) struct StoredVerdictStatus(pub(super) VerdictStatus);

impl FromSql for StoredVerdictStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        VerdictStatus::parse(text)
            .map(Self)
            .ok_or_else(|| FromSqlError::Other(format!("unknown verdict status {text:?}").into()))
    }
}

impl ToSql for StoredVerdictStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

/// A verdict's status as stored: its wire text.
pub(super) struct StoredTapStatus(pub(super) TapStatus);

impl FromSql for StoredTapStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        use serde::de::IntoDeserializer;
        use serde::Deserialize;
        let text = value.as_str()?;
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            text.into_deserializer();
        TapStatus::deserialize(de)
            .map(Self)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for StoredTapStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

/// A ledger entry's kind as stored: its wire text.
struct StoredLedgerKind(LedgerKind);

impl ToSql for StoredLedgerKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl Read<'_> {
    /// The stored verdict on entry `seq`.
    pub(crate) fn settlement(&self, seq: i64) -> Result<Option<SettlementRow>, WalletError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT status, fare, reason FROM tap_settlements WHERE seq = ?1")?;
        Ok(st
            .query_row(params![seq], |r| {
                Ok(SettlementRow {
                    status: r.get::<_, StoredTapStatus>("status")?.0,
                    fare: r.get("fare")?,
                    reason: r.get("reason")?,
                })
            })
            .optional()?)
    }

    /// Every stored verdict, in log order.
    pub(crate) fn settlements(&self) -> Result<Vec<TapSettlement>, WalletError> {
        let mut st = self
            .conn
            .prepare("SELECT seq, status, fare, reason FROM tap_settlements ORDER BY seq")?;
        let rows = st.query_map([], |row| {
            Ok(TapSettlement {
                log_seq: u64::try_from(row.get::<_, i64>("seq")?).unwrap_or(0),
                status: row
                    .get::<_, StoredTapStatus>("status")?
                    .0
                    .as_str()
                    .to_string(),
                fare: row.get("fare")?,
                reason: row.get("reason")?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Write<'_> {
    /// Stores (replacing) the verdict on entry `seq`.
    pub(crate) fn put_settlement(
        &self,
        seq: i64,
        s: &SettlementRow,
        detail: Option<&str>,
        now: i64,
    ) -> Result<(), WalletError> {
        let mut upsert = self.tx.prepare_cached(
            "INSERT INTO tap_settlements (seq, status, fare, reason, detail, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(seq) DO UPDATE SET status = excluded.status, fare = excluded.fare,
                 reason = excluded.reason, detail = excluded.detail,
                 updated_at = excluded.updated_at",
        )?;
        upsert.execute(params![
            seq,
            StoredTapStatus(s.status),
            s.fare,
            s.reason,
            detail,
            now
        ])?;
        Ok(())
    }

    /// Marks the charged verdict on `seq` with `detail` if it has none (no fare change).
    pub(crate) fn mark_settlement(&self, seq: i64, detail: &str) -> Result<(), WalletError> {
        self.tx.execute(
            "UPDATE tap_settlements SET detail = ?2
             WHERE seq = ?1 AND status IN (?3, ?4) AND detail IS NULL",
            params![
                seq,
                detail,
                StoredTapStatus(TapStatus::Settled),
                StoredTapStatus(TapStatus::Duplicate)
            ],
        )?;
        Ok(())
    }

    /// Lowers the charged fare of `seq` by `credit`, marking it with `detail`. Returns
    /// whether a charged verdict was there to change.
    pub(crate) fn rerate_settlement(
        &self,
        seq: i64,
        credit: i64,
        detail: &str,
        now: i64,
    ) -> Result<bool, WalletError> {
        let n = self.tx.execute(
            "UPDATE tap_settlements SET fare = fare - ?2, detail = ?3, updated_at = ?4
             WHERE seq = ?1 AND status IN (?5, ?6) AND fare IS NOT NULL",
            params![
                seq,
                credit,
                detail,
                now,
                StoredTapStatus(TapStatus::Settled),
                StoredTapStatus(TapStatus::Duplicate)
            ],
        )?;
        Ok(n > 0)
    }

    /// Stores `v` as the tap's verdict unless the stored one is as new or newer (an id at
    /// least as high): re-delivered or out-of-order verdicts change nothing. Returns whether
    /// it was stored.
    pub(crate) fn put_verdict(
        &self,
        v: &VerdictRow<'_>,
        received_at: i64,
    ) -> Result<bool, WalletError> {
        let mut upsert = self.tx.prepare_cached(
            "INSERT INTO tap_verdicts (pseudonym, counter, id, status, charged, reason, time,
                                       line_id, created_at, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(pseudonym, counter) DO UPDATE SET id = excluded.id,
                 status = excluded.status, charged = excluded.charged, reason = excluded.reason,
                 time = excluded.time, line_id = excluded.line_id,
                 created_at = excluded.created_at, received_at = excluded.received_at
             WHERE excluded.id > tap_verdicts.id",
        )?;
        let n = upsert.execute(params![
            v.pseudonym.to_vec(),
            v.counter,
            v.id,
            StoredVerdictStatus(v.status),
            v.charged,
            v.reason,
            v.time,
            v.line_id,
            v.created_at,
            received_at
        ])?;
        Ok(n > 0)
    }

    /// Stores a backend ledger entry unless its id is known; returns whether it was new.
    pub(crate) fn insert_server_ledger(&self, e: &LedgerRow<'_>) -> Result<bool, WalletError> {
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO server_ledger (id, kind, amount, idempotency_key, counter,
                                                  intent_id, note, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.id,
                StoredLedgerKind(e.kind),
                e.amount,
                e.idempotency_key,
                e.counter,
                e.intent_id,
                e.note,
                e.created_at
            ],
        )?;
        Ok(n > 0)
    }
}
