//! What operators do to the books, and the record of it: manual adjustments under the
//! two-person rule (above a configured amount, or beyond what one operator may adjust alone in
//! a day, a second operator with the `adjust` scope must approve; nothing is credited before),
//! and the append-only, hash-chained operator log every admin request lands in.

use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::operators::Operator;
use crate::store::{row_hash, Decision, NewAdjustment, NewEntry, NewLogRow, Writer, GENESIS};
use mancard_api::{
    Adjustment, AdjustmentRequest, AdjustmentResponse, AdjustmentStatus, DecideAdjustmentRequest,
    DecideAdjustmentResponse, LedgerKind, OperatorLogQuery, OperatorLogResponse,
};

/// Longest note, bytes.
const MAX_NOTE_LEN: usize = 500;
/// Most rows one page of the operator log shows.
pub const MAX_LOG_PAGE: u32 = 500;

/// What an adjustment request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    /// In the ledger (now, or already by an earlier request with the same key).
    Applied(AdjustmentResponse),
    /// Waiting for a second operator (or decided already, for a repeated key).
    Pending(Adjustment),
}

/// The result of checking the operator log's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub rows: i64,
    /// The newest row's hash (the genesis hash for an empty log).
    pub head: [u8; 32],
    /// The first row that does not chain, and why.
    pub broken: Option<(i64, &'static str)>,
}

impl ChainCheck {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks an adjustment request's fields (the shape every path shares).
pub(crate) fn check_adjustment(req: &AdjustmentRequest) -> Result<()> {
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > 128 {
        return Err(Error::InvalidIdempotencyKey(
            "the idempotency key is 1 to 128 characters",
        ));
    }
    if req.amount == 0
        || req.amount.unsigned_abs() > 1_000_000_000_000
        || req.note.len() > MAX_NOTE_LEN
    {
        return Err(Error::InvalidAdjustment);
    }
    Ok(())
}

/// The ledger's idempotency key of a manual adjustment.
pub(crate) fn ledger_key(idempotency_key: &str) -> String {
    format!("adj:{idempotency_key}")
}

fn describe(a: &AdjustmentRequest) -> String {
    format!(
        "account {} amount {} key {:?} note {:?}",
        a.account_id, a.amount, a.idempotency_key, a.note
    )
}

impl Engine {
    /// Appends a row to the operator log in its own transaction (requests; refusals).
    pub fn record_operator_log(&self, row: &NewLogRow<'_>) -> Result<()> {
        self.store.write(|tx| -> Result<()> {
            tx.append_operator_log(row)?;
            Ok(())
        })
    }

