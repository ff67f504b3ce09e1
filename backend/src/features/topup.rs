//! Top-up: intents (idempotent by key), verification of the gateway's record server to
//! server, the ledger credited exactly once, and reconciliation of payments whose redirect
//! never came back.

use crate::engine::{random, Engine};
use crate::error::{Error, Result, StoreError};
use crate::ids::AccountId;
use crate::store::{GatewayStatus, Intent, NewEntry, Writer};
use mancard_api::endpoints;
use mancard_api::{LedgerKind, TopupIntentResponse, TopupRequest, TopupStatus};

impl Engine {
    /// The sandbox gateway's payment page of a token.
    pub(crate) fn payment_url(&self, token: &str) -> String {
        format!(
            "{}{}",
            self.base_url(),
            endpoints::SANDBOX_PAY.path_with(token)
        )
    }

    fn check_topup_request(&self, req: &TopupRequest) -> Result<()> {
        if !self.config().sandbox {
            return Err(Error::GatewayUnavailable);
        }
        let p = &self.config().policy;
        if !(p.topup_min..=p.topup_max).contains(&req.amount) {
            return Err(Error::InvalidAmount {
                min: p.topup_min,
                max: p.topup_max,
            });
        }
        let key = req.idempotency_key.as_str();
        if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::InvalidIdempotencyKey(
                "the idempotency key is 1 to 128 printable ASCII characters",
            ));
        }
        Ok(())
    }

    /// Creates (or, for a repeated idempotency key, returns) a top-up intent.
    pub fn create_topup(
        &self,
        account_id: impl Into<AccountId>,
        req: &TopupRequest,
    ) -> Result<TopupIntentResponse> {
        let account_id = account_id.into();
        self.check_topup_request(req)?;
        let key = req.idempotency_key.as_str();
        let now = self.now();
        let id = hex::encode(random::<16>()?);
        let token = hex::encode(random::<16>()?);
        self.store.write(|tx| {
            if let Some(existing) = tx.intent_by_key(account_id, key)? {
                if existing.amount != req.amount {
                    return Err(Error::IdempotencyConflict);
                }
                return self.intent_status(tx, &existing, now);
            }
            let expires_at = now.saturating_add(self.config().policy.topup_ttl_secs);
            tx.insert_gateway_payment(&token, req.amount, now, expires_at)?;
            let intent = Intent {
                id: id.clone(),
                account_id,
                amount: req.amount,
                idempotency_key: key.to_string(),
                gateway_token: token.clone(),
                created_at: now,
                expires_at,
            };
            tx.insert_intent(&intent)?;
            tracing::info!(account_id = account_id.0, intent = %id, amount = req.amount, "top-up intent created");
            self.intent_status(tx, &intent, now)
        })
    }

    /// The status of an intent; verifies the payment with the gateway if it says paid, and
    /// credits the ledger exactly once.
    fn intent_status(
        &self,
        tx: &Writer<'_>,
        intent: &Intent,
        now: i64,
    ) -> Result<TopupIntentResponse> {
        let key = format!("topup:{}", intent.id);
        let gp = tx
            .gateway_payment(&intent.gateway_token)?
            .ok_or(StoreError::Corrupt("intent without gateway payment"))?;
        let mut entry = tx.ledger_by_key(&key)?;
        if entry.is_none() && gp.status == GatewayStatus::Paid {
            // Server-to-server verification against the gateway's own record.
            if gp.amount != intent.amount || gp.ref_id.is_none() {
                return Err(Error::VerificationFailed);
            }
            tx.gateway_mark_verified(&gp.token, now)?;
            tx.insert_ledger(&NewEntry {
                account_id: intent.account_id,
                kind: LedgerKind::Topup,
                amount: intent.amount,
                idempotency_key: &key,
                tap: None,
                intent_id: Some(&intent.id),
                note: gp.ref_id.as_deref(),
                created_at: now,
            })?;
            tracing::info!(account_id = intent.account_id.0, intent = %intent.id, amount = intent.amount, "top-up credited");
            entry = tx.ledger_by_key(&key)?;
        }
        let status = match (&entry, gp.status) {
            (Some(_), _) => TopupStatus::Credited,
            (None, GatewayStatus::Cancelled) => TopupStatus::Cancelled,
            (None, _) if now > intent.expires_at => TopupStatus::Expired,
            _ => TopupStatus::Pending,
        };
        Ok(TopupIntentResponse {
            intent_id: intent.id.clone(),
            amount: intent.amount,
            status,
            payment_url: self.payment_url(&intent.gateway_token),
            expires_at: intent.expires_at,
            ledger_entry_id: entry.map(|e| e.id),
            gateway_ref: gp.ref_id,
        })
    }

    /// The status of one of the account's intents (verifies and credits if paid).
    pub fn topup_status(
        &self,
        account_id: impl Into<AccountId>,
        intent_id: &str,
    ) -> Result<TopupIntentResponse> {
        let account_id = account_id.into();
        let now = self.now();
        self.store.write(|tx| {
            let intent = tx
                .intent(intent_id)?
                .filter(|i| i.account_id == account_id)
                .ok_or(Error::UnknownIntent)?;
            self.intent_status(tx, &intent, now)
        })
    }

    /// The gateway's redirect back to the merchant. The status parameter is not trusted: the
    /// payment is verified against the gateway's record.
    pub fn topup_callback(&self, token: &str) -> Result<TopupIntentResponse> {
        let now = self.now();
        self.store.write(|tx| {
            let intent = tx.intent_by_token(token)?.ok_or(Error::UnknownPayment)?;
            self.intent_status(tx, &intent, now)
        })
    }

    /// Reconciliation: verifies and credits every payment the gateway reports paid whose
    /// redirect never came back and whose wallet never polled. Returns how many were credited.
    /// The server runs it every minute.
    pub fn reconcile_topups(&self) -> Result<usize> {
        let now = self.now();
        self.store.write(|tx| {
            let mut credited = 0;
            for token in tx.paid_unverified()? {
                if let Some(intent) = tx.intent_by_token(&token)? {
                    if self.intent_status(tx, &intent, now)?.status == TopupStatus::Credited {
                        credited += 1;
                    }
                }
            }
            if credited > 0 {
                tracing::info!(credited, "reconciliation credited paid top-ups");
            }
            Ok(credited)
        })
    }
}
