//! Driving a top-up's payment at the gateway to its end: server-to-server VERIFY, the checks
//! of the gateway's record against the order (merchant, order, amount, reference number not
//! seen before), SETTLE and the one credit, or REVERSE on any mismatch or refused settlement.
//!
//! No database transaction is held across a gateway call. Every gateway call is idempotent,
//! so a call whose answer is lost (timeout) is simply made again later (the next poll, the
//! callback, or reconciliation); the ledger's idempotency key credits a payment once.

use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::providers::payment::{GatewayError, GatewayState, Verification, Verify};
use crate::store::{GatewayPayment, GatewayStatus, Intent, NewEntry, VerifiedRecord};
use mancard_api::LedgerKind;

use GatewayStatus as S;

impl Engine {
    /// Asks the gateway where an open payment stands and acts on the answer. An unanswered
    /// call leaves the payment open (retried later): never an error for the caller.
    pub(crate) fn drive_payment(&self, intent: &Intent) -> Result<()> {
        let token = intent.gateway_token.as_str();
        let rec = self
            .store
            .read(|tx| tx.gateway_payment(token))?
            .ok_or(StoreError::Corrupt("intent without gateway payment"))?;
        match rec.status {
            S::Reversing => self.reverse_payment(intent, None),
            S::Pending | S::Verified => self.verify_payment(intent, &rec),
            _ => Ok(()),
        }
    }

    fn verify_payment(&self, intent: &Intent, rec: &GatewayPayment) -> Result<()> {
        let token = intent.gateway_token.as_str();
        let verified = match self.providers().gateway.verify(token) {
            Ok(v) => v,
            Err(GatewayError::Unavailable(e)) => {
                tracing::warn!(intent = %intent.id, error = %e, "verify unanswered; will retry");
                return Ok(());
            }
            // the gateway knows no paid transaction for this token
            Err(GatewayError::Refused { code, message }) => {
                tracing::info!(intent = %intent.id, code, %message, "verify refused");
                Verify::NotPaid(GatewayState::Pending)
            }
        };
        match verified {
            Verify::NotPaid(state) => self.payment_not_paid(intent, rec, state),
            Verify::Paid(v) => self.payment_paid(intent, &v),
        }
    }

    fn payment_not_paid(
        &self,
        intent: &Intent,
        rec: &GatewayPayment,
        state: GatewayState,
    ) -> Result<()> {
        let now = self.now();
        let to = match state {
            GatewayState::Cancelled => S::Cancelled,
            GatewayState::Reversed => S::Reversed,
            GatewayState::Expired => S::Expired,
            _ if rec.status == S::Pending && now > intent.expires_at => S::Expired,
            _ => return Ok(()),
        };
        let reason = (to == S::Reversed).then_some("reversed by the gateway");
        self.store.write(|tx| {
            tx.set_payment_status(
                &intent.gateway_token,
                &[S::Pending, S::Verified],
                to,
                reason,
                now,
            )
        })?;
        tracing::info!(intent = %intent.id, status = to.as_str(), "top-up not paid");
        Ok(())
    }

