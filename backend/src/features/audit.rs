//! The operators' view of the books: ledger invariant checks, fraud cases, balances, and
//! manual adjustments (idempotent by key).

use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::features::operators::{check_adjustment, ledger_key};
use crate::ids::AccountId;
use mancard_api::{AdjustmentRequest, AdjustmentResponse, AuditReport, FraudCase, LedgerEntry};
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

    /// A manual ledger adjustment by a local tool holding the database (the demo, tests):
    /// applied at once, with no second approval (whoever holds the file holds the books),
    /// and recorded in the operator log as by `local`. Operators over HTTP go through
    /// [`Engine::request_adjustment`]. Idempotent by key.
    pub fn adjust(&self, req: &AdjustmentRequest) -> Result<AdjustmentResponse> {
        check_adjustment(req)?;
        let now = self.now();
        let account_id = req.account_id.into();
        self.store.write(|tx| {
            tx.account(account_id)?.ok_or(Error::UnknownAccount)?;
            let key = ledger_key(&req.idempotency_key);
            let created = match tx.ledger_by_key(&key)? {
                Some(_) => false,
                None => {
                    let id = self.append_adjustment(tx, req, now)?;
                    let detail = format!(
                        "account {} amount {} key {:?} note {:?}",
                        req.account_id, req.amount, req.idempotency_key, req.note
                    );
                    let target = format!("ledger entry {id}");
                    self.log_effect(tx, "local", "adjustment.applied", &target, &detail)?;
                    true
                }
            };
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
