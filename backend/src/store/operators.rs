//! The operators' tables: the hash-chained, append-only operator log and the manual
//! adjustments with their two-person state.

use super::db::{named_params, Row};
use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;
use mancard_api::{Adjustment, AdjustmentStatus, OperatorLogRow};

/// The hash a log row chains from when it is the first.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// A row to append to the operator log.
#[derive(Debug, Clone)]
pub struct NewLogRow<'a> {
    pub at: i64,
    pub operator: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
}

/// A stored log row with its chain fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogRow {
    pub id: i64,
    pub at: i64,
    pub operator: Option<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredLogRow {
    /// The row as the API shows it.
    pub fn to_api(&self) -> OperatorLogRow {
        OperatorLogRow {
            id: self.id,
            at: self.at,
            operator: self.operator.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            hash: hex::encode(&self.hash),
        }
    }
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// The row's hash: SHA-256 over a domain tag, the previous hash, the id, the time and each
/// text field length-prefixed (the operator with a presence byte), so no two rows encode
/// alike.
pub fn row_hash(prev: &[u8], id: i64, r: &NewLogRow<'_>) -> [u8; 32] {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(b"MANCARD-OPLOG-v1\0");
    put(&mut b, prev);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&r.at.to_be_bytes());
    match r.operator {
        Some(o) => {
            b.push(1);
            put(&mut b, o.as_bytes());
        }
        None => b.push(0),
    }
    for f in [r.action, r.target, r.outcome, r.detail] {
        put(&mut b, f.as_bytes());
    }
    mancard_protocol::sha256(&[&b])
}

fn log_row(r: &Row<'_>) -> Result<StoredLogRow, StoreError> {
    Ok(StoredLogRow {
        id: r.get("id")?,
        at: r.get("at")?,
        operator: r.get("operator")?,
        action: r.get("action")?,
        target: r.get("target")?,
        outcome: r.get("outcome")?,
        detail: r.get("detail")?,
        prev_hash: r.get("prev_hash")?,
        hash: r.get("hash")?,
    })
}

const LOG_COLS: &str = "id, at, operator, action, target, outcome, detail, prev_hash, hash";

const ADJ_COLS: &str = "id, account_id, amount, idempotency_key, note, status, requested_by,
    requested_at, decided_by, decided_at, decision_note, ledger_entry_id";

fn adjustment_row(r: &Row<'_>) -> Result<Adjustment, StoreError> {
    Ok(Adjustment {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        amount: r.get("amount")?,
        idempotency_key: r.get("idempotency_key")?,
        note: r.get("note")?,
        status: parsed(r, "status", AdjustmentStatus::parse)?,
        requested_by: r.get("requested_by")?,
        requested_at: r.get("requested_at")?,
        decided_by: r.get("decided_by")?,
        decided_at: r.get("decided_at")?,
        decision_note: r.get("decision_note")?,
        ledger_entry_id: r.get("ledger_entry_id")?,
    })
}

/// A manual adjustment to record.
#[derive(Debug, Clone)]
pub struct NewAdjustment<'a> {
    pub account_id: AccountId,
    pub amount: i64,
    pub idempotency_key: &'a str,
    pub note: &'a str,
    pub status: AdjustmentStatus,
    pub requested_by: &'a str,
    pub requested_at: i64,
    pub ledger_entry_id: Option<i64>,
}

/// A decision on a pending adjustment.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub id: i64,
    pub status: AdjustmentStatus,
    pub by: &'a str,
    pub at: i64,
    pub note: &'a str,
    pub ledger_entry_id: Option<i64>,
}