    /// Why the gateway's record does not fit the order, if it does not.
    fn mismatch(&self, intent: &Intent, v: &Verification) -> Result<Option<&'static str>> {
        if v.terminal_id != self.providers().gateway.terminal_id() {
            return Ok(Some("the gateway reports another merchant"));
        }
        if v.order_id != intent.id {
            return Ok(Some("the gateway reports another order"));
        }
        if v.amount != intent.amount {
            return Ok(Some("the paid amount differs from the order"));
        }
        let owner = self.store.read(|tx| tx.payment_by_ref(&v.ref_num))?;
        if owner.is_some_and(|t| t != intent.gateway_token) {
            return Ok(Some(
                "the reference number was already used by another payment",
            ));
        }
        Ok(None)
    }

    fn payment_paid(&self, intent: &Intent, v: &Verification) -> Result<()> {
        let token = intent.gateway_token.as_str();
        let now = self.now();
        if let Some(why) = self.mismatch(intent, v)? {
            return self.reverse_payment(intent, Some(why));
        }
        let rec = VerifiedRecord {
            ref_id: &v.ref_num,
            trace_no: &v.trace_no,
            masked_pan: &v.masked_pan,
        };
        let recorded = self.store.write(|tx| {
            // another payment took this reference meanwhile (checked first: on PostgreSQL a
            // failed statement aborts the whole transaction, so the unique index below is
            // the last resort, and its violation makes the write retry into this check)
            if tx
                .payment_by_ref(&v.ref_num)?
                .is_some_and(|other| other != token)
            {
                return Ok(None);
            }
            match tx.record_verified(token, rec, now) {
                Ok(b) => Ok(Some(b)),
                // SQLite: the unique reference index, caught in place
                Err(e) if e.is_unique_violation() => Ok(None),
                Err(e) => Err(Error::from(e)),
            }
        })?;
        match recorded {
            None => return self.reverse_payment(intent, Some("duplicate reference number")),
            Some(false) => return Ok(()), // settled, reversed or expired meanwhile
            Some(true) => {}
        }
        if v.state != GatewayState::Settled {
            match self.providers().gateway.settle(token) {
                Ok(()) => {}
                Err(GatewayError::Unavailable(e)) => {
                    tracing::warn!(intent = %intent.id, error = %e, "settle unanswered; will retry");
                    return Ok(());
                }
                Err(GatewayError::Refused { code, message }) => {
                    tracing::warn!(intent = %intent.id, code, %message, "settle refused");
                    return self.reverse_payment(intent, Some("the gateway refused settlement"));
                }
            }
        }
        self.credit(intent, &v.ref_num)
    }

    /// The one credit of a settled payment. Only a payment this call moves from verified to
    /// settled, or one already settled, is credited: a payment reversed meanwhile (by the
    /// gateway, or another driver that found a mismatch) never is.
    fn credit(&self, intent: &Intent, ref_num: &str) -> Result<()> {
        let now = self.now();
        let key = format!("topup:{}", intent.id);
        self.store.write_for([intent.account_id], |tx| {
            let token = intent.gateway_token.as_str();
            if !tx.set_payment_status(token, &[S::Verified], S::Settled, None, now)? {
                let status = tx.gateway_payment(token)?.map(|p| p.status);
                if status != Some(S::Settled) {
                    let id = intent.id.clone();
                    tx.after_commit(move || tracing::warn!(intent = %id, status = ?status, "not credited: the payment left verification another way"));
                    return Ok(());
                }
            }
            if tx.ledger_by_key(&key)?.is_some() {
                return Ok(());
            }
            tx.insert_ledger(&NewEntry {
                account_id: intent.account_id,
                kind: LedgerKind::Topup,
                amount: intent.amount,
                idempotency_key: &key,
                tap: None,
                intent_id: Some(&intent.id),
                note: Some(ref_num),
                created_at: now,
            })?;
            let (account, id, amount) = (intent.account_id.0, intent.id.clone(), intent.amount);
            tx.after_commit(move || tracing::info!(account_id = account, intent = %id, amount, "top-up credited"));
            Ok(())
        })
    }

    /// Reverses a payment that must not be credited (`why`: a new reason; `None`: a retry).
    fn reverse_payment(&self, intent: &Intent, why: Option<&str>) -> Result<()> {
        let token = intent.gateway_token.as_str();
        let now = self.now();
        if let Some(why) = why {
            tracing::warn!(intent = %intent.id, reason = why, "reversing the payment");
            let open = [S::Pending, S::Verified, S::Reversing];
            if !self
                .store
                .write(|tx| tx.set_payment_status(token, &open, S::Reversing, Some(why), now))?
            {
                return Ok(());
            }
        }
        let to = match self.providers().gateway.reverse(token) {
            Ok(()) => S::Reversed,
            Err(GatewayError::Unavailable(e)) => {
                tracing::warn!(intent = %intent.id, error = %e, "reverse unanswered; will retry");
                return Ok(());
            }
            Err(GatewayError::Refused { code, message }) => {
                tracing::error!(intent = %intent.id, code, %message, "the gateway refused a reversal: an operator must look at this payment");
                S::ReverseFailed
            }
        };
        self.store
            .write(|tx| tx.set_payment_status(token, &[S::Reversing], to, None, now))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use mancard_api::TopupRequest;

    /// A payment reversed while its settlement was under way (another driver of the same
    /// intent saw the bank reverse it) is not credited when the first driver finishes.
    #[test]
    fn a_payment_reversed_meanwhile_is_not_credited() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(
            BackendConfig::sandbox(dir.path().join("b.sqlite")),
            "http://127.0.0.1:1".into(),
        )
        .unwrap();
        let account = e
            .store
            .write(|tx| tx.create_account("+989121110099", 0))
            .unwrap();
        let created = e
            .create_topup(
                account,
                &TopupRequest {
                    amount: 50_000,
                    idempotency_key: "reversed-meanwhile".into(),
                },
            )
            .unwrap();
        let intent = e
            .store
            .read(|tx| tx.intent(&created.intent_id))
            .unwrap()
            .unwrap();
        let token = intent.gateway_token.clone();
        for (from, to) in [(S::Pending, S::Verified), (S::Verified, S::Reversed)] {
            assert!(e
                .store
                .write(|tx| tx.set_payment_status(&token, &[from], to, None, 1))
                .unwrap());
        }
        // a status the payment is not in moves nothing
        assert!(!e
            .store
            .write(|tx| tx.set_payment_status(&token, &[S::Verified], S::Settled, None, 2))
            .unwrap());
        e.credit(&intent, "ref-1").unwrap();
        assert_eq!(e.store.read(|tx| tx.balance(account)).unwrap(), 0);
        let status = e
            .store
            .read(|tx| tx.gateway_payment(&token))
            .unwrap()
            .unwrap()
            .status;
        assert_eq!(status, S::Reversed);

        // the same call on a payment still verified credits it once
        let again = e
            .create_topup(
                account,
                &TopupRequest {
                    amount: 70_000,
                    idempotency_key: "verified".into(),
                },
            )
            .unwrap();
        let intent = e
            .store
            .read(|tx| tx.intent(&again.intent_id))
            .unwrap()
            .unwrap();
        let t = intent.gateway_token.clone();
        assert!(e
            .store
            .write(|tx| tx.set_payment_status(&t, &[S::Pending], S::Verified, None, 3))
            .unwrap());
        e.credit(&intent, "ref-2").unwrap();
        e.credit(&intent, "ref-2").unwrap();
        assert_eq!(e.store.read(|tx| tx.balance(account)).unwrap(), 70_000);
    }
}
