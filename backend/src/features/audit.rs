//! The operators' view of the books: ledger invariant checks, fraud cases, balances, and
//! manual adjustments (idempotent by key).

use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::ids::AccountId;
use crate::store::NewEntry;
use mancard_api::{
    AdjustmentRequest, AdjustmentResponse, AuditReport, FraudCase, LedgerEntry, LedgerKind,
};
use std::collections::BTreeMap;

impl Engine {
    /// Every fraud case, oldest first.
    pub fn fraud_cases(&self) -> Result<Vec<FraudCase>> {
        Ok(self.store.read(|tx| tx.fraud_cases())?)
    }

    /// The ledger invariant checks.
    pub fn audit(&self) -> Result<AuditReport> {
        Ok(self.store.read(|tx| tx.audit())?)
    }

    /// Per-account balances (admin and tests).
    pub fn balances(&self) -> Result<BTreeMap<i64, i64>> {
        self.store.read(|tx| -> Result<_> {
            let mut out = BTreeMap::new();
            for id in tx.account_ids()? {
                out.insert(id.0, tx.balance(id)?);
            }
            Ok(out)
        })
    }

    /// An account's whole ledger, oldest first (the operators' statement; the wallet reads
    /// its ledger in pages through sync).
    pub fn ledger(&self, account_id: impl Into<AccountId>) -> Result<Vec<LedgerEntry>> {
        let account_id = account_id.into();
        Ok(self
            .store
            .read(|tx| tx.ledger_since(account_id, 0, i64::MAX))?)
    }

    /// Admin: a manual ledger adjustment.
    pub fn adjust(&self, req: &AdjustmentRequest) -> Result<AdjustmentResponse> {
        if req.idempotency_key.is_empty() || req.idempotency_key.len() > 128 {
            return Err(Error::InvalidIdempotencyKey(
                "the idempotency key is 1 to 128 characters",
            ));
        }
        if req.amount == 0 || req.amount.unsigned_abs() > 1_000_000_000_000 || req.note.len() > 500
        {
            return Err(Error::InvalidAdjustment);
        }
        let now = self.now();
        let key = format!("adj:{}", req.idempotency_key);
        let account_id = req.account_id.into();
        self.store.write(|tx| {
            tx.account(account_id)?.ok_or(Error::UnknownAccount)?;
            let created = tx
                .insert_ledger(&NewEntry {
                    account_id,
                    kind: LedgerKind::Adjustment,
                    amount: req.amount,
                    idempotency_key: &key,
                    tap: None,
                    intent_id: None,
                    note: Some(&req.note),
                    created_at: now,
                })?
                .is_some();
            let e = tx
                .ledger_by_key(&key)?
                .ok_or(StoreError::Corrupt("adjustment vanished"))?;
            Ok(AdjustmentResponse {
                ledger_entry_id: e.id,
                created,
                balance: tx.balance(account_id)?,
            })
        })
    }
}