    /// Appends an effect row in the transaction that has the effect.
    pub(crate) fn log_effect(
        &self,
        tx: &Writer<'_>,
        operator: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<()> {
        tx.append_operator_log(&NewLogRow {
            at: self.now(),
            operator: Some(operator),
            action,
            target,
            outcome: "ok",
            detail,
        })?;
        Ok(())
    }

    /// An operator asks for a manual adjustment: applied at once at or under the limits,
    /// otherwise recorded as pending for a second operator. Idempotent by key: the same
    /// request again answers what the first led to; another request with the key is a
    /// conflict.
    pub fn request_adjustment(
        &self,
        op: &Operator,
        req: &AdjustmentRequest,
    ) -> Result<AdjustOutcome> {
        check_adjustment(req)?;
        let limits = &self.config().operators;
        let now = self.now();
        let account_id = req.account_id.into();
        self.store.write(|tx| {
            tx.account(account_id)?.ok_or(Error::UnknownAccount)?;
            if let Some(prior) = self.repeated_adjustment(tx, req)? {
                return Ok(prior);
            }
            let magnitude = i64::try_from(req.amount.unsigned_abs()).unwrap_or(i64::MAX);
            let alone = tx.single_approval_total(op.name(), now.saturating_sub(86_400))?;
            let needs_second = magnitude > limits.second_approval_above
                || alone.saturating_add(magnitude) > limits.single_approval_daily_limit;
            let mut new = NewAdjustment {
                account_id,
                amount: req.amount,
                idempotency_key: &req.idempotency_key,
                note: &req.note,
                status: AdjustmentStatus::Pending,
                requested_by: op.name(),
                requested_at: now,
                ledger_entry_id: None,
            };
            if needs_second {
                let id = tx.insert_adjustment(&new)?;
                let target = format!("adjustment {id}");
                self.log_effect(
                    tx,
                    op.name(),
                    "adjustment.requested",
                    &target,
                    &describe(req),
                )?;
                let a = tx
                    .adjustment(id)?
                    .ok_or(StoreError::Corrupt("adjustment vanished"))?;
                return Ok(AdjustOutcome::Pending(a));
            }
            let entry = self.append_adjustment(tx, req, now)?;
            new.status = AdjustmentStatus::Applied;
            new.ledger_entry_id = Some(entry);
            let id = tx.insert_adjustment(&new)?;
            let target = format!("adjustment {id}");
            self.log_effect(tx, op.name(), "adjustment.applied", &target, &describe(req))?;
            Ok(AdjustOutcome::Applied(AdjustmentResponse {
                ledger_entry_id: entry,
                created: true,
                balance: tx.balance(account_id)?,
            }))
        })
    }

    /// What an earlier request with this key led to, if there was one (a different request
    /// with the same key is a conflict).
    fn repeated_adjustment(
        &self,
        tx: &Writer<'_>,
        req: &AdjustmentRequest,
    ) -> Result<Option<AdjustOutcome>> {
        let account_id = req.account_id.into();
        if let Some(prior) = tx.adjustment_by_key(&req.idempotency_key)? {
            if prior.account_id != req.account_id || prior.amount != req.amount {
                return Err(Error::IdempotencyConflict);
            }
            return Ok(Some(match (prior.status, prior.ledger_entry_id) {
                (AdjustmentStatus::Applied | AdjustmentStatus::Approved, Some(entry)) => {
                    AdjustOutcome::Applied(AdjustmentResponse {
                        ledger_entry_id: entry,
                        created: false,
                        balance: tx.balance(account_id)?,
                    })
                }
                _ => AdjustOutcome::Pending(prior),
            }));
        }
        // an adjustment made by a local tool (`Engine::adjust`) with the same key
        if let Some(e) = tx.ledger_by_key(&ledger_key(&req.idempotency_key))? {
            if e.amount != req.amount {
                return Err(Error::IdempotencyConflict);
            }
            return Ok(Some(AdjustOutcome::Applied(AdjustmentResponse {
                ledger_entry_id: e.id,
                created: false,
                balance: tx.balance(account_id)?,
            })));
        }
        Ok(None)
    }

    /// Appends the adjustment's ledger entry; its key must be new.
    pub(crate) fn append_adjustment(
        &self,
        tx: &Writer<'_>,
        req: &AdjustmentRequest,
        now: i64,
    ) -> Result<i64> {
        let key = ledger_key(&req.idempotency_key);
        tx.insert_ledger(&NewEntry {
            account_id: req.account_id.into(),
            kind: LedgerKind::Adjustment,
            amount: req.amount,
            idempotency_key: &key,
            tap: None,
            intent_id: None,
            note: Some(&req.note),
            created_at: now,
        })?
        .ok_or(Error::IdempotencyConflict)
    }

    /// A second operator approves a pending adjustment: it is appended to the ledger. The
    /// requester cannot approve their own; approving again changes nothing.
    pub fn approve_adjustment(
        &self,
        op: &Operator,
        id: i64,
        req: &DecideAdjustmentRequest,
    ) -> Result<DecideAdjustmentResponse> {
        if req.note.len() > MAX_NOTE_LEN {
            return Err(Error::InvalidDecision("the note is at most 500 bytes"));
        }
        let now = self.now();
        self.store.write(|tx| {
            let a = tx.adjustment(id)?.ok_or(Error::UnknownAdjustment(id))?;
            if a.requested_by == op.name() {
                return Err(Error::SelfApproval);
            }
            let changed = match a.status {
                AdjustmentStatus::Approved => false,
                AdjustmentStatus::Pending => true,
                s @ (AdjustmentStatus::Applied | AdjustmentStatus::Rejected) => {
                    return Err(Error::AdjustmentDecided {
                        id,
                        status: s.as_str(),
                    })
                }
            };
            if changed {
                let as_req = AdjustmentRequest {
                    account_id: a.account_id,
                    amount: a.amount,
                    idempotency_key: a.idempotency_key.clone(),
                    note: a.note.clone(),
                };
                let entry = self.append_adjustment(tx, &as_req, now)?;
                tx.decide_adjustment(&Decision {
                    id,
                    status: AdjustmentStatus::Approved,
                    by: op.name(),
                    at: now,
                    note: &req.note,
                    ledger_entry_id: Some(entry),
                })?;
                let detail = format!("{}; requested by {}", describe(&as_req), a.requested_by);
                let target = format!("adjustment {id}");
                self.log_effect(tx, op.name(), "adjustment.approved", &target, &detail)?;
            }
            self.decided(tx, id, changed)
        })
    }

    /// Rejects a pending adjustment (its requester may withdraw it): it never reaches the
    /// ledger. Rejecting again changes nothing.
    pub fn reject_adjustment(
        &self,
        op: &Operator,
        id: i64,
        req: &DecideAdjustmentRequest,
    ) -> Result<DecideAdjustmentResponse> {
        let note = req.note.trim();
        if note.is_empty() || note.len() > MAX_NOTE_LEN {
            return Err(Error::InvalidDecision(
                "a rejection needs a note of 1 to 500 bytes",
            ));
        }
        let now = self.now();
        self.store.write(|tx| {
            let a = tx.adjustment(id)?.ok_or(Error::UnknownAdjustment(id))?;
            let changed = match a.status {
                AdjustmentStatus::Rejected => false,
                AdjustmentStatus::Pending => true,
                s @ (AdjustmentStatus::Applied | AdjustmentStatus::Approved) => {
                    return Err(Error::AdjustmentDecided {
                        id,
                        status: s.as_str(),
                    })
                }
            };
            if changed {
                tx.decide_adjustment(&Decision {
                    id,
                    status: AdjustmentStatus::Rejected,
                    by: op.name(),
                    at: now,
                    note,
                    ledger_entry_id: None,
                })?;
                let detail = format!("requested by {}; note {note:?}", a.requested_by);
                let target = format!("adjustment {id}");
                self.log_effect(tx, op.name(), "adjustment.rejected", &target, &detail)?;
            }
            self.decided(tx, id, changed)
        })
    }

    fn decided(&self, tx: &Writer<'_>, id: i64, changed: bool) -> Result<DecideAdjustmentResponse> {
        let adjustment = tx
            .adjustment(id)?
            .ok_or(StoreError::Corrupt("adjustment vanished"))?;
        let balance = tx.balance(adjustment.account_id.into())?;
        Ok(DecideAdjustmentResponse {
            adjustment,
            changed,
            balance,
        })
    }

    /// Adjustments waiting for a second operator, oldest first.
    pub fn pending_adjustments(&self) -> Result<Vec<Adjustment>> {
        Ok(self.store.read(|tx| tx.pending_adjustments())?)
    }

    /// One adjustment.
    pub fn adjustment(&self, id: i64) -> Result<Adjustment> {
        self.store
            .read(|tx| tx.adjustment(id))?
            .ok_or(Error::UnknownAdjustment(id))
    }

    /// A page of the operator log, and the whole chain's check.
    pub fn operator_log(&self, q: &OperatorLogQuery) -> Result<OperatorLogResponse> {
        let limit = q.limit.unwrap_or(MAX_LOG_PAGE);
        if !(1..=MAX_LOG_PAGE).contains(&limit) {
            return Err(Error::InvalidQueryValue("limit is 1 to 500 rows"));
        }
        let check = self.verify_operator_log()?;
        let rows = self
            .store
            .read(|tx| tx.operator_log(q.after.max(0), i64::from(limit)))?;
        Ok(OperatorLogResponse {
            rows: rows.iter().map(|r| r.to_api()).collect(),
            total: check.rows,
            head: hex::encode(check.head),
            chain_ok: check.ok(),
        })
    }

    /// Every row of the operator log, oldest first (the CLI prints them).
    pub fn operator_log_rows(&self) -> Result<Vec<crate::store::StoredLogRow>> {
        Ok(self.store.read(|tx| tx.operator_log(0, i64::MAX))?)
    }

    /// Recomputes the operator log's chain: each row's hash over its predecessor's hash and
    /// its own fields, ids without gaps from 1. An edited, inserted or deleted row (but the
    /// newest: anchor the head elsewhere to detect a truncated log) breaks it.
    pub fn verify_operator_log(&self) -> Result<ChainCheck> {
        Ok(verify_chain(&self.operator_log_rows()?))
    }
}

/// Checks a whole log, oldest row first.
pub fn verify_chain(rows: &[crate::store::StoredLogRow]) -> ChainCheck {
    let mut prev = GENESIS.to_vec();
    let mut broken = None;
    let mut expected_id = 1i64;
    for r in rows {
        let fields = NewLogRow {
            at: r.at,
            operator: r.operator.as_deref(),
            action: &r.action,
            target: &r.target,
            outcome: &r.outcome,
            detail: &r.detail,
        };
        let why = if r.id != expected_id {
            Some("a row is missing before this one")
        } else if r.prev_hash != prev {
            Some("its previous hash is not the previous row's hash")
        } else if r.hash.as_slice() != row_hash(&prev, r.id, &fields).as_slice() {
            Some("its hash does not match its contents")
        } else {
            None
        };
        if let (Some(why), None) = (why, &broken) {
            broken = Some((r.id, why));
        }
        prev.clone_from(&r.hash);
        expected_id = r.id.saturating_add(1);
    }
    let head = prev.as_slice().try_into().unwrap_or(GENESIS);
    ChainCheck {
        rows: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        head,
        broken,
    }
}