impl Reader<'_> {
    /// Log rows after `after`, oldest first, at most `limit`.
    pub fn operator_log(&self, after: i64, limit: i64) -> Result<Vec<StoredLogRow>, StoreError> {
        self.conn.query_vec(
            &format!(
                "SELECT {LOG_COLS} FROM operator_log WHERE id > :after ORDER BY id LIMIT :limit"
            ),
            named_params! {":after": after, ":limit": limit},
            log_row,
        )
    }

    /// The newest log row.
    pub fn operator_log_head(&self) -> Result<Option<StoredLogRow>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {LOG_COLS} FROM operator_log ORDER BY id DESC LIMIT 1"),
            named_params! {},
            log_row,
        )
    }

    /// Rows in the log.
    pub fn operator_log_len(&self) -> Result<i64, StoreError> {
        self.conn.query_one(
            "SELECT COUNT(*) AS n FROM operator_log",
            named_params! {},
            |r| r.get("n"),
        )
    }

    pub fn adjustment(&self, id: i64) -> Result<Option<Adjustment>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {ADJ_COLS} FROM adjustments WHERE id = :id"),
            named_params! {":id": id},
            adjustment_row,
        )
    }

    pub fn adjustment_by_key(&self, key: &str) -> Result<Option<Adjustment>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {ADJ_COLS} FROM adjustments WHERE idempotency_key = :key"),
            named_params! {":key": key},
            adjustment_row,
        )
    }

    /// Adjustments waiting for a second operator, oldest first.
    pub fn pending_adjustments(&self) -> Result<Vec<Adjustment>, StoreError> {
        self.conn.query_vec(
            &format!("SELECT {ADJ_COLS} FROM adjustments WHERE status = 'pending' ORDER BY id"),
            named_params! {},
            adjustment_row,
        )
    }

    /// Absolute rials `operator` adjusted alone (no second approval) since `since`.
    pub fn single_approval_total(&self, operator: &str, since: i64) -> Result<i64, StoreError> {
        self.conn.query_one(
            "SELECT CAST(COALESCE(SUM(ABS(amount)), 0) AS BIGINT) AS n FROM adjustments
             WHERE requested_by = :op AND requested_at >= :since AND status = 'applied'",
            named_params! {":op": operator, ":since": since},
            |r| r.get("n"),
        )
    }
}

impl Writer<'_> {
    /// Appends a row to the operator log, chained to the newest; returns its id.
    pub fn append_operator_log(&self, r: &NewLogRow<'_>) -> Result<i64, StoreError> {
        let head = self.operator_log_head()?;
        let (id, prev) = match head {
            Some(h) => (h.id.saturating_add(1), h.hash),
            None => (1, GENESIS.to_vec()),
        };
        let hash = row_hash(&prev, id, r);
        self.tx.execute(
            "INSERT INTO operator_log (id, at, operator, action, target, outcome, detail,
                                       prev_hash, hash)
             VALUES (:id, :at, :op, :action, :target, :outcome, :detail, :prev, :hash)",
            named_params! {
                ":id": id,
                ":at": r.at,
                ":op": r.operator,
                ":action": r.action,
                ":target": r.target,
                ":outcome": r.outcome,
                ":detail": r.detail,
                ":prev": prev,
                ":hash": hash,
            },
        )?;
        Ok(id)
    }

    /// Records an adjustment; returns its id.
    pub fn insert_adjustment(&self, a: &NewAdjustment<'_>) -> Result<i64, StoreError> {
        self.tx.query_one(
            "INSERT INTO adjustments (account_id, amount, idempotency_key, note, status,
                 requested_by, requested_at, ledger_entry_id)
             VALUES (:account, :amount, :key, :note, :status, :by, :at, :entry) RETURNING id",
            named_params! {
                ":account": a.account_id,
                ":amount": a.amount,
                ":key": a.idempotency_key,
                ":note": a.note,
                ":status": a.status.as_str(),
                ":by": a.requested_by,
                ":at": a.requested_at,
                ":entry": a.ledger_entry_id,
            },
            |r| r.get("id"),
        )
    }

    /// Decides a pending adjustment (the schema refuses any other change).
    pub fn decide_adjustment(&self, d: &Decision<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE adjustments SET status = :status, decided_by = :by, decided_at = :at,
                 decision_note = :note, ledger_entry_id = :entry
             WHERE id = :id AND status = 'pending'",
            named_params! {
                ":id": d.id,
                ":status": d.status.as_str(),
                ":by": d.by,
                ":at": d.at,
                ":note": d.note,
                ":entry": d.ledger_entry_id,
            },
        )?;
        Ok(())
    }
}
